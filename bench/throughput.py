"""Benchmark: how many tiny calls a second, against the standard library's pools.

Run ``python bench/throughput.py``. Each row measures thread-chunks and its
baseline in the same run, interleaved, best of five (of three for the
matmuls, of one for the Dask and sleep rows), and prints the ratio beside its
target.
``bench/plots.py`` draws the calls-per-second rows from :func:`rates`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys

# One BLAS thread per call, so that the matmul row measures how calls share the
# cores, not how one call's BLAS threads do. Before numpy is imported.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import numpy as np

from checkpoint import Workdir
from thread_chunks import achunk, chunk


def tiny(x: int) -> int:
    return x + 1


def sleeper(seconds: float) -> None:
    time.sleep(seconds)


def matmul(n: int) -> float:
    a = np.random.default_rng(n).random((n, n))
    return float((a @ a)[0, 0])


def best(runs: int, *sides: Callable[[], object]) -> list[float]:
    """The best time of each side over ``runs`` rounds, interleaved."""
    times = [math.inf] * len(sides)
    for _ in range(runs):
        for k, side in enumerate(sides):
            start = time.perf_counter()
            side()
            times[k] = min(times[k], time.perf_counter() - start)
    return times


@dataclass
class Rate:
    """Calls per second of thread-chunks and of its baseline, in one row."""

    what: str
    ours: float
    baseline: float
    baseline_name: str
    target: float | None  # the least ratio ours / baseline, if any


def rates(work: Workdir) -> list[Rate]:
    """Measure the rows that compare calls per second."""
    n = 20_000
    params, xs = [[x] for x in range(n)], list(range(n))

    def pool_map() -> None:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(tiny, xs))

    def ours() -> None:
        chunk(tiny, params, chunk_size=2, progress_bar=False)

    def ours_path() -> None:
        chunk(tiny, params, chunk_size=2, progress_bar=False, path=work.fresh_path())

    t_pool, t_ours, t_path = best(5, pool_map, ours, ours_path)
    t_gather, t_coro = coroutine_times(n)
    found = [
        Rate(f"{n:,} tiny calls, threads", n / t_ours, n / t_pool,
             "ThreadPoolExecutor(2).map", 10),
        Rate(f"{n:,} tiny calls, threads, path=", n / t_path, n / t_pool,
             "the same pool.map, no checkpoint", 5),
        Rate(f"{n:,} tiny coroutines, chunk_size=2", n / t_coro, n / t_gather,
             "gather + Semaphore(2)", None),
    ]  # fmt: skip

    # The ceiling for sync calls on threads: with the GIL, two threads run
    # pure-Python calls no faster than one plain loop.
    big = 200_000
    big_params = [[x] for x in range(big)]

    def plain_loop() -> None:
        [tiny(*args) for args in big_params]

    def ours_big() -> None:
        chunk(tiny, big_params, chunk_size=2, progress_bar=False)

    def ours_big_path() -> None:
        chunk(tiny, big_params, chunk_size=2, progress_bar=False,
              path=work.fresh_path())  # fmt: skip

    t_loop, t_big, t_big_path = best(5, plain_loop, ours_big, ours_big_path)
    loop_name = "the plain loop [f(*a) for a in parameters]"
    found += [
        Rate(f"{big:,} tiny calls, threads, chunk_size=2", big / t_big,
             big / t_loop, loop_name, 0.5),
        Rate(f"{big:,} tiny calls, threads, chunk_size=2, path=",
             big / t_big_path, big / t_loop, loop_name, 0.2),
    ]  # fmt: skip

    m = 100_000
    with ProcessPoolExecutor(2) as pool:
        pool_params, pool_xs = [[x] for x in range(m)], list(range(m))
        list(pool.map(tiny, range(100)))  # warm

        def ex_map() -> None:
            list(pool.map(tiny, pool_xs, chunksize=256))

        def ours_pool() -> None:
            chunk(tiny, pool_params, chunk_size=2, progress_bar=False,
                  executor=pool)  # fmt: skip

        t_map, t_ours_pool = best(5, ex_map, ours_pool)
    found.append(Rate(f"{m:,} tiny calls, warm ProcessPoolExecutor(2)",
                      m / t_ours_pool, m / t_map, "ex.map(chunksize=256)",
                      1.0))  # fmt: skip

    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        return found
    k = 2_000
    cluster = LocalCluster(n_workers=2, threads_per_worker=1,
                           dashboard_address=None, processes=True)  # fmt: skip
    with cluster, Client(cluster) as client:
        executor = client.get_executor(pure=False)
        dask_params = [[x] for x in range(k)]

        def client_map() -> None:
            client.gather(client.map(tiny, range(k), pure=False))

        def ours_dask() -> None:
            chunk(tiny, dask_params, chunk_size=2, progress_bar=False,
                  executor=executor)  # fmt: skip

        t_client, t_ours_dask = best(1, client_map, ours_dask)
    found.append(Rate(f"{k:,} tiny calls, Dask LocalCluster(2 workers)",
                      k / t_ours_dask, k / t_client, "client.map + gather",
                      10))  # fmt: skip
    return found


COLD_BASELINE = "import anyio, saveable_objects, tqdm"
COLD_RUN = "from thread_chunks import chunk; chunk(abs, [[1]], progress_bar=False{})"


def cold_starts(work: Workdir, runs: int = 15) -> tuple[float, float, float]:
    """Best times of a fresh interpreter: the baseline's imports, then our runs.

    Each run is a new ``python -c``, interleaved with the others. Bytecode is
    cached (in a directory of this run) as an installed package has it, so that
    neither side pays for compiling, whatever ``PYTHONDONTWRITEBYTECODE`` says.
    """
    env = dict(os.environ, PYTHONPYCACHEPREFIX=str(work.root / "pycache"))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    for name in "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS":  # set above for matmul
        if env.get(name) == "1":
            del env[name]  # numpy starts its BLAS threads, as in a user's python

    def fresh(code: str) -> Callable[[], object]:
        return partial(subprocess.run, [sys.executable, "-c", code], env=env,
                       check=True)  # fmt: skip

    def with_path() -> None:
        fresh(COLD_RUN.format(f", path={str(work.fresh_path())!r}"))()

    sides = fresh(COLD_BASELINE), fresh(COLD_RUN.format("")), with_path
    best(1, *sides)  # compile and cache the bytecode, warm the disk cache
    t_base, t_run, t_path = best(runs, *sides)
    return t_base, t_run, t_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    rows: list[tuple[str, str, str, str, str]] = []

    def row(what: str, ours: str, base: str, ratio: float, target: str) -> None:
        op, limit = target.split()
        met = ratio >= float(limit) if op == ">=" else ratio <= float(limit)
        rows.append(
            (what, ours, base, f"{ratio:.2f}", f"{target} {'ok' if met else 'MISSED'}")
        )

    work = Workdir()
    try:
        t_base, t_run, t_path = cold_starts(work)
        base = f"{t_base * 1000:.0f} ms python -c '{COLD_BASELINE}'"
        row("cold chunk(abs, [[1]], progress_bar=False), a fresh process",
            f"{t_run * 1000:.0f} ms", base, t_run / t_base, "<= 1.0")  # fmt: skip
        row("the same, path=", f"{t_path * 1000:.0f} ms", base,
            t_path / t_base, "<= 1.3")  # fmt: skip

        rates_found = rates(work)
        for rate in rates_found:
            ratio = rate.ours / rate.baseline
            ours, base = f"{rate.ours:,.0f} calls/s", f"{rate.baseline:,.0f} calls/s"
            base += f" {rate.baseline_name}"
            if rate.target is None:
                rows.append((rate.what, ours, base, f"{ratio:.2f}", "(report)"))
            else:
                row(rate.what, ours, base, ratio, f">= {rate.target}")
        by_name = {rate.what: rate.ours for rate in rates_found}
        without = by_name["200,000 tiny calls, threads, chunk_size=2"]
        with_path = by_name["200,000 tiny calls, threads, chunk_size=2, path="]
        cost = (1 / with_path - 1 / without) * 1e6
        row("200,000 tiny calls: what path= adds per result",
            f"{cost:.2f} µs", "(with - without) / N", cost, "<= 0.4")  # fmt: skip

        (t_sleep,) = best(1, partial(chunk, sleeper, [[0.1]] * 16, chunk_size=2,
                                     progress_bar=False))  # fmt: skip
        row("16 calls of sleep(0.1), chunk_size=2", f"{t_sleep:.3f} s",
            "ideal 0.800 s", 0.8 / t_sleep, ">= 0.97")  # fmt: skip

        size = 1
        while True:  # a matmul of about 0.25 s
            start = time.perf_counter()
            matmul(size)
            if time.perf_counter() - start > 0.25 or size > 4000:
                break
            size = int(size * 1.1) + 50
        (t_one,) = best(3, partial(matmul, size))
        (t_mat,) = best(3, partial(chunk, matmul, [[size]] * 8, chunk_size=2,
                                   progress_bar=False))  # fmt: skip
        ideal = 8 * t_one / 2
        row(f"8 numpy matmuls of {t_one:.2f} s, chunk_size=2", f"{t_mat:.3f} s",
            f"ideal {ideal:.3f} s", ideal / t_mat, ">= 0.85")  # fmt: skip

        latency = cancel_latency(work.fresh_path())
        row("cancel 1,000,000 tiny calls with path= after 1.5 s",
            f"{latency:.3f} s to return", "", latency, "<= 0.25")  # fmt: skip
    finally:
        work.remove()

    header = ("measure", "thread-chunks", "baseline", "ratio", "target")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


async def tiny_coroutine(x: int) -> int:
    return x + 1


def coroutine_times(n: int) -> tuple[float, float]:
    """Best times of ``asyncio.gather`` under a semaphore, and of ``achunk``."""
    params = [[x] for x in range(n)]

    async def gather() -> None:
        semaphore = asyncio.Semaphore(2)

        async def one(args: list[int]) -> int:
            async with semaphore:
                return await tiny_coroutine(*args)

        await asyncio.gather(*(one(args) for args in params))

    async def ours() -> None:
        await achunk(tiny_coroutine, params, chunk_size=2, progress_bar=False)

    t_gather, t_ours = best(
        5, lambda: asyncio.run(gather()), lambda: asyncio.run(ours())
    )
    return t_gather, t_ours


def cancel_latency(path: Path) -> float:
    """Seconds from cancelling a run of a million tiny calls to its return."""
    params = [[x] for x in range(1_000_000)]
    cancelled_at: list[float] = []

    async def main() -> None:
        with anyio.CancelScope() as scope:

            async def cancel_later() -> None:
                await anyio.sleep(1.5)
                cancelled_at.append(time.perf_counter())
                scope.cancel()

            async with anyio.create_task_group() as task_group:
                task_group.start_soon(cancel_later)
                await achunk(tiny, params, chunk_size=2, progress_bar=False, path=path)

    anyio.run(main)
    return time.perf_counter() - cancelled_at[0]


if __name__ == "__main__":
    main()
