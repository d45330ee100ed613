import concurrent.futures

import ray

from thread_chunks import chunk


class RayExecutor(concurrent.futures.Executor):
    """Ray tasks as a concurrent.futures.Executor."""

    def __init__(self, **options):
        self.options = options  # num_cpus=..., num_gpus=..., memory=...

    def submit(self, fn, /, *args, **kwargs):
        remote = ray.remote(**self.options)(fn) if self.options else ray.remote(fn)
        return remote.remote(*args, **kwargs).future()


def square(x):
    return x * x


if __name__ == "__main__":
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        results = chunk(
            square,
            [[x] for x in range(6)],
            chunk_size=2,
            executor=RayExecutor(),
            progress_bar=False,
        )
    finally:
        ray.shutdown()
    print(results)
