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
import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from thread_chunks import chunk, progress

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


def array_sum(array: np.ndarray[Any, Any]) -> float:
    return float(array.sum())


def make_array(i: int, size: int) -> np.ndarray[Any, Any]:
    return np.random.default_rng(i).random(size // 8)


def _rss_by_pid() -> dict[int, int]:
    """Resident bytes of this process and of every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    parent = int(stat.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, todo = {}, [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    if line.startswith("VmRSS:"):
                        found[pid] = int(line.split()[1]) * 1024
        except OSError:
            continue
        todo += children.get(pid, [])
    return found


class Sampler(threading.Thread):
    """Samples the resident memory of this process and its workers, 50 a second."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0
        self.lowest: dict[int, int] = {}
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.02):
            sizes = _rss_by_pid()
            self.peak = max(self.peak, sum(sizes.values()))
            for pid, size in sizes.items():
                self.lowest[pid] = min(self.lowest.get(pid, size), size)


def child_arrays(directory: str, n: int, size: int) -> dict[str, float]:
    """In a child process: the arrays run; memory above the parameters, file size.

    The workers are a loky pool of two, warmed up first (numpy imported), so
    that what they hold before the run is known and left out.
    """
    import loky

    from thread_chunks import ignore_sigint

    parameters = [[make_array(i, size)] for i in range(n)]
    pool = loky.ProcessPoolExecutor(2, initializer=ignore_sigint)
    list(pool.map(array_sum, [make_array(0, 1024)] * 4))
    before = _rss_by_pid()
    base = sum(before.values())
    sampler = Sampler()
    sampler.start()
    path = Path(directory) / "arrays.pkl"
    results = chunk(array_sum, parameters, chunk_size=2, executor=pool,
                    progress_bar=False, path=path)  # fmt: skip
    sampler.done.set()
    sampler.join()
    pool.shutdown()
    pickled = len(pickle.dumps(parameters, protocol=5))
    pickled += sum(len(pickle.dumps(r, protocol=5)) for r in results)
    return {
        "above": (sampler.peak - base) / size,
        "file": path.stat().st_size,
        "pickled": pickled,
    }


def child_load(path: str) -> dict[str, float]:
    """In a child process: the peak memory of Checkpoint.load, in bytes.

    What the process held before (Python, numpy, thread_chunks) is left out.
    """
    import resource

    from thread_chunks import Checkpoint

    base = _rss_by_pid()[os.getpid()]
    checkpoint = Checkpoint.load(path)
    assert checkpoint.done
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {"peak": peak - base, "file": os.path.getsize(path)}


