"""Benchmark: how fast a hung call is given up on, and a second signal ends a run.

Run ``python bench/stopping.py``. Each figure is measured in this run and
printed beside its target:

- ``timeout=1`` on a thread whose call loops on ``time.sleep(0.01)`` forever:
  seconds until ``chunk`` raises that call's ``TimeoutError`` (target 1.5 s);
- the same for a coroutine that awaits forever (target 1.5 s);
- ``chunk_size=10**9`` for 2 calls: seconds and peak traced memory;
- a second Ctrl-C or SIGTERM while calls hang in C (``time.sleep(1000)``),
  on threads, ``chunk_iter`` and ``executor="processes"``: seconds from the
  second signal until the process has ended (target 2 s).

Each timing is the worst of three runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import anyio

from thread_chunks import chunk

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "child.py"


def hung_loop(x: int) -> int:
    while True:
        time.sleep(0.01)


async def hung_coroutine(x: int) -> int:
    await anyio.sleep(10**6)
    return x


def timed_out_after(func: object) -> float:
    started = time.perf_counter()
    try:
        chunk(func, [[0]], timeout=1, progress_bar=False)  # type: ignore[call-overload]
    except TimeoutError:
        return time.perf_counter() - started
    raise AssertionError("no TimeoutError")


def huge_chunk_size() -> tuple[float, int]:
    tracemalloc.start()
    started = time.perf_counter()
    chunk(abs, [[-1], [-2]], chunk_size=10**9, progress_bar=False)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return seconds, peak


def second_signal(runner: str, signum: int) -> float:
    """Seconds from a second signal until the child process has ended."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "log.txt"
        log.touch()
        args = [str(Path(tmp) / "ck.pkl"), str(log), "20", "2", "1000", "0"]
        process = subprocess.Popen(
            [sys.executable, str(CHILD), *args, runner, "4"],
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(os.environ, PYTHONPATH=f"{ROOT / 'src'}:{ROOT}"),
        )
        try:

            def send() -> None:
                if runner == "processes" and signum == signal.SIGINT:
                    os.killpg(process.pid, signum)  # as a terminal does
                else:
                    process.send_signal(signum)

            wait_for(log, lambda text: text.count("start") >= 6)
            send()
            wait_for(log, lambda text: "waiting for the running calls" in text)
            sent = time.perf_counter()
            send()
            process.wait(60)
            return time.perf_counter() - sent
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # worker processes left
            process.wait()


def wait_for(log: Path, condition: object) -> None:
    deadline = time.monotonic() + 60
    while not condition(log.read_text()):  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the child did not get there")
        time.sleep(0.001)


def main() -> None:
    rows = []
    rows.append(
        ("timeout=1, thread in a Python loop", max(timed_out_after(hung_loop)
                                                   for _ in range(3)), 1.5)
    )  # fmt: skip
    rows.append(
        ("timeout=1, coroutine awaiting forever",
         max(timed_out_after(hung_coroutine) for _ in range(3)), 1.5)
    )  # fmt: skip
    seconds, peak = huge_chunk_size()
    print(f"chunk_size=10**9, 2 calls: {seconds:.3f} s, peak {peak / 2**20:.2f} MB")
    for runner in ["chunk", "iter", "processes"]:
        for name in ["SIGINT", "SIGTERM"]:
            signum = getattr(signal, name)
            worst = max(second_signal(runner, signum) for _ in range(3))
            rows.append((f"second {name}, {runner}, calls hung in C", worst, 2.0))
    width = max(len(name) for name, _, _ in rows)
    for name, value, target in rows:
        verdict = "ok" if value <= target else "MISSED"
        print(f"{name:<{width}}  {value:6.2f} s  (target {target} s)  {verdict}")


if __name__ == "__main__":
    main()
