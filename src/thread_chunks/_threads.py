"""Sync calls in worker threads, many per trip from the event loop.

A trip to a worker thread and back (``anyio.to_thread.run_sync``) costs tens
of microseconds: more than a tiny call. So each worker task's thread runs call
after call for a time slice (:data:`~thread_chunks._actors.TIME_SLICE`), then
goes back to the event loop with what it completed, which moves the progress
bar. A call longer than the slice ends its trip alone.

A plain function runs at C speed, in *runs* of consecutive calls:
``results.extend(starmap(func, rows))``. A run is sized from the time its
calls took, so that it lasts no longer than the wait between two
cancellation checks of one call at a time (:data:`RUN_TIME`); a slow call
makes the next run a single call. While a worker runs a run, another worker
that needs calls takes the rest of it, the calls not started yet, before any
others: so the next call to start is always the next in order, and no call
waits behind a slow one.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import starmap
from operator import length_hint
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
    Row,
    call_row,
    run_row,
    timed_out,
)

__all__ = ["KEEP_EVERY", "RUN_TIME", "Threads", "Watchdog"]

RUN_TIME = CHECK_EVERY * LONG_CALL
"""Seconds a run of calls may last: ``CHECK_EVERY`` calls of ``LONG_CALL``.
Cancellation and the run's stop flag are checked between runs."""
_LONGEST_RUN = 4096

Slice = tuple[Sequence[int], list[Any], tuple[int, BaseException] | None, bool]
"""What a slice did: the calls it completed and their results (kept already;
when no result is streamed, a ``range`` as long as the calls and no results),
the failure that ended it, if any, and whether no call is left to start."""


class _Run:
    """Consecutive calls that one worker runs: their indices, rows and results.

    The owner runs the rows in order, appending each result to ``results``
    (``list.extend`` appends them one by one). Another worker may take the
    rows not started yet, all at once (``list`` of the iterator, which runs
    in C without releasing the GIL): the owner's calls are then a prefix of
    ``indices``, and the taker's the rest. Whoever holds the runs' lock may
    keep the results the owner has so far (:meth:`Threads._keep_done`), so
    that a slow call never holds back the results before it.
    """

    __slots__ = ("indices", "kept", "owned", "results", "rows")

    def __init__(
        self, indices: Sequence[int], rows: Iterator[Row], owned: bool = True
    ) -> None:
        self.indices = indices
        self.rows = rows
        self.results: list[Any] = []
        self.kept = 0
        """How many of ``results`` are kept already."""
        self.owned = owned
        """Whether a worker runs it (else: the rest of a run that failed)."""

    def first_left(self) -> int | None:
        """The index of the first call not started yet, if any."""
        left = length_hint(self.rows)
        return self.indices[len(self.indices) - left] if left else None


KEEP_EVERY = 0.1
"""Seconds: while a run's call is slow, the results before it are kept this
often (by :meth:`Threads.keep_results_of_runs`)."""


