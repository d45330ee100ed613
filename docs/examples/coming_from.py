from concurrent.futures import ThreadPoolExecutor
from functools import partial

from thread_chunks import chunk


def scale(x, factor=1.0):
    return x * factor


values = [1, 2, 3, 4]

# concurrent.futures: map a one-argument function, four calls at a time.
with ThreadPoolExecutor(max_workers=4) as pool:
    expected = list(pool.map(partial(scale, factor=10), values))

# thread-chunks: chunk_size plays max_workers (or n_jobs); each call gets an
# argument list, and functools.partial fixes the keyword arguments.
outputs = chunk(
    partial(scale, factor=10),
    [[x] for x in values],
    chunk_size=4,
    path="scaled.pkl",
    progress_bar=False,
)
print(outputs, outputs == expected)
