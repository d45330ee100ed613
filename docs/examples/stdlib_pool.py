from concurrent.futures import ProcessPoolExecutor
from functools import partial

from thread_chunks import chunk


def simulate(seed, steps):  # defined at the top level: plain pickle can send it
    value = seed
    for _ in range(steps):
        value = (value * 1103515245 + 12345) % 2**31
    return value % 100


if __name__ == "__main__":
    with ProcessPoolExecutor(2) as pool:
        results = chunk(
            partial(simulate, steps=1000),  # bind extra arguments with partial
            [[seed] for seed in range(5)],
            chunk_size=2,
            executor=pool,
            progress_bar=False,
        )
    print(results)