class Threads:
    """The strategy for sync functions: calls in worker threads, a slice a trip.

    At most ``limiter``'s number of threads run calls at once. With
    ``in_runs`` (every actor a plain :class:`LabelledActor`, no keyword rows,
    no timeout), calls run in runs at C speed; otherwise one at a time. With
    a ``watchdog`` (``timeout=``), each call is timed (:meth:`_timed_call`).
    """

    def __init__(
        self,
        calls: Calls,
        limiter: anyio.CapacityLimiter,
        in_runs: bool = False,
        watchdog: Watchdog | None = None,
    ) -> None:
        self.calls = calls
        self.limiter = limiter
        self.in_runs = in_runs
        self.watchdog = watchdog
        self._run_sizes: dict[int, int] = {}
        """The size of the next run of each worker (by its actor's ``id``),
        kept from one slice to the next."""
        self._runs: list[_Run] = []
        """The runs that may have calls not started yet."""
        self._runs_lock = threading.Lock()

    async def work(self, actor: Any) -> None:
        """Run slices of calls in a worker thread until none is left."""
        calls = self.calls
        cancelled = anyio.get_cancelled_exc_class()
        run_slice = self._run_slice_in_runs if self.in_runs else self._run_slice
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
        return await anyio.to_thread.run_sync(
            self._call_one, actor, index, row, limiter=self.limiter
        )

    @property
    def _call_one(self) -> Callable[[Any, int, Any], Any]:
        """How one call is made: :meth:`_timed_call` with a timeout, else
        :func:`_call`."""
        return _call if self.watchdog is None else self._timed_call

    def _run_slice(self, actor: Any, cancelled: type[BaseException]) -> Slice:
        """In a worker thread: run calls one at a time until the slice is used up.

        For actors that are not plain, rows of keyword arguments, and calls
        timed by the watchdog. No call starts once the run is stopped;
        cancellation and Ctrl-C are checked after any call that took a while
        (the run may have been cancelled meanwhile) and every few tiny ones.
        """
        calls = self.calls
        parameters, keep, take = calls.parameters, calls.completed_one, calls.take_one
        call_one = self._call_one
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
                result = call_one(actor, i, parameters[i])
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

    def _run_slice_in_runs(self, actor: Any, cancelled: type[BaseException]) -> Slice:
        """In a worker thread: run calls of a plain function, in runs, for a slice.

        ``list.extend`` keeps the results before a failing call, whose index
        is the one after them. The stop flag and cancellation are checked
        between runs, so no call starts once either is seen, but for the rest
        of a run.
        """
        calls = self.calls
        func = actor.get_func()
        indices: list[int] = []
        results: list[Any] = []
        # Unless results are streamed, only how many completed is reported.
        streaming, completed = calls.streaming, 0

        def report(failure: tuple[int, BaseException] | None, exhausted: bool) -> Slice:
            if streaming:
                return indices, results, failure, exhausted
            return range(completed), [], failure, exhausted

        clock, check_cancelled = time.perf_counter, anyio.from_thread.check_cancelled
        deadline = clock() + TIME_SLICE
        size = self._run_sizes.get(id(actor), 1)  # grows while calls are tiny
        while not calls.stopped:
            run = self._take_run(size)
            if run is None:
                return report(None, True)
            ran = run.results
            failure = None
            started = clock()
            try:
                ran.extend(starmap(func, run.rows))
            except BaseException as exc:  # handled on the event loop
                if calls.stops_the_run(exc):
                    calls.stop()  # no other slice starts a call now
                failure = (run.indices[len(ran)], exc)
            now = clock()
            self._end_run(run)  # its results are kept from here on
            if streaming:
                indices += run.indices[: len(ran)]
                results += ran
            completed += len(ran)
            if failure is not None:
                return report(failure, False)
            # The next run: as many calls as fit in half of RUN_TIME at this
            # run's pace, at most twice as many; one after a slow call.
            seconds = max(now - started, 1e-9)  # a clock may not have moved
            if seconds > RUN_TIME or seconds > LONG_CALL * max(len(ran), 1):
                size = 1
            elif len(ran) >= size:
                size = min(2 * size, _LONGEST_RUN, int(RUN_TIME / 2 / seconds * size))
                size = max(size, 1)
            try:
                check_cancelled()
            except cancelled:
                calls.stop()
                break
            if now >= deadline:
                break
        self._run_sizes[id(actor)] = size
        return report(None, False)

    def _take_run(self, size: int) -> _Run | None:
        """The next calls to start: the rest of a run, else up to ``size`` new ones.

        The calls a run has not started come before any not taken yet, so
        they go first, the lowest first. ``None``: no call is left to start.
        """
        with self._runs_lock:
            runs = self._runs
            firsts = [
                (first, k)
                for k, run in enumerate(runs)
                if (first := run.first_left()) is not None
            ]
            if firsts:
                oldest = runs[min(firsts)[1]]
                rest = list(oldest.rows)  # at once: its owner starts none of them
                if not oldest.owned:  # nothing left in it, and nobody runs it
                    runs.remove(oldest)
                if rest:
                    taken = oldest.indices[len(oldest.indices) - len(rest) :]
                    run = _Run(taken, iter(rest))
                    runs.append(run)
                    return run
            new = self.calls.take_run(size)
            if not new:
                return None
            parameters = self.calls.parameters
            if isinstance(new, range):  # consecutive: their rows are a slice
                rows = parameters[new.start : new.stop]
            else:
                rows = list(map(parameters.__getitem__, new))
            run = _Run(new, iter(rows))
            runs.append(run)
            return run

    def _end_run(self, run: _Run) -> None:
        """Its owner is done with ``run``: keep its results, let the rest go.

        After a failure, the calls it did not start stay for any worker to
        take (as a run of their own, without results).
        """
        with self._runs_lock:
            self._keep_done(run)
            self._runs.remove(run)
            if length_hint(run.rows):
                left = length_hint(run.rows)
                rest = _Run(run.indices[len(run.indices) - left :], run.rows, False)
                self._runs.append(rest)

    def _keep_done(self, run: _Run) -> None:
        """Keep the results of ``run`` not kept yet; hold the runs' lock."""
        done = len(run.results)
        if done > run.kept:
            first = run.kept
            self.calls.completed(run.indices[first:done], run.results[first:done])
            run.kept = done

    async def keep_results_of_runs(self, ended: anyio.Event) -> None:
        """On the event loop, until ``ended``: keep what running runs have done.

        A run's results are kept when it ends; this keeps, every
        :data:`KEEP_EVERY` seconds, those of a run whose call is slow. It
        ends on an event, not by being cancelled: a cancelled task's
        traceback holds its frame, and so this run's state, in a reference
        cycle that only the garbage collector frees, later and slowly.
        """
        while not ended.is_set():
            with anyio.move_on_after(KEEP_EVERY):
                await ended.wait()
            with self._runs_lock:
                for run in self._runs:
                    self._keep_done(run)

    # Timed calls (timeout=): each between the watchdog's arm and disarm.

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
                result = _call(actor, index, row)
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


