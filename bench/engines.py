"""Benchmark: threads against processes, and the cost of each call per engine.

Run ``python bench/engines.py``. All figures come from this one run.

1. Eight calls of a pure-Python loop (about 0.5 s each), ``chunk_size=2``:
   ``executor="processes"`` against threads, which the GIL serialises.
2. 2,000 tiny calls: calls per second through threads, through
   ``executor="processes"``, and through a bare ``ProcessPoolExecutor.map``.
3. Calls that fail alone (issue 19), ``executor="processes"``, ``chunk_size=2``:
   1,000 calls of 0.5 ms then 40 calls of 0.25 s, the driving process killed
   (SIGKILL) or stopped (SIGTERM) at random instants, 10 trials each: the
   finished calls missing from the checkpoint, and the time SIGTERM takes;
   30 calls of which one calls ``os._exit(1)``; one call that hangs, ``timeout=1``.
   The driver of the kill trials is this script, run with ``--child``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

from thread_chunks import Checkpoint, WorkerDied, chunk
from thread_chunks._executor import BUDGET


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


FAST, SLOW, N_FAST, N_SLOW = 0.0005, 0.25, 1_000, 40


def marked(log: str, die_on: int, x: int) -> int:
    """Sleep as call ``x`` of the kill trials does; append ``x`` once finished."""
    if x == die_on:
        os._exit(1)
    time.sleep(FAST if x < N_FAST else SLOW)
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{x}\n".encode())
    finally:
        os.close(fd)
    return x


def hang(x: int) -> int:
    while True:
        time.sleep(1)


def child(path: str, log: str) -> None:
    """The driver of a kill trial: the fast calls, then the slow ones."""
    chunk(partial(marked, log, -1), [[x] for x in range(N_FAST + N_SLOW)],
          chunk_size=2, executor="processes", path=path,
          progress_bar=False)  # fmt: skip


def finished(log: Path) -> Counter[int]:
    return Counter(int(x) for x in log.read_text().split())


def kill_trial(signum: int, rng: random.Random) -> tuple[int, float]:
    """One trial: (finished calls not in the checkpoint, seconds to exit)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, log = Path(tmp) / "ck.pkl", Path(tmp) / "log.txt"
        log.touch()
        process = subprocess.Popen(
            [sys.executable, __file__, "--child", str(path), str(log)],
            stderr=subprocess.DEVNULL,  # its notes on SIGTERM
        )
        while not log.read_text():  # the pool has started
            time.sleep(0.01)
        time.sleep(rng.uniform(0, N_FAST * FAST / 2 + N_SLOW * SLOW / 2))
        sent = time.perf_counter()
        process.send_signal(signum)
        process.wait()
        seconds = time.perf_counter() - sent
        time.sleep(0.2)  # the workers die with the driver
        done = set(finished(log))
        saved = set()
        if path.exists():
            completed = Checkpoint.load(path).completed
            saved = {x for x, c in enumerate(completed) if c}
        return len(done - saved), seconds


def dead_worker_run(first: int, each: str) -> tuple[str, str, str]:
    """30 calls from ``first`` on, the 14th of which ends its worker."""
    xs = list(range(first, first + 30))
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        log.touch()
        start = time.perf_counter()
        out = chunk(partial(marked, str(log), xs[13]), [[x] for x in xs],
                    chunk_size=2, executor="processes", errors="return",
                    progress_bar=False)  # fmt: skip
        elapsed = time.perf_counter() - start
        counts = finished(log)
    others = xs[:13] + xs[14:]
    alone = isinstance(out[13], WorkerDied) and out[:13] + out[14:] == others
    twice = sum(counts[x] > 1 for x in others)
    once = alone and twice == 0 and all(counts[x] == 1 for x in others)
    verdict = "ok" if once else "MISSED"
    return (
        f"  30 calls of {each}, one os._exit(1)s, errors='return'",
        f"{elapsed:.2f} s",
        f"WorkerDied for it alone: {alone}; calls run twice: {twice} {verdict}",
    )


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], sys.argv[3])
        return
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
    rng = random.Random(19)
    trials = 10
    lost = [kill_trial(signal.SIGKILL, rng)[0] for _ in range(trials)]
    exits = [kill_trial(signal.SIGTERM, rng)[1] for _ in range(trials)]
    lost_bound = 2 * (1 + BUDGET / SLOW)
    exit_bound = SLOW + BUDGET + 0.5

    died_rows = [dead_worker_run(N_FAST, "0.25 s"), dead_worker_run(0, "0.5 ms")]

    start = time.perf_counter()
    hung = chunk(hang, [[0]], chunk_size=2, executor="processes", timeout=1,
                 errors="return", progress_bar=False)  # fmt: skip
    t_hung = time.perf_counter() - start
    hung_ok = isinstance(hung[0], TimeoutError) and t_hung <= 1.5

    def verdict(ok: bool) -> str:
        return "ok" if ok else "MISSED"

    rows += [
        (f"calls that fail alone: {N_FAST:,} x {FAST * 1e3:g} ms then "
         f"{N_SLOW} x {SLOW:g} s, chunk_size=2, processes", "", ""),
        ("  SIGKILL at 10 random instants: finished, not saved",
         f"most {max(lost)}, mean {sum(lost) / trials:.1f}",
         f"target <= {lost_bound:.1f} (budget {BUDGET:g} s) "
         f"{verdict(max(lost) <= lost_bound)}"),
        ("  SIGTERM at 10 random instants: time to exit",
         f"most {max(exits):.2f} s, mean {sum(exits) / trials:.2f} s",
         f"target <= {exit_bound:.2f} s {verdict(max(exits) <= exit_bound)}"),
        *died_rows,
        ("  one call that hangs, timeout=1",
         f"{t_hung:.2f} s", f"TimeoutError, target <= 1.5 s {verdict(hung_ok)}"),
    ]  # fmt: skip
    widths = [max(len(r[k]) for r in rows) for k in range(3)]
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
