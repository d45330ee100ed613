import time

from thread_chunks import chunk_iter


def measure(x):
    if x == 0:
        time.sleep(0.2)  # call 0 completes after the others
    return x * x


# Each row is written as soon as it and every row before it are done: the
# file grows in order while the run goes on, and a rerun (path=) picks up
# where it stopped.
with open("squares.csv", "w") as out:
    for index, result in chunk_iter(
        measure,
        [[x] for x in range(6)],
        chunk_size=3,
        path="squares.pkl",
        ordered=True,
        progress_bar=False,
    ):
        out.write(f"{index},{result}\n")

with open("squares.csv") as written:
    print(written.read(), end="")
