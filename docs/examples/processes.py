from thread_chunks import chunk


def collatz_steps(n):  # pure Python: threads would take turns on the GIL
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


if __name__ == "__main__":  # process pools re-import this file in each worker
    steps = chunk(
        collatz_steps,
        [[n] for n in (27, 97, 871, 6171)],
        chunk_size=2,
        executor="processes",
        progress_bar=False,
    )
    print(steps)
