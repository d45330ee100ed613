from dask.distributed import Client, LocalCluster

from thread_chunks import chunk


def simulate(seed, size):
    import random

    rng = random.Random(seed)
    return sum(rng.random() for _ in range(size))


if __name__ == "__main__":
    with (
        LocalCluster(n_workers=2, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        executor = client.get_executor(pure=False)
        totals = chunk(
            simulate,
            [[seed, 1000] for seed in range(6)],
            chunk_size=4,
            executor=executor,
            progress_bar=False,
        )
    print([round(total) for total in totals])
