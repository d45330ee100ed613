import itertools

from thread_chunks import chunk

attempts = itertools.count(1)


def fetch(url):
    # A flaky service: the first two attempts time out.
    if next(attempts) <= 2:
        raise TimeoutError(url)
    return f"page at {url}"


print(chunk(fetch, [["example.org"]], retries=3, retry_delay=0.01, progress_bar=False))
