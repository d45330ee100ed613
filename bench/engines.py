"""Benchmark: threads against processes, and the cost of each call per engine.

Run ``python bench/engines.py``. All figures come from this one run.

1. Eight calls of a pure-Python loop (about 0.5 s each), ``chunk_size=2``:
   ``executor="processes"`` against threads, which the GIL serialises.
2. 2,000 tiny calls: calls per second through threads, through
   ``executor="processes"``, and through a bare ``ProcessPoolExecutor.map``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial

from thread_chunks import chunk


def spin(n: int) -> int:
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def tiny(x: int) -> int:
    return x


def seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def calibrate(target: float = 0.5) -> int:
    n = 100_000
    while (elapsed := seconds(partial(spin, n))) < 0.05:
        n *= 2
    return int(n * target / elapsed)


def main() -> None:
    loop = calibrate()
    heavy = [[loop]] * 8
    t_threads = seconds(lambda: chunk(spin, heavy, chunk_size=2, progress_bar=False))
    t_processes = seconds(
        lambda: chunk(
            spin, heavy, chunk_size=2, progress_bar=False, executor="processes"
        )
    )
    speedup = t_threads / t_processes
    verdict = "ok" if speedup >= 1.7 else "MISSED"

    light = [[x] for x in range(2_000)]
    t_thread_calls = seconds(
        lambda: chunk(tiny, light, chunk_size=2, progress_bar=False)
    )
    t_process_calls = seconds(
        lambda: chunk(
            tiny, light, chunk_size=2, progress_bar=False, executor="processes"
        )
    )

    def bare_map() -> None:
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(tiny, range(2_000)))

    t_map = seconds(bare_map)

    rows = [
        ("8 pure-Python calls of ~0.5 s, chunk_size=2", "", ""),
        ("  threads", f"{t_threads:.2f} s", ""),
        (
            "  executor='processes'",
            f"{t_processes:.2f} s",
            f"{speedup:.2f}x faster (target >= 1.7) {verdict}",
        ),
        ("2,000 tiny calls, chunk_size=2", "", ""),
        ("  threads", f"{2_000 / t_thread_calls:,.0f} calls/s", ""),
        (
            "  executor='processes'",
            f"{2_000 / t_process_calls:,.0f} calls/s",
            "includes starting 2 processes",
        ),
        (
            "  bare ProcessPoolExecutor(2).map",
            f"{2_000 / t_map:,.0f} calls/s",
            "all submitted at once, no bound, no checkpoint",
        ),
    ]
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
