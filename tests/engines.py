"""Module-level functions for the executor tests: plain pickle can send these."""

from __future__ import annotations

import os
import threading
import time
from typing import Any


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"bad input {x}")
    return x


def busy(n: int) -> int:
    """Pure-Python work that holds the GIL."""
    total = 0
    for i in range(n):
        total += i * i % 7
    return total


def meet(barrier: Any, counter: Any, lock: Any, peak: Any, x: int) -> tuple[int, int]:
    """Count how many calls run at once (across processes) and meet the others."""
    with lock:
        counter.value += 1
        peak.value = max(peak.value, counter.value)
    barrier.wait(timeout=60)  # the calls of one round must run at the same time
    with lock:
        counter.value -= 1
    return os.getpid(), x


def sleepy(x: int, seconds: float) -> int:
    time.sleep(seconds)
    return x


def logged(log: str, marker: str, x: int) -> int:
    """Log each call to the file ``log``; fail at 5 while the file ``marker`` exists."""
    with open(log, "a") as file:
        file.write(f"{x}\n")
    if x == 5 and os.path.exists(marker):
        raise ValueError(f"bad input {x}")
    return x


def hold(started: Any, release: Any, x: int) -> int:
    """Call 2 signals that it runs, then waits to be released."""
    if x == 2:
        started.set()
        if not release.wait(timeout=30):
            raise TimeoutError("never released")
    return x


def varied(x: int) -> Any:
    """Results of several kinds, and a failure for every seventh ``x``."""
    if x % 7 == 6:
        raise ValueError(f"bad input {x}")
    kinds = [None, x / 3, str(x), (x, [x]), {"x": x}, -0.0]
    return kinds[x % 6]


def unsendable_on(x: int, bad: int) -> Any:
    """Return a lock, which no pickler can send, when ``x == bad``."""
    return threading.Lock() if x == bad else x


class HoldsALock(Exception):
    """An exception that no pickler can send: it holds a lock."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.lock = threading.Lock()


def raise_unpicklable_on(x: int, bad: int) -> int:
    if x == bad:
        raise HoldsALock(f"bad input {x}")
    return x


def exit_on(x: int, bad: int) -> int:
    """End the worker process abruptly when ``x == bad``, as a crash would."""
    if x == bad:
        os._exit(1)
    return x


def marked(log: str, die_on: int, how: str, x: int) -> int:
    """Append ``start x`` and, once done, ``done x`` to the file ``log``.

    Call ``die_on`` ends its worker instead: ``how`` is ``"exit"``
    (``os._exit(1)``) or ``"kill"`` (SIGKILL, as the out-of-memory killer
    sends it).
    """
    with open(log, "a") as file:
        file.write(f"start {x}\n")
    if x == die_on:
        if how == "kill":
            os.kill(os.getpid(), 9)
        os._exit(1)
    with open(log, "a") as file:
        file.write(f"done {x}\n")
    return x


def marked_slow(log: str, die_on: int, how: str, seconds: float, x: int) -> int:
    """:func:`marked`, each call but ``die_on`` first sleeping ``seconds``."""
    if x != die_on:
        time.sleep(seconds)
    return marked(log, die_on, how, x)


def hang_on(pid_file: str, bad: int, x: int) -> int:
    """Call ``bad`` writes its worker's pid to ``pid_file`` and never returns."""
    if x == bad:
        # Written aside, then renamed: the file never exists empty for a reader.
        with open(pid_file + ".tmp", "w") as file:
            file.write(str(os.getpid()))
        os.replace(pid_file + ".tmp", pid_file)
        while True:
            time.sleep(1)
    return os.getpid()


def slow_from(start: int, seconds: float, x: int) -> int:
    """Calls from ``start`` on sleep ``seconds``; the others return at once."""
    if x >= start:
        time.sleep(seconds)
    return x


def wait_for_file(release: str, bad: int, x: int) -> int:
    """Call ``bad`` runs until the file ``release`` exists; the others return."""
    if x == bad:
        while not os.path.exists(release):
            time.sleep(0.01)
    return x
