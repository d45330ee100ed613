"""Benchmark: what checkpointing costs, in bytes written and in time.

Run ``python bench/checkpoint.py`` (add ``--quick`` for a smaller run). Every
figure is measured in this run, beside the baseline it is compared with, and
printed as a table with the target each ratio must meet.

Timings of tiny calls are the best of five runs, interleaved with their
baseline's, since a 2-core machine is noisy; large runs are timed once.
Bytes are counted with ``/proc/self/io``: ``wchar`` is every byte this process
passed to ``write``; ``write_bytes`` is what reached the block layer (it rounds
to pages and may be zero on some file systems, so the target uses ``wchar``).
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from thread_chunks import chunk

MB = 1 << 20


def io_counters() -> dict[str, int]:
    with open("/proc/self/io") as file:
        return {k: int(v) for k, v in (line.split(": ") for line in file)}


def tiny(i: int) -> int:
    return i


def large(i: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(i).random(4 * MB // 8)  # 4 MB of float64


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


class Workdir:
    """A scratch directory on the same disk as the project (not tmpfs)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="bench-", dir=Path(__file__).parent))
        self.count = 0

    def fresh_path(self) -> Path:
        self.count += 1
        return self.root / f"run{self.count}" / "checkpoint.pkl"

    def remove(self) -> None:
        shutil.rmtree(self.root)


def chunked(
    func: Callable[[int], Any], n: int, path: Path | None
) -> Callable[[], object]:
    params = [[i] for i in range(n)]
    return lambda: chunk(func, params, chunk_size=2, progress_bar=False, path=path)


def bytes_written(
    func: Callable[[int], Any], n: int, work: Workdir
) -> tuple[int, int, int]:
    """Return (wchar, write_bytes, final size) of one checkpointed run."""
    path = work.fresh_path()
    before = io_counters()
    chunked(func, n, path)()
    os.sync()
    after = io_counters()
    return (
        after["wchar"] - before["wchar"],
        after["write_bytes"] - before["write_bytes"],
        path.stat().st_size,
    )


def plain_loop(func: Callable[[int], Any], n: int, path: Path) -> None:
    """The baseline: compute, pickle, write and fsync each result once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as file:
        for i in range(n):
            file.write(pickle.dumps(func(i), protocol=pickle.HIGHEST_PROTOCOL))
            file.flush()
            os.fsync(file.fileno())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    n_tiny, n_large = 20_000 // scale, 200 // scale
    work = Workdir()
    rows: list[tuple[str, str, str, str, str]] = []

    def row(what: str, value: str, baseline: str, ratio: float, target: str) -> None:
        limit = float(target.lstrip("<= "))
        verdict = "ok" if ratio <= limit else "MISSED"
        rows.append((what, value, baseline, f"{ratio:.2f}", f"{target} {verdict}"))

    try:
        for label, func, n in [("tiny", tiny, n_tiny), ("4 MB", large, n_large)]:
            wchar, block, size = bytes_written(func, n, work)
            row(
                f"bytes written, {n} {label} results",
                f"{wchar / MB:.1f} MB (block layer {block / MB:.1f} MB)",
                f"final file {size / MB:.1f} MB",
                wchar / size,
                "<= 2.2",
            )

        small, big = 1_000 // scale, 8_000 // scale
        t_small = t_big = float("inf")
        for _ in range(5):
            t_small = min(t_small, timed(chunked(tiny, small, work.fresh_path())))
            t_big = min(t_big, timed(chunked(tiny, big, work.fresh_path())))
        row(
            f"growth, {big} vs {small} tiny calls with path=",
            f"{t_big:.3f} s",
            f"{t_small:.3f} s",
            t_big / t_small,
            "<= 9.6",
        )

        # Interleaved, best of five each, so that a noisy moment hits both alike.
        t_plain = t_path = float("inf")
        for _ in range(5):
            t_plain = min(t_plain, timed(chunked(tiny, n_tiny, None)))
            t_path = min(t_path, timed(chunked(tiny, n_tiny, work.fresh_path())))
        row(
            f"{n_tiny} tiny calls, chunk_size=2",
            f"{t_path:.3f} s with path=",
            f"{t_plain:.3f} s without",
            t_path / t_plain,
            "<= 1.5",
        )

        t_loop = timed(lambda: plain_loop(large, n_large, work.fresh_path()))
        t_large = timed(chunked(large, n_large, work.fresh_path()))
        row(
            f"{n_large} results of 4 MB, chunk_size=2",
            f"{t_large:.3f} s with path=",
            f"{t_loop:.3f} s pickle+write+fsync loop",
            t_large / t_loop,
            "<= 2",
        )
        # Resuming a finished run whose rows all share one large array: the
        # array is compared once, not once a row.
        data = np.random.default_rng(0).random(8 * MB // 8)
        shared = [[data, i] for i in range(2_000 // scale)]
        path = work.fresh_path()

        def row_sum(block: np.ndarray[Any, Any], i: int) -> float:
            return float(block[i])

        def run_shared() -> object:
            return chunk(row_sum, shared, chunk_size=2, progress_bar=False, path=path)

        t_compute = timed(run_shared)
        t_resume = min(timed(run_shared) for _ in range(5))
        row(
            f"resume {len(shared)} rows sharing one 8 MB array",
            f"{t_resume:.3f} s to resume",
            f"{t_compute:.3f} s to compute",
            t_resume / t_compute,
            "<= 3",
        )
    finally:
        work.remove()

    header = ("measure", "thread-chunks", "baseline", "ratio", "target")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
