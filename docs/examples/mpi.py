# Run with: mpiexec -n 3 python -m mpi4py.futures mpi.py
from mpi4py.futures import MPIPoolExecutor

from thread_chunks import chunk


def square(x):
    return x * x


if __name__ == "__main__":
    with MPIPoolExecutor() as pool:  # the workers are the other MPI processes
        results = chunk(
            square,
            [[x] for x in range(6)],
            chunk_size=2,
            executor=pool,
            progress_bar=False,
        )
    print(results)
