"""A second Ctrl-C or SIGTERM ends the process, whatever its calls are doing.

Real child processes (``child.py``) whose later calls hang in C code
(``time.sleep``), where no Python line runs for the watchdog or a signal
handler to act on: the first signal's orderly stop would wait for them forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.test_crash import Child, wait_until
from thread_chunks import Checkpoint, chunk

BOUND = 10.0
"""Seconds: generous, for a loaded machine; the target is under 2 s."""

SIGNALS = {"SIGINT": signal.SIGINT, "SIGTERM": signal.SIGTERM}


@pytest.mark.parametrize("name", sorted(SIGNALS))
@pytest.mark.parametrize("runner", ["chunk", "iter", "processes", "coroutine"])
def test_a_second_signal_ends_a_run_whose_calls_hang_in_c(
    tmp_path: Path, runner: str, name: str
) -> None:
    signum = SIGNALS[name]
    processes = runner == "processes"
    # Calls 0-3 return at once, the others sleep 1000 s in C.
    child = Child(tmp_path, 20, chunk_size=2, delay=1000, runner=runner,
                  new_session=True, hang_from=4)  # fmt: skip
    try:
        # Calls 4 and 5 hang; a coroutine hung in C blocks the event loop,
        # so that call 5 never starts.
        child.wait_for("start", 5 if runner == "coroutine" else 6)
        wait_until(child, lambda: set(child.lines("committed")) >= {0, 1, 2, 3})

        def send() -> None:
            if processes and signum == signal.SIGINT:  # as a terminal does
                os.killpg(child.process.pid, signum)
            else:
                child.process.send_signal(signum)

        send()
        wait_until(child, lambda: "waiting for the running calls" in log(child))
        sent = time.monotonic()
        send()
        # Not communicate(): worker processes left behind would hold stderr.
        returncode = child.process.wait(BOUND)
        assert time.monotonic() - sent < BOUND
        assert returncode == -signum
        assert "stopping now" in log(child)
        checkpoint = Checkpoint.load(child.path)
        assert checkpoint.completed[:4] == [True] * 4
        assert checkpoint.output[:4] == [0, 1, 4, 9]
        assert not any(checkpoint.completed[4:])
    finally:
        with_group_killed(child)  # and worker processes, if the run left any


def test_sighup_stops_the_run_the_orderly_way(tmp_path: Path) -> None:
    n = 20
    child = Child(tmp_path, n, chunk_size=2, delay=0.5)
    child.wait_for("start", 2)
    child.process.send_signal(signal.SIGHUP)  # a closed terminal, a dropped ssh
    returncode, stderr = child.finish()
    assert returncode == 128 + signal.SIGHUP, stderr
    assert "logged SIGHUP: waiting for the running calls" in log(child)
    started, done = child.lines("start"), child.lines("done")
    assert sorted(started) == sorted(done), "a running call was lost"
    assert len(done) < n, "the run went on after SIGHUP"
    checkpoint = Checkpoint.load(child.path)
    assert [i for i, d in enumerate(checkpoint.completed) if d] == sorted(done)


def log(child: Child) -> str:
    return child.log.read_text()


def with_group_killed(child: Child) -> None:
    """Kill the child's process group (it has one of its own) or the child."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.process.pid, signal.SIGKILL)
    if child.process.poll() is None:
        child.process.kill()
    child.process.communicate(timeout=BOUND)  # closes its stderr


