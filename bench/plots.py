"""Draw the figures of the Performance page into ``docs/_static/``.

Run ``python bench/plots.py`` (needs ``pip install -e '.[bench]'``). It measures
afresh, on this machine, and prints the numbers it plots.

1. ``checkpoint-cost.png``: bytes written and run time against the number of
   tiny calls, for thread-chunks with ``path=``, without ``path=``, and for the
   way thread-chunks 1.x saved (the whole checkpoint rewritten after each result).
2. ``threads-vs-processes.png``: eight pure-Python calls of about 0.5 s, on
   threads and on ``executor="processes"``, for ``chunk_size`` 1 and 2.
3. ``tiny-calls.png``: calls per second of tiny calls, thread-chunks beside
   each baseline of ``bench/throughput.py``.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from checkpoint import Workdir, chunked, io_counters, tiny
from engines import calibrate, seconds, spin
from thread_chunks import chunk
from throughput import rates

STATIC = Path(__file__).parent.parent / "docs" / "_static"


def rewrite_each_time(n: int, path: Path) -> None:
    """The 1.x way: after each result, pickle the whole checkpoint over the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {
        "parameters": [[i] for i in range(n)],
        "output": [None] * n,
    }
    for i in range(n):
        state["output"][i] = tiny(i)
        with open(path, "wb") as file:
            pickle.dump(state, file)


def measure(run: Any) -> tuple[float, int]:
    before = io_counters()["wchar"]
    elapsed = seconds(run)
    return elapsed, io_counters()["wchar"] - before


def checkpoint_cost(work: Workdir) -> None:
    sizes = [500, 1_000, 2_000, 4_000, 8_000]
    rows = []
    for n in sizes:
        plain = seconds(chunked(tiny, n, None))
        ours_t, ours_b = measure(chunked(tiny, n, work.fresh_path()))
        old_t, old_b = measure(lambda n=n: rewrite_each_time(n, work.fresh_path()))
        rows.append((n, plain, ours_t, ours_b, old_t, old_b))
        print(
            f"n={n:>5}: no path {plain:.3f} s | path= {ours_t:.3f} s, "
            f"{ours_b / 1e6:.2f} MB | rewrite each time {old_t:.3f} s, "
            f"{old_b / 1e6:.1f} MB"
        )
    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    ours = {"color": "tab:blue", "marker": "o", "label": "thread-chunks, path="}
    old = {
        "color": "tab:red",
        "marker": "s",
        "linestyle": "--",
        "label": "rewrite the whole file per result (1.x)",
    }
    bare = {
        "color": "tab:gray",
        "marker": "^",
        "linestyle": ":",
        "label": "thread-chunks, no path",
    }
    left.loglog(sizes, [r[3] / 1e6 for r in rows], **ours)
    left.loglog(sizes, [r[5] / 1e6 for r in rows], **old)
    left.set(xlabel="tiny calls", ylabel="MB written", title="Bytes written")
    right.loglog(sizes, [r[1] for r in rows], **bare)
    right.loglog(sizes, [r[2] for r in rows], **ours)
    right.loglog(sizes, [r[4] for r in rows], **old)
    right.set(xlabel="tiny calls", ylabel="seconds", title="Run time, chunk_size=2")
    for axes in (left, right):
        axes.set_xticks(sizes, [f"{n:,}" for n in sizes])
        axes.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(STATIC / "checkpoint-cost.png", dpi=110)


def threads_vs_processes() -> None:
    heavy = [[calibrate()]] * 8
    labels, times = [], []
    for size in (1, 2):
        for engine in ("threads", "processes"):
            executor = "processes" if engine == "processes" else None
            elapsed = seconds(
                lambda size=size, executor=executor: chunk(
                    spin,
                    heavy,
                    chunk_size=size,
                    progress_bar=False,
                    executor=executor,
                )
            )
            labels.append(f"{engine}\nchunk_size={size}")
            times.append(elapsed)
            print(f"{engine:>9}, chunk_size={size}: {elapsed:.2f} s")
    figure, axes = plt.subplots(figsize=(6, 4))
    bars = axes.bar(labels, times, color=["#8da0cb", "#fc8d62"] * 2)
    axes.bar_label(bars, fmt="%.1f s")
    axes.margins(y=0.12)
    axes.set(ylabel="seconds", title="8 pure-Python calls of ~0.5 s, 2 cores")
    figure.tight_layout()
    figure.savefig(STATIC / "threads-vs-processes.png", dpi=110)


def tiny_calls() -> None:
    work = Workdir()
    try:
        measured = rates(work)
    finally:
        work.remove()
    figure, axes = plt.subplots(figsize=(8, 4.5))
    rows = range(len(measured))
    ours = axes.barh([r - 0.2 for r in rows], [m.ours for m in measured],
                     height=0.4, color="#fc8d62", label="thread-chunks")  # fmt: skip
    base = axes.barh([r + 0.2 for r in rows], [m.baseline for m in measured],
                     height=0.4, color="#8da0cb", label="baseline")  # fmt: skip
    axes.bar_label(ours, fmt="{:,.0f}", padding=3, fontsize=7)
    axes.bar_label(base, labels=[m.baseline_name for m in measured], padding=3,
                   fontsize=7)  # fmt: skip
    axes.set_yticks(list(rows), [m.what for m in measured], fontsize=8)
    axes.invert_yaxis()
    axes.set_xscale("log")
    axes.set_xlim(right=max(m.baseline for m in measured) * 20)
    axes.set(xlabel="calls per second (log scale)", title="Tiny calls, 2 cores")
    axes.legend(loc="lower right", fontsize=8)
    for m in measured:
        print(f"{m.what}: {m.ours:,.0f} calls/s, {m.baseline_name} {m.baseline:,.0f}")
    figure.tight_layout()
    figure.savefig(STATIC / "tiny-calls.png", dpi=110)


def main() -> None:
    STATIC.mkdir(parents=True, exist_ok=True)
    work = Workdir()
    try:
        checkpoint_cost(work)
    finally:
        work.remove()
    threads_vs_processes()
    tiny_calls()
    started = time.strftime("%Y-%m-%d")
    print(f"figures written to {STATIC} on {started}")


if __name__ == "__main__":
    main()