def _call(actor: Any, index: int, row: Any) -> Any:
    """Call ``index`` on ``actor``; a plain LabelledActor only calls its function."""
    if type(actor) is LabelledActor:
        return call_row(actor.get_func(), row)
    _, result = run_row(actor, index, row)
    return result


_MISSING: Any = object()

_set_async_exc: Callable[[ctypes.c_ulong, Any], int] = (
    ctypes.pythonapi.PyThreadState_SetAsyncExc
)


class _Flush(BaseException):
    """Raised in a thread by itself, and caught: see :func:`_withdraw`."""


def _withdraw() -> None:
    """Withdraw the watchdog's exception from this thread, delivered or not.

    ``PyThreadState_SetAsyncExc(id, NULL)`` withdraws it, but on CPython 3.11
    and 3.12 it leaves the interpreter's flag that says "a thread has an
    exception to raise" set with nothing to raise: every thread then takes
    the slow path at each function call (1.6 times slower on 3.12), and on
    3.11 a thread with a trace function (a debugger, coverage) loops forever
    at its next call. Only a delivered exception clears the flag: one of our
    own is raised in this thread, at its next call, and caught here. If it
    is not raised there (another thread took the flag down first), it is
    withdrawn too.
    """
    ident = ctypes.c_ulong(threading.get_ident())
    _set_async_exc(ident, None)
    try:
        _set_async_exc(ident, ctypes.py_object(_Flush))
        _next_call()
        _set_async_exc(ident, None)
    except _Flush:
        pass


def _next_call() -> None:
    """Nothing: a call, where a pending exception is raised."""


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
        # Worker threads take the lock itself, a C object: an exception landing
        # at a Python line can never come between taking it and the ``with``
        # that releases it, as it could inside ``Condition.__enter__``.
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
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
                self._wakeup.notify()  # it slept with nothing to watch

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
                _withdraw()
            return fired

    def close(self) -> None:
        """End the watchdog's thread (at the end of the run), and wait for it."""
        with self._lock:
            self._closed = True
            self._wakeup.notify()
            thread = self._thread
        if thread is not None:
            thread.join()

    def _watch(self) -> None:
        wakeup, armed = self._wakeup, self._armed
        with wakeup:
            while not self._closed:
                if not armed:
                    wakeup.wait()
                    continue
                ident, deadline = next(iter(armed.items()))
                wait = deadline - time.monotonic()
                if wait > 0:
                    wakeup.wait(wait)
                    continue
                del armed[ident]
                self._fired.add(ident)
                exc = ctypes.py_object(TimeoutError)
                _set_async_exc(ctypes.c_ulong(ident), exc)
