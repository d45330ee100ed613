import threading

from thread_chunks import Chunker, LabelledActor


class Tokenizer(LabelledActor):
    """A worker with an expensive, not thread-safe resource of its own."""

    created = 0

    def __init__(self):
        super().__init__(self.count_words)
        Tokenizer.created += 1
        self.buffer = []  # reused between calls, never shared between threads
        self.lock = threading.Lock()

    def count_words(self, text):
        assert self.lock.acquire(blocking=False), "two calls shared a worker"
        try:
            self.buffer.clear()
            self.buffer.extend(text.split())
            return len(self.buffer)
        finally:
            self.lock.release()


chunker = Chunker(actors=[Tokenizer(), Tokenizer()], progress_bar=False)
print(chunker([["a b c"], ["d e"], ["f"]]))
print(chunker([["one two three four"]]))
print("workers created:", Tokenizer.created)
