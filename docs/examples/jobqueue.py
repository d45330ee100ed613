import shutil

from dask.distributed import Client

from thread_chunks import chunk


def square(x):
    return x * x


if __name__ == "__main__":
    if shutil.which("sbatch"):  # on a SLURM cluster: workers are batch jobs
        from dask_jobqueue import SLURMCluster as Cluster
    else:  # on a laptop: the same code, with local worker processes
        from dask_jobqueue.local import LocalCluster as Cluster

    with Cluster(cores=1, memory="1GB", processes=1, walltime="00:30:00") as cluster:
        cluster.scale(jobs=2)
        with Client(cluster) as client:
            results = chunk(
                square,
                [[x] for x in range(6)],
                chunk_size=2,
                executor=client.get_executor(pure=False),
                progress_bar=False,
            )
    print(results)
