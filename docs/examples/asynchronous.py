import anyio

from thread_chunks import achunk


def blocking(x):  # runs in a worker thread
    return x * x


async def fetch(x):  # runs on the event loop
    await anyio.sleep(0.01)
    return -x


async def main():
    squares = await achunk(blocking, [[1], [2], [3]], chunk_size=2, progress_bar=False)
    negated = await achunk(fetch, [[1], [2], [3]], chunk_size=2, progress_bar=False)
    print(squares, negated)


anyio.run(main)  # asyncio
anyio.run(main, backend="trio")
