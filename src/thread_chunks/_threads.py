"""Sync calls in worker threads, many per trip from the event loop.

A trip to a worker thread and back (``anyio.to_thread.run_sync``) costs tens
of microseconds: more than a tiny call. So each worker task's thread runs call
after call for a time slice (:data:`~thread_chunks._actors.TIME_SLICE`), then
goes back to the event loop with what it completed, which moves the progress
bar. A call longer than the slice ends its trip alone.
"""

from __future__ import annotations

import time
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

__all__ = ["Threads"]

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

    async def work(self, actor: Any) -> None:
        """Run slices of calls in a worker thread until none is left."""
        calls = self.calls
        cancelled = anyio.get_cancelled_exc_class()
        while not calls.stopped:
            try:
                indices, results, failure, exhausted = await anyio.to_thread.run_sync(
                    self._run_slice, actor, cancelled, limiter=self.limiter
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
