import os
import time

from thread_chunks import chunk


def simulate(n):
    if n == 3:
        os._exit(1)  # as a crash in C code, or the out-of-memory killer, would
    if n == 5:
        time.sleep(3600)  # hangs
    return n * n


if __name__ == "__main__":
    out = chunk(
        simulate,
        [[n] for n in range(8)],
        chunk_size=2,
        executor="processes",
        errors="return",
        timeout=2,  # seconds an attempt may take
        progress_bar=False,
    )
    for n, result in enumerate(out):
        print(n, type(result).__name__ if isinstance(result, Exception) else result)
    print(out[3])
