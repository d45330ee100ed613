"""Sync calls in worker threads, many per trip from the event loop.

A trip to a worker thread and back (``anyio.to_thread.run_sync``) costs tens
of microseconds: more than a tiny call. So each worker task's thread runs call
after call for a time slice (:data:`~thread_chunks._actors.TIME_SLICE`), then
goes back to the event loop with what it completed, which moves the progress
bar. A call longer than the slice ends its trip alone.

A plain function runs at C speed, in *runs* of calls:
``results.extend(starmap(func, rows))``, where each index is taken only as its
call starts (so the next call to start is always the next in order). A run
is sized from the time its calls took, so that it lasts no longer than the
wait between two cancellation checks of one call at a time
(:data:`RUN_TIME`); a slow call makes the next run a single call.
"""

from __future__ import annotations

import time
from itertools import islice, starmap, tee
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
)

__all__ = ["RUN_TIME", "Threads"]

RUN_TIME = CHECK_EVERY * LONG_CALL
"""Seconds a run of calls may last: ``CHECK_EVERY`` calls of ``LONG_CALL``.
Cancellation and the run's stop flag are checked between runs."""
_LONGEST_RUN = 4096

Slice = tuple[list[int], list[Any], tuple[int, BaseException] | None, bool]
"""What a slice did: the calls it completed and their results (kept already),
the failure that ended it, if any, and whether no call is left to start."""


class Threads:
    """The strategy for sync functions: calls in worker threads, a slice a trip.

    At most ``limiter``'s number of threads run calls at once.
    """

    def __init__(self, calls: Calls, limiter: anyio.CapacityLimiter) -> None:
        self.calls = calls
        self.limiter = limiter
        self._run_sizes: dict[int, int] = {}
        """The size of the next run of each worker (by its actor's ``id``),
        kept from one slice to the next."""

    async def work(self, actor: Any) -> None:
        """Run slices of calls in a worker thread until none is left."""
        calls = self.calls
        cancelled = anyio.get_cancelled_exc_class()
        # A plain LabelledActor only calls its function: runs of calls at C speed.
        in_runs = type(actor) is LabelledActor and not calls.keywords
        run_slice = self._run_slice_in_runs if in_runs else self._run_slice
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
        _, result = await anyio.to_thread.run_sync(
            run_row, actor, index, self.calls.parameters[index], limiter=self.limiter
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

    def _run_slice_in_runs(self, actor: Any, cancelled: type[BaseException]) -> Slice:
        """In a worker thread: run calls of a plain function, in runs, for a slice.

        ``list.extend`` keeps the results before a failing call, whose index
        is the one after them. The stop flag and cancellation are checked
        between runs, so no call starts once either is seen, within a run.
        """
        calls = self.calls
        func, row = actor.get_func(), calls.parameters.__getitem__
        keep, take = calls.completed, calls.take_lazily
        indices: list[int] = []
        results: list[Any] = []
        clock, check_cancelled = time.perf_counter, anyio.from_thread.check_cancelled
        deadline = clock() + TIME_SLICE
        size = self._run_sizes.get(id(actor), 1)  # grows while calls are tiny
        while not calls.stopped:
            starting, taken = tee(take(size))
            ran: list[Any] = []
            started = clock()
            try:
                ran.extend(starmap(func, map(row, starting)))
            except BaseException as exc:  # handled on the event loop
                done = list(islice(taken, len(ran) + 1))
                if ran:
                    keep(done[:-1], ran)
                    indices += done[:-1]
                    results += ran
                if calls.stops_the_run(exc):
                    calls.stop()  # no other slice starts a call now
                return indices, results, (done[-1], exc), False
            now = clock()
            if ran:
                done = list(islice(taken, len(ran)))
                keep(done, ran)  # saved at once, while the slice goes on
                indices += done
                results += ran
            if len(ran) < size:
                return indices, results, None, True
            # The next run: as many calls as fit in half of RUN_TIME at this
            # run's pace, at most twice as many; one after a slow call.
            seconds = now - started
            if seconds > RUN_TIME or seconds > LONG_CALL * size:
                size = 1
            else:
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
        return indices, results, None, False
