from concurrent.futures import ProcessPoolExecutor

from thread_chunks import chunk, ignore_sigint


def inverse(x):  # a tiny call: far cheaper than a trip to another process
    return 1 / x


if __name__ == "__main__":
    with ProcessPoolExecutor(2, initializer=ignore_sigint) as pool:
        results = chunk(
            inverse,
            [[x] for x in range(-50_000, 50_000)],
            chunk_size=2,
            executor=pool,  # the calls travel in batches, sized as they go
            errors="return",  # the failing call fails alone, in its batch
            progress_bar=False,
        )
    print(len(results), results[0], repr(results[50_000]), results[-1])