def in_child(*arguments: str) -> dict[str, float]:
    """Run this file's ``--child`` with ``arguments``; return what it printed."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.splitlines()[-1])
    return result


def memory_rows(work: Workdir, scale: int) -> list[tuple[str, str, str, float, str]]:
    """The rows measured in child processes: memory, and the file's size."""
    n, size = 40 // (scale // 2 or 1), 50 * MB // scale
    arrays = in_child("arrays", str(work.root), str(n), str(size))
    big = work.fresh_path()
    count = 60 // scale
    chunk(partial(make_array, size=size), [[i] for i in range(count)],
          chunk_size=2, progress_bar=False, path=big)  # fmt: skip
    loaded = in_child("load", str(big))
    label = f"{n} x {size // MB} MB arrays as parameters, 2 worker processes, path="
    return [
        (
            f"{label}: peak memory above the parameters (parent and workers)",
            f"{arrays['above']:.1f} arrays",
            "2 x chunk_size + 2 = 6 arrays",
            arrays["above"] / 6,
            "<= 1.0",
        ),
        (
            "the same run: checkpoint file size",
            f"{arrays['file'] / MB:.0f} MB",
            f"{arrays['pickled'] / MB:.0f} MB pickled parameters and results",
            arrays["file"] / arrays["pickled"],
            "<= 1.05",
        ),
        (
            f"Checkpoint.load of {loaded['file'] / MB:.0f} MB: peak RSS it adds",
            f"{loaded['peak'] / MB:.0f} MB",
            f"{loaded['file'] / MB:.0f} MB file",
            loaded["peak"] / loaded["file"],
            "<= 1.3",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "arrays":
            measured = child_arrays(rest[0], int(rest[1]), int(rest[2]))
        else:
            measured = child_load(rest[0])
        print(json.dumps(measured))
        return
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

        # Interleaved, best of three each, so that a noisy moment hits both alike.
        n_cost = 200_000 // scale
        t_plain = t_path = float("inf")
        for _ in range(3):
            t_plain = min(t_plain, timed(chunked(tiny, n_cost, None)))
            t_path = min(t_path, timed(chunked(tiny, n_cost, work.fresh_path())))
        cost = (t_path - t_plain) / n_cost * 1e6
        row(
            f"{n_cost:,} tiny calls: what path= adds per result",
            f"{cost:.2f} µs ({t_path:.3f} s with)",
            f"{t_plain:.3f} s without",
            cost,
            "<= 1.0",
        )

        # Resuming a complete checkpoint of a million tiny results.
        # Best of three on both sides: computing into a fresh file each time.
        n_resume = 1_000_000 // scale
        t_fresh = math.inf
        for _ in range(3):
            path = work.fresh_path()
            t_fresh = min(t_fresh, timed(chunked(tiny, n_resume, path)))
        t_resume = min(timed(chunked(tiny, n_resume, path)) for _ in range(3))
        row(
            f"resume a complete checkpoint of {n_resume:,} tiny results",
            f"{t_resume:.3f} s",
            f"{t_fresh:.3f} s computed with path=",
            t_resume / t_fresh,
            "<= 0.5",
        )
        row(
            f"resume a complete checkpoint of {n_resume:,} tiny results",
            f"{t_resume:.3f} s",
            "1 s",
            t_resume,
            "<= 1.0",
        )
        # The same checkpoint for one more row, with reuse="calls": every saved
        # result is found again by its row, and only the new row computed.
        more = [[i] for i in range(n_resume + 1)]
        t_reuse = timed(
            lambda: chunk(
                tiny, more, chunk_size=2, progress_bar=False, path=path, reuse="calls"
            )
        )
        row(
            f"reuse {n_resume:,} saved results for {n_resume + 1:,} rows",
            f"{t_reuse:.3f} s",
            f"{t_resume:.3f} s to resume them",
            t_reuse / t_resume,
            "<= 1.5",
        )
        n_show = 2_000_000 // scale
        path = work.fresh_path()
        chunked(tiny, n_show, path)()
        t_progress = min(timed(lambda: progress(path)) for _ in range(5))
        show = [sys.executable, "-m", "thread_chunks", "show", str(path)]
        t_show = min(
            timed(lambda: subprocess.run(show, check=True, capture_output=True))
            for _ in range(3)
        )
        t_python = min(
            timed(
                lambda: subprocess.run(
                    [sys.executable, "-c", "import thread_chunks"], check=True
                )
            )
            for _ in range(3)
        )
        row(
            f"progress() of {n_show:,} results ({path.stat().st_size / MB:.0f} MB)",
            f"{t_progress:.4f} s",
            f"thread-chunks show: {t_show:.3f} s, of which starting Python and "
            f"importing thread_chunks {t_python:.3f} s",
            t_progress,
            "<= 0.2",
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
        for what, value, baseline, ratio, target in memory_rows(work, scale):
            row(what, value, baseline, ratio, target)
    finally:
        work.remove()

    header = ("measure", "thread-chunks", "baseline", "ratio", "target")
    widths = [max(len(r[k]) for r in [header, *rows]) for k in range(5)]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print(" | ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)))


if __name__ == "__main__":
    main()
