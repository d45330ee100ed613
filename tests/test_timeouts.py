"""``timeout=``: an attempt that takes too long fails with ``TimeoutError``.

Threads cannot be killed: the watchdog raises ``TimeoutError`` inside the
worker thread at its next Python line. Coroutines are cancelled.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from types import FrameType
from typing import Any

import anyio
import pytest

from tests.helpers import Spy
from thread_chunks import _threads, achunk, chunk
from thread_chunks._threads import Watchdog

set_async_exc = ctypes.pythonapi.PyThreadState_SetAsyncExc

BOUND = 10.0
"""Seconds: a run that hangs fails the test rather than the suite."""


def hung_loop(x: int) -> int:
    """Call 1 never ends, in Python; the others return at once."""
    while x == 1:
        time.sleep(0.01)
    return x


def test_a_hung_python_loop_in_a_thread_fails_with_timeout_error() -> None:
    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"timeout=0\.3") as caught:
        chunk(hung_loop, [[0], [1], [2]], chunk_size=2, timeout=0.3,
              progress_bar=False)  # fmt: skip
    assert time.monotonic() - started < BOUND
    assert "raised by call 1: hung_loop(*parameters[1])" in caught.value.__notes__[0]
    # The traceback shows where the call was when it was stopped.
    assert caught.traceback[-1].name == "hung_loop"


def test_with_errors_return_the_run_goes_on_after_a_timeout() -> None:
    out = chunk(hung_loop, [[i] for i in range(6)], chunk_size=2, timeout=0.2,
                errors="return", progress_bar=False)  # fmt: skip
    assert isinstance(out[1], TimeoutError)
    assert out[:1] + out[2:] == [0, 2, 3, 4, 5]


def test_retries_count_timeouts_as_attempts() -> None:
    attempts: list[int] = []

    def slow_twice(x: int) -> int:
        attempts.append(x)
        while len(attempts) <= 2:  # the first two attempts hang
            time.sleep(0.005)
        return x * 10

    out = chunk(slow_twice, [[7]], timeout=0.1, retries=2, retry_delay=0,
                progress_bar=False)  # fmt: skip
    assert out == [70]
    assert attempts == [7, 7, 7]


def test_a_call_that_always_hangs_is_tried_retries_plus_one_times() -> None:
    attempts: list[int] = []

    def always(x: int) -> int:
        attempts.append(x)
        while True:
            time.sleep(0.005)

    with pytest.raises(TimeoutError):
        chunk(always, [[3]], timeout=0.05, retries=2, retry_delay=0,
              progress_bar=False)  # fmt: skip
    assert attempts == [3, 3, 3]


def test_calls_ending_near_the_deadline_never_get_a_stray_timeout_later() -> None:
    """The watchdog's exception never lands after its call returned.

    Two threads run calls that spin until around the deadline (from 5% before
    to 5% after), each followed by many tiny calls with Python lines for a
    late exception to land on. A near call may time out (it is a race); a
    tiny one never may, and nothing lands in the library's own code, which
    would end the run.
    """
    timeout = 0.02
    rounds, tiny = 40, 40

    def f(kind: str, i: int) -> int:
        if kind == "near":
            end = time.perf_counter() + timeout * (0.95 + 0.1 * (i % 11) / 10)
            while time.perf_counter() < end:
                pass
        else:
            total = 0
            for k in range(50):
                total += k
        return i

    rows = []
    for r in range(rounds):
        rows.append(["near", r])
        rows += [["tiny", r * 1000 + k] for k in range(tiny)]
    out = chunk(f, rows, chunk_size=2, timeout=timeout, errors="return",
                progress_bar=False)  # fmt: skip
    for (kind, i), result in zip(rows, out, strict=True):
        if kind == "tiny" or not isinstance(result, TimeoutError):
            assert result == i, (kind, i, result)


def test_a_call_stuck_in_c_keeps_its_slot_until_it_returns() -> None:
    """Never more than chunk_size calls at once, timed out or not."""
    spy = Spy()

    def stuck(x: int) -> int:
        with spy:
            time.sleep(0.2)  # in C: the exception waits until it returns
        return x

    started = time.monotonic()
    out = chunk(stuck, [[i] for i in range(6)], chunk_size=2, timeout=0.05,
                errors="return", progress_bar=False)  # fmt: skip
    assert all(isinstance(r, TimeoutError) for r in out), out
    assert spy.peak == 2
    assert time.monotonic() - started >= 3 * 0.2  # 6 calls, 2 at a time


def test_a_timeout_leaves_the_worker_thread_fit_for_other_calls() -> None:
    seen: set[int] = set()

    def f(x: int) -> int:
        seen.add(threading.get_ident())
        while x == 0:
            time.sleep(0.005)
        return x

    out = chunk(f, [[i] for i in range(200)], chunk_size=1, timeout=0.1,
                errors="return", progress_bar=False)  # fmt: skip
    assert isinstance(out[0], TimeoutError)
    assert out[1:] == list(range(1, 200))
    names = [thread.name for thread in threading.enumerate()]
    assert "thread-chunks-watchdog" not in names, "the watchdog outlived its run"


def test_timeout_none_is_no_limit() -> None:
    def f(x: int) -> int:
        time.sleep(0.05)
        return x

    assert chunk(f, [[1], [2]], timeout=None, progress_bar=False) == [1, 2]


@pytest.mark.anyio
async def test_a_hung_coroutine_is_cancelled_with_timeout_error() -> None:
    cancelled: list[int] = []

    async def f(x: int) -> int:
        if x == 1:
            try:
                await anyio.sleep(1000)
            except anyio.get_cancelled_exc_class():
                cancelled.append(x)
                raise
        return x

    with anyio.fail_after(BOUND):
        out: list[Any] = await achunk(
            f, [[i] for i in range(4)], chunk_size=2, timeout=0.1,
            errors="return", progress_bar=False,
        )  # fmt: skip
    assert isinstance(out[1], TimeoutError)
    assert "timeout=0.1" in str(out[1])
    assert out[:1] + out[2:] == [0, 2, 3]
    assert cancelled == [1]


@pytest.mark.anyio
async def test_coroutine_timeouts_are_retried_then_raised() -> None:
    attempts: list[int] = []

    async def f(x: int) -> int:
        attempts.append(x)
        await anyio.sleep(1000)
        return x

    with anyio.fail_after(BOUND), pytest.raises(TimeoutError) as caught:
        await achunk(f, [[5]], timeout=0.05, retries=1, retry_delay=0,
                     progress_bar=False)  # fmt: skip
    assert attempts == [5, 5]
    assert "raised by call 0" in caught.value.__notes__[0]


@pytest.mark.anyio
async def test_a_coroutine_under_its_timeout_is_not_cancelled() -> None:
    async def f(x: int) -> int:
        await anyio.sleep(0.01)
        return x

    out = await achunk(f, [[1], [2]], timeout=5, progress_bar=False)
    assert out == [1, 2]


def test_a_watchdog_firing_while_the_call_is_in_c_raises_once_in_that_call() -> None:
    """The watchdog fires while the call is blocked in C code, which then
    returns: the exception lands in that call (which overran), once, and never
    in the Python lines the thread runs afterwards."""
    from thread_chunks._actors import LabelledActor
    from thread_chunks._threads import Threads, Watchdog

    gate = threading.Lock()
    gate.acquire()

    def ends_in_c() -> bool:
        return gate.acquire()  # blocked in C; returns straight to the caller

    watchdog = Watchdog(0.01)
    threads = Threads(calls=Any, limiter=Any, watchdog=watchdog)  # type: ignore[arg-type]
    outcome: list[Any] = []
    idents: list[int] = []

    def worker() -> None:
        idents.append(threading.get_ident())
        try:
            try:
                outcome.append(threads._timed_call(LabelledActor(ends_in_c), 0, []))
            except TimeoutError as exc:
                outcome.append(exc)
            # Python lines after the call, where a stray exception would land.
            for k in range(1000):
                outcome.append(k)
            outcome.append("clean")
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    deadline = time.monotonic() + BOUND
    while not (idents and idents[0] in watchdog._fired):  # it fired, in C
        assert time.monotonic() < deadline, "the watchdog never fired"
        time.sleep(0.001)
    gate.release()
    thread.join(BOUND)
    watchdog.close()
    assert isinstance(outcome[0], TimeoutError)
    assert "timeout=0.01" in str(outcome[0])
    assert outcome[-1] == "clean", outcome[-1]


@pytest.mark.anyio
async def test_cancelling_a_timed_run_lets_running_calls_finish_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Slices of calls end only when the run stops: the stop must come from
    # the cancellation itself, seen on the event loop, not from a slice's end.
    monkeypatch.setattr(_threads, "TIME_SLICE", BOUND)
    ran: list[int] = []
    running = threading.Event()
    release = threading.Event()

    def f(x: int) -> int:
        ran.append(x)
        if x == 3:
            running.set()
        if x >= 3:  # held until the run is cancelled
            assert release.wait(BOUND)
        return x

    async def cancel_when_running(scope: anyio.CancelScope) -> None:
        await anyio.to_thread.run_sync(running.wait, BOUND)
        scope.cancel()
        with anyio.CancelScope(shield=True):  # the run's tasks see it first
            await anyio.wait_all_tasks_blocked()
        release.set()

    with anyio.fail_after(BOUND):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(cancel_when_running, task_group.cancel_scope)
            await achunk(f, [[i] for i in range(1000)], chunk_size=2, timeout=5,
                         progress_bar=False)  # fmt: skip
    assert 3 in ran
    assert len(ran) <= 5, "the run went on after the cancellation"


@pytest.mark.parametrize("method", ["arm", "disarm"])
def test_a_timeout_landing_inside_arm_or_disarm_leaves_the_watchdog_usable(
    method: str,
) -> None:
    """The watchdog's exception lands at any Python line, even in its own code.

    A trace function raises ``TimeoutError`` where the real one could land:
    as the first Python function that ``arm``/``disarm`` calls returns (with
    a ``Condition`` as the lock, inside its ``__enter__``, the lock taken).
    The lock must be free afterwards, or every thread would hang on it.
    """
    watchdog = Watchdog(60)
    landed: list[str] = []

    def land(frame: FrameType, event: str, arg: Any) -> Any:
        caller = frame.f_back
        called_by_method = caller is not None and caller.f_code.co_name == method
        if event == "return" and called_by_method and not landed:
            landed.append(frame.f_code.co_name)
            raise TimeoutError
        return land

    def arm_and_disarm() -> None:
        watchdog.arm()
        watchdog.disarm()

    watchdog.arm()  # starts the watchdog's thread: disarm has nothing left
    tracer = sys.gettrace()  # a debugger's or coverage's, if any
    sys.settrace(land)
    try:
        getattr(watchdog, method)()
    except TimeoutError:
        pass
    finally:
        sys.settrace(tracer)
    other = threading.Thread(target=arm_and_disarm, daemon=True)
    other.start()
    other.join(timeout=10)
    assert not other.is_alive(), f"the lock was left taken ({landed})"
    watchdog.disarm()
    watchdog.close()


def test_a_timeout_leaves_no_pending_exception_flag_behind() -> None:
    """After a call timed out, a trace function (a debugger, coverage) works.

    CPython 3.11 and 3.12 keep one interpreter-wide flag for "a thread has an
    exception to raise". Withdrawing one with ``PyThreadState_SetAsyncExc(id,
    NULL)`` leaves it set with nothing to raise: every thread then takes the
    slow path at each function call (1.6 times slower on 3.12) and, on 3.11,
    a thread with a trace function loops forever at its next call.
    """
    with pytest.raises(TimeoutError):
        chunk(hung_loop, [[1]], timeout=0.05, progress_bar=False)
    events: list[str] = []

    def tracer(frame: FrameType, event: str, arg: Any) -> None:
        events.append(event)

    def traced() -> None:
        sys.settrace(tracer)
        try:
            abs_in_python(-1)
        except SystemExit:  # unstuck below
            pass
        finally:
            sys.settrace(None)

    thread = threading.Thread(target=traced, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # deliver something, which clears the flag
        set_async_exc(ctypes.c_ulong(thread.ident or 0), ctypes.py_object(SystemExit))
        thread.join()
    assert events == ["call"], "the traced thread hung at its next call"


def abs_in_python(x: int) -> int:
    return -x if x < 0 else x
