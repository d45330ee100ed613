import anyio

from thread_chunks import achunk_iter, chunk_iter


def square(x):
    return x * x


# Results as their calls complete; saved ones first. Sorted here, since the
# order in which calls complete varies from run to run.
results = dict(
    chunk_iter(square, [[x] for x in range(5)], path="squares.pkl", progress_bar=False)
)
print(sorted(results.items()))

# Leaving the loop early stops the run; what completed is saved.
for index, result in chunk_iter(
    square,
    [[x] for x in range(100)],
    chunk_size=2,
    path="early.pkl",
    progress_bar=False,
):
    print("the first result came from call 0 or 1:", result == index**2 < 2)
    break


async def main():
    async with achunk_iter(
        square, [[x] for x in range(3)], progress_bar=False
    ) as results:
        print(sorted([pair async for pair in results]))


anyio.run(main)
