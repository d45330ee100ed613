"""Sync calls in worker threads, many per trip from the event loop.

A trip to a worker thread and back (``anyio.to_thread.run_sync``) costs tens
of microseconds: more than a tiny call. So each worker task's thread runs call
after call for a time slice (:data:`~thread_chunks._actors.TIME_SLICE`), then
goes back to the event loop with what it completed, which moves the progress
bar. A call longer than the slice ends its trip alone.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._actors import (
    CHECK_EVERY,
    LONG_CALL,
    TIME_SLICE,
    Calls,
    LabelledActor,
    call_row,
    run_row,
    timed_out,
)

__all__ = ["Threads", "Watchdog"]

Slice = tuple[list[int], list[Any], tuple[int, BaseException] | None, bool]
"""What a slice did: the calls it completed and their results (kept already),
the failure that ended it, if any, and whether no call is left to start."""


class Threads:
    """The strategy for sync functions: calls in worker threads, a slice a trip.

    At most ``limiter``'s number of threads run calls at once. With a
    ``watchdog`` (``timeout=``), each call is timed (:meth:`_run_slice_timed`).
    """

    def __init__(
        self,
        calls: Calls,
        limiter: anyio.CapacityLimiter,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.calls = calls
        self.limiter = limiter
        self.watchdog = watchdog

    async def work(self, actor: Any) -> None:
        """Run slices of calls in a worker thread until none is left."""
        calls = self.calls
        cancelled = anyio.get_cancelled_exc_class()
        run_slice = self._run_slice if self.watchdog is None else self._run_slice_timed
        while not calls.stopped:
            try:
                indices, results, failure, exhausted = await anyio.to_thread.run_sync(
                    run_slice, actor, cancelled, limiter=self.limiter
                )
            except cancelled:
                calls.stop()  # the other slices end after their call
                raise
            if indices:
                calls.reported(indices, results)
            # A cancellation the slice saw is raised here, in the task.
            await anyio.lowlevel.checkpoint_if_cancelled()
            if failure is not None:
                i, exc = failure
                if not await calls.failed(actor, i, exc):
                    return
            if exhausted:
                return

    async def call(self, actor: Any, index: int) -> Any:
        """One attempt at call ``index`` in a worker thread (a retry)."""
        row = self.calls.parameters[index]
        if self.watchdog is not None:
            make = self._timed_call
            return await anyio.to_thread.run_sync(
                make, actor, index, row, limiter=self.limiter
            )
        _, result = await anyio.to_thread.run_sync(
            run_row, actor, index, row, limiter=self.limiter
        )
        return result

    def _run_slice(self, actor: Any, cancelled: type[BaseException]) -> Slice:
        """In a worker thread: run calls until the slice is used up.

        No call starts once the run is stopped; cancellation and Ctrl-C are
        checked after any call that took a while (the run may have been
        cancelled meanwhile) and every few tiny ones.
        """
        calls = self.calls
        parameters, keep = calls.parameters, calls.completed_one
        keywords = calls.keywords  # some rows are mappings of keyword arguments
        # A plain LabelledActor only calls its function: call it directly.
        func = actor.get_func() if type(actor) is LabelledActor else None
        indices: list[int] = []
        results: list[Any] = []
        failure: tuple[int, BaseException] | None = None
        exhausted = False
        clock, check_cancelled = time.perf_counter, anyio.from_thread.check_cancelled
        deadline = clock() + TIME_SLICE
        take = calls.take_one
        while not calls.stopped:
            i = take()
            if i is None:
                exhausted = True
                break
            started = clock()
            try:
                if func is None:
                    _, result = run_row(actor, i, parameters[i])
                elif keywords:
                    result = call_row(func, parameters[i])
                else:
                    result = func(*parameters[i])
            except BaseException as exc:  # handled on the event loop
                if calls.stops_the_run(exc):
                    calls.stop()  # no other slice starts a call now
                failure = (i, exc)
                break
            keep(i, result)  # saved at once, while the slice goes on
            indices.append(i)
            results.append(result)
            now = clock()
            if now - started > LONG_CALL or len(indices) % CHECK_EVERY == 0:
                try:
                    check_cancelled()
                except cancelled:
                    calls.stop()
                    break
            if now >= deadline:
                break
        return indices, results, failure, exhausted

    # Timed calls (timeout=): one call at a time, each between the watchdog's
    # arm and disarm, so that its start and end are known.

    def _run_slice_timed(self, actor: Any, cancelled: type[BaseException]) -> Slice:
        """In a worker thread: :meth:`_run_slice`, each call timed by the watchdog."""
        calls = self.calls
        parameters, keep, take = calls.parameters, calls.completed_one, calls.take_one
        timed = self._timed_call
        indices: list[int] = []
        results: list[Any] = []
        failure: tuple[int, BaseException] | None = None
        exhausted = False
        clock, check_cancelled = time.perf_counter, anyio.from_thread.check_cancelled
        deadline = clock() + TIME_SLICE
        while not calls.stopped:
            i = take()
            if i is None:
                exhausted = True
                break
            started = clock()
            try:
                result = timed(actor, i, parameters[i])
            except BaseException as exc:  # handled on the event loop
                if calls.stops_the_run(exc):
                    calls.stop()
                failure = (i, exc)
                break
            keep(i, result)
            indices.append(i)
            results.append(result)
            now = clock()
            if now - started > LONG_CALL or len(indices) % CHECK_EVERY == 0:
                try:
                    check_cancelled()
                except cancelled:
                    calls.stop()
                    break
            if now >= deadline:
                break
        return indices, results, failure, exhausted

    def _timed_call(self, actor: Any, index: int, row: Any) -> Any:
        """In a worker thread: call ``index``, raising ``TimeoutError`` if it overran.

        The watchdog's exception can land at any Python line between
        :meth:`Watchdog.arm` and the moment :meth:`Watchdog.disarm` holds its
        lock, and at most once: every such line is inside the ``try`` below.
        If it lands after the call returned, the result stands.
        """
        watchdog = self.watchdog
        assert watchdog is not None
        result: Any = _MISSING
        try:
            watchdog.arm()
            try:
                if type(actor) is LabelledActor:  # only calls its function
                    result = call_row(actor.get_func(), row)
                else:
                    _, result = run_row(actor, index, row)
            finally:
                watchdog.disarm()
        except BaseException as exc:
            # Whatever happened above, the watchdog is disarmed from here on.
            if not watchdog.disarm() or not isinstance(exc, TimeoutError):
                raise
            if result is not _MISSING:  # landed after the call returned
                return result
            raise timed_out(watchdog.timeout).with_traceback(
                exc.__traceback__
            ) from None
        return result


_MISSING: Any = object()

_set_async_exc: Callable[[ctypes.c_ulong, Any], int] = (
    ctypes.pythonapi.PyThreadState_SetAsyncExc
)


class Watchdog:
    """Raises ``TimeoutError`` in a worker thread whose call overran ``timeout``.

    One per run, in a daemon thread of its own that sleeps until the earliest
    deadline. A worker thread calls :meth:`arm` before a call and
    :meth:`disarm` after it; the watchdog raises the exception (with
    ``PyThreadState_SetAsyncExc``, at the thread's next Python line) only
    while the call is armed and holding the lock that :meth:`disarm` takes,
    and :meth:`disarm` withdraws one not yet raised: it never reaches a call
    that returned in time, nor the thread's next call. A thread blocked in C
    code (a long ``time.sleep``, a socket read) sees it once that returns.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._lock = threading.Condition(threading.Lock())
        self._armed: dict[int, float] = {}
        """Thread id -> deadline, earliest first (every call has the same timeout)."""
        self._fired: set[int] = set()
        """The threads whose armed call the watchdog stopped."""
        self._thread: threading.Thread | None = None
        self._closed = False

    def arm(self) -> None:
        """Start timing this thread's call."""
        ident = threading.get_ident()
        with self._lock:
            self._fired.discard(ident)
            self._armed.pop(ident, None)  # re-inserted last: the latest deadline
            self._armed[ident] = time.monotonic() + self.timeout
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._watch, name="thread-chunks-watchdog", daemon=True
                )
                self._thread.start()
            elif len(self._armed) == 1:
                self._lock.notify()  # it slept with nothing to watch

    def disarm(self) -> bool:
        """Stop timing this thread's call; return whether the watchdog stopped it.

        Idempotent until the next :meth:`arm`. A ``TimeoutError`` raised but
        not yet delivered is withdrawn.
        """
        ident = threading.get_ident()
        with self._lock:
            self._armed.pop(ident, None)
            fired = ident in self._fired
            if fired:
                _set_async_exc(ctypes.c_ulong(ident), None)
            return fired

    def close(self) -> None:
        """End the watchdog's thread (at the end of the run), and wait for it."""
        with self._lock:
            self._closed = True
            self._lock.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _watch(self) -> None:
        lock, armed = self._lock, self._armed
        with lock:
            while not self._closed:
                if not armed:
                    lock.wait()
                    continue
                ident, deadline = next(iter(armed.items()))
                wait = deadline - time.monotonic()
                if wait > 0:
                    lock.wait(wait)
                    continue
                del armed[ident]
                self._fired.add(ident)
                exc = ctypes.py_object(TimeoutError)
                _set_async_exc(ctypes.c_ulong(ident), exc)
