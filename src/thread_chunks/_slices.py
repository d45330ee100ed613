"""Sync calls in worker threads, many per trip from the event loop.

A trip to a worker thread and back (``anyio.to_thread.run_sync``) costs tens
of microseconds: more than a tiny call. So each worker task's thread runs call
after call for a time slice, handing each result to the checkpoint as its call
returns, then goes back to the event loop, which moves the progress bar.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.to_thread

from ._actors import LabelledActor

if TYPE_CHECKING:
    from ._workers import Workers

__all__ = ["CHECK_EVERY", "LONG_CALL", "TIME_SLICE", "run_slice", "work_in_slices"]

TIME_SLICE = 0.005
"""Seconds of calls that a worker thread runs per trip from the event loop.

A trip costs about 70 µs here: over 5 ms it is under 2% of the time, while
the progress bar still moves every 5 ms. Cancellation is checked within the
slice (see :func:`run_slice`)."""

LONG_CALL = 0.00002  # seconds: after a call this long, check for cancellation
CHECK_EVERY = 32  # and after every so many tiny calls


async def work_in_slices(
    workers: Workers, actor: Any, todo: Iterator[int], bar: Any
) -> None:
    """Run calls in a worker thread, many per trip, a time slice at a time.

    A trip to a worker thread and back costs tens of microseconds: more
    than a tiny call. So the thread runs call after call until
    :data:`TIME_SLICE` has passed, then returns to the event loop, which
    moves the progress bar. A call longer than the slice ends its trip
    alone, as before.
    """
    while not workers.stopping:
        try:
            completed, failure, exhausted = await anyio.to_thread.run_sync(
                run_slice, workers, actor, todo, limiter=workers.limiter
            )
        except anyio.get_cancelled_exc_class():
            workers.halted = True  # the other slices end after their call
            raise
        if workers.emit is not None:
            for i, result in completed:
                workers.emit(i, result)
        if bar is not None and completed:
            bar.update(len(completed))
        if failure is not None:
            i, exc = failure
            if not await workers.after_failure(actor, i, exc, bar):
                return
        if exhausted:
            return


def run_slice(
    workers: Workers, actor: Any, todo: Iterator[int]
) -> tuple[list[tuple[int, Any]], tuple[int, BaseException] | None, bool]:
    """In a worker thread: run calls until the slice is used up.

    Returns the calls completed (already in the outputs and handed to the
    checkpoint), the failure that ended the slice, if any, and whether no
    call is left to start.
    """
    parameters, outputs, store = workers.plan.parameters, workers.outputs, workers.store
    record = None if store is None else store.record
    # A plain LabelledActor only calls its function: call it directly.
    func = actor.get_func() if type(actor) is LabelledActor else None
    completed: list[tuple[int, Any]] = []
    clock, lock = time.perf_counter, workers.todo_lock
    check_cancelled = anyio.from_thread.check_cancelled
    deadline = clock() + TIME_SLICE
    while not (workers.halted or workers.stopping):
        with lock:
            i = next(todo, None)
        if i is None:
            return completed, None, True
        started = clock()
        try:
            if func is not None:
                result = func(*parameters[i])
            else:
                _, result = actor.run(i, *parameters[i])
        except BaseException as exc:  # handled on the event loop
            if workers.stops_the_run(exc):
                workers.halted = True  # no other slice starts a call now
            return completed, (i, exc), False
        outputs[i] = result
        if record is not None:
            record(i, result)
        completed.append((i, result))
        now = clock()
        # Cancellation and Ctrl-C: checked after any call that took a
        # while (the run may have been cancelled meanwhile), and every
        # few tiny ones, so that no call starts once they are seen.
        if now - started > LONG_CALL or len(completed) % CHECK_EVERY == 0:
            try:
                check_cancelled()
            except BaseException:
                workers.halted = True
                break
        if now >= deadline:
            break
    return completed, None, False
