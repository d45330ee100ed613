# A call that hangs fails with TimeoutError after timeout= seconds; with
# errors="return" the run goes on, and the other results are right.
import time

from thread_chunks import chunk


def fetch(x):
    while x == 2:  # this call never ends
        time.sleep(0.01)
    return x * 10


results = chunk(
    fetch, [[x] for x in range(4)], timeout=0.5, errors="return", progress_bar=False
)
print(results[:2], results[3])
print(repr(results[2]))