@pytest.mark.parametrize("notebook", [False, True])
def test_a_second_interrupt_never_ends_a_notebook_kernel(
    monkeypatch: pytest.MonkeyPatch, notebook: bool
) -> None:
    """In a kernel it raises KeyboardInterrupt, as before: the kernel lives."""
    from thread_chunks import _host

    monkeypatch.setattr(_host, "in_notebook", lambda: notebook)
    # Python's own handler, as a script has it (Dask's examples install one).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    with _host.signals_end_the_process(threading.Event()):
        kept = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    try:
        assert kept == notebook
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("which", ["first", "second"])
def test_a_signal_caught_by_another_thread_reaches_the_run(
    monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    """Python runs signal handlers in the main thread only, once it runs again.

    The kernel may hand a process's signal to any of its threads (here: the
    helper thread, with ``pthread_kill``). A main thread asleep until the next
    result, or until the run has stopped, would never see it while the calls
    hang: it wakes up often enough to run the handler within a second.
    """
    from thread_chunks import _host

    started, release, ended_now = (
        threading.Event(),
        threading.Event(),
        threading.Event(),
    )
    seen: list[bool] = []

    def hold(x: int) -> int:
        started.set()
        release.wait(30)
        return x

    def fake_end_now(signum: int, finished: threading.Event | None) -> None:
        ended_now.set()  # the real one would end the pytest process

    monkeypatch.setattr(_host, "end_now", fake_end_now)

    def interrupt_from_here() -> None:
        try:
            started.wait(30)
            if which == "second":  # the first one reaches the main thread
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
                assert main_thread_waits_in("close")
            else:
                assert main_thread_waits_in("next_blocking")
            # Sent once the main thread waits: before, it would run the handler.
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)
            if which == "first":  # the orderly stop began
                seen.append(main_thread_waits_in("close", timeout=10))
            else:
                seen.append(ended_now.wait(10))
        finally:
            release.set()

    # Python's own handler (importing dask_jobqueue.runner replaces it).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    helper = threading.Thread(target=interrupt_from_here)
    helper.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            chunk(hold, [[1], [2]], chunk_size=2, progress_bar=False)
    finally:
        release.set()
        helper.join()
        signal.signal(signal.SIGINT, previous)
    assert seen == [True], f"the {which} Ctrl-C was not seen while the calls ran"


def main_thread_waits_in(function: str, timeout: float = 30) -> bool:
    """Whether the main thread comes to wait on a lock, called from ``function``.

    Not a short wait, such as for a call to the event loop's thread.
    """
    deadline = time.monotonic() + timeout
    main = threading.main_thread().ident or 0
    while time.monotonic() < deadline:
        frame = sys._current_frames().get(main)
        names = []
        while frame is not None:
            names.append(frame.f_code.co_name)
            frame = frame.f_back
        waiting = names[:1] in (["wait"], ["_wait_for_tstate_lock"])  # a lock, a join
        if waiting and function in names and "start_task_soon" not in names:
            return True
        time.sleep(0.001)
    return False


def test_a_second_signal_takes_no_lock_the_main_thread_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``end_now`` runs in a signal handler, in the main thread, at any line.

    There it may interrupt ``close()`` inside ``finished.wait()``, which holds
    the event's lock: waiting on the event again would wait forever.
    """
    finished = threading.Event()
    lock = finished._cond  # type: ignore[attr-defined]  # as in finished.wait()
    assert ends_while_holding(monkeypatch, lock, finished), (
        "the second signal waited for a lock held by its thread"
    )


def test_a_second_signal_logs_without_a_lock_the_main_thread_may_hold(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A logging handler's lock may be held where the signal lands (a
    ``QueueHandler``'s is not reentrant): the handler must not wait for it."""

    class Quiet(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            pass

    held = Quiet()
    held.lock = threading.Lock()  # type: ignore[assignment]  # not reentrant
    logger = logging.getLogger("thread_chunks")
    logger.addHandler(held)
    try:
        ended = ends_while_holding(monkeypatch, held.lock, None)
    finally:
        logger.removeHandler(held)
    assert ended, "the second signal waited for a logging lock"


def ends_while_holding(
    monkeypatch: pytest.MonkeyPatch, lock: Any, finished: threading.Event | None
) -> bool:
    """Whether ``end_now`` gets to end the process in a thread holding ``lock``.

    It runs in a thread, so that a deadlock fails the test instead of hanging
    it, with a ``signal`` module of its own that raises instead of ending.
    """
    import types

    from thread_chunks import _host

    class Ended(Exception):
        pass

    def raise_signal(signum: int) -> None:
        raise Ended

    fake = types.SimpleNamespace(SIGINT=signal.SIGINT, SIG_DFL=signal.SIG_DFL,
                                 Signals=signal.Signals, raise_signal=raise_signal,
                                 signal=lambda *_: None)  # fmt: skip
    monkeypatch.setattr(_host, "signal", fake)
    monkeypatch.setattr(_host, "GRACE", 0.05)
    ended: list[bool] = []

    def interrupted_holding_the_lock() -> None:
        with lock:
            try:
                _host.end_now(signal.SIGINT, finished)
            except Ended:
                ended.append(True)

    thread = threading.Thread(target=interrupted_holding_the_lock, daemon=True)
    thread.start()
    thread.join(10)
    return ended == [True]
