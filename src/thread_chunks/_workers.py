"""The worker tasks of a run: each takes the next call, runs it, records it.

There are ``chunk_size`` of them, sharing one iterator of the calls to make,
so the next call starts the moment any one ends. A failing call is tried
again ``retries`` times (its worker waits, keeping its place: no more than
``chunk_size`` calls ever run), then handled as ``errors`` says.
"""

from __future__ import annotations

import random
import reprlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from itertools import islice
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._actors import LabelledActor
from ._batches import BatchSizes, run_batch, unpack
from ._executor import call_in_executor, wait_for_future
from ._failure import CallFailure
from ._plan import Plan
from ._ray import call_ray_actor
from ._store import CheckpointStore

__all__ = ["TIME_SLICE", "CallsFailed", "Emit", "Workers"]

TIME_SLICE = 0.005
"""Seconds of calls that a worker thread runs per trip from the event loop.

A trip costs about 70 µs here: over 5 ms it is under 2% of the time, while
the progress bar still moves every 5 ms. Cancellation is checked within the
slice (see ``_slice``)."""

_LONG_CALL = 0.00002  # seconds: after a call this long, check for cancellation
_CHECK_EVERY = 32  # and after every so many tiny calls

Emit = Callable[[int, Any], None]
"""Called on the event loop with ``(index, result)`` as each call completes
(``(index, exception)`` for a failure, with ``errors="return"``)."""


class CallsFailed(ExceptionGroup[Exception]):
    """The failures of a run with ``errors="defer"``: never unwrapped."""


class Workers:
    """The state shared by the worker tasks of one run."""

    def __init__(
        self,
        plan: Plan,
        outputs: list[Any],
        store: CheckpointStore | None,
        executor: Executor | None,
        emit: Emit | None,
        calls: int,
    ) -> None:
        """``calls`` is how many calls the run makes (those not saved before)."""
        self.plan = plan
        self.outputs = outputs
        self.store = store
        self.executor = executor
        self.emit = emit
        self.limiter = anyio.CapacityLimiter(plan.chunk_size)
        self.stopping: list[tuple[int, BaseException]] = []
        self._todo_lock = threading.Lock()  # worker threads share ``todo``
        self.halted = False
        """Set (from any thread) when no further call may start."""
        self.deferred: list[tuple[int, Exception]] = []
        self.batch_sizes = BatchSizes(calls, plan.chunk_size)

    async def work(self, actor: Any, todo: Iterator[int], bar: Any) -> None:
        """Take the next index from the shared ``todo`` until none is left."""
        if self.executor is not None:
            await self._work_in_batches(actor, todo, bar)
            return
        if not (self.plan.is_async or self.plan.on_ray):
            await self._work_in_slices(actor, todo, bar)
            return
        clock = time.perf_counter
        deadline = clock() + TIME_SLICE
        for count, i in enumerate(todo, 1):
            started = clock()
            if self.stopping or not await self._run_one(actor, i, bar):
                return
            # A coroutine that never awaits never lets the event loop run:
            # make room for the other tasks once a slice, and check for
            # cancellation as the threads do (see ``_slice``).
            now = clock()
            if now >= deadline:
                await anyio.lowlevel.checkpoint()
                deadline = clock() + TIME_SLICE
            elif now - started > _LONG_CALL or count % _CHECK_EVERY == 0:
                await anyio.lowlevel.checkpoint_if_cancelled()

    async def _run_one(self, actor: Any, i: int, bar: Any, failed: int = 0) -> bool:
        """Run call ``i``, ``failed`` attempts already made; say whether to go on."""
        try:
            result = await self._call_with_retries(actor, i, failed)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:
            if not self._failed(i, exc):
                return False
        except BaseException as exc:  # SystemExit too: stop, save, raise
            self.stopping.append((i, exc))
            return False
        else:
            self._completed(i, result)
        if bar is not None:
            bar.update()
        return True

    def _completed(self, i: int, result: Any) -> None:
        """Keep the result of call ``i``: in the outputs and the checkpoint."""
        self.outputs[i] = result
        if self.store is not None:
            self.store.record(i, result)
        if self.emit is not None:
            self.emit(i, result)

    def _completed_many(self, indices: list[int], results: list[Any]) -> None:
        """Keep the results of the calls ``indices`` (in ascending order)."""
        if not indices:
            return
        first, outputs = indices[0], self.outputs
        if indices[-1] - first + 1 == len(indices):  # a run of calls: at C speed
            outputs[first : first + len(indices)] = results
        else:
            for i, result in zip(indices, results, strict=True):
                outputs[i] = result
        if self.store is not None:
            self.store.record_many(indices, results)
        if self.emit is not None:
            for i, result in zip(indices, results, strict=True):
                self.emit(i, result)

    async def _work_in_batches(self, actor: Any, todo: Iterator[int], bar: Any) -> None:
        """Send calls to the executor in batches (see ``_batches``).

        Each batch's results are kept the moment it returns; its failures are
        then retried one call at a time, or handled as ``errors`` says.
        """
        assert self.executor is not None
        submit, func = self.executor.submit, actor.get_func()
        # Whether a failure ends the run, and whether results must be pickled.
        stop_at_failure = self._first_failure_stops
        pickled = not isinstance(self.executor, ThreadPoolExecutor)
        while not self.stopping:
            await anyio.lowlevel.checkpoint_if_cancelled()
            batch = list(islice(todo, self.batch_sizes.next_size()))
            if not batch:
                return
            arguments = [self.plan.parameters[i] for i in batch]
            async with self.limiter:
                sent_at = time.perf_counter()
                future = submit(run_batch, func, arguments, stop_at_failure, pickled)
                sent = await wait_for_future(future)
                # The round trip: what the batch cost, sending included.
                seconds = time.perf_counter() - sent_at
            outcome = unpack(sent)
            ran, results = batch[: len(outcome.results)], outcome.results
            self.batch_sizes.learn(len(ran), seconds)
            if outcome.failures:  # keep the others' results first
                failed = {position for position, _, _ in outcome.failures}
                kept = [p for p in range(len(ran)) if p not in failed]
                ran, results = [ran[p] for p in kept], [results[p] for p in kept]
            self._completed_many(ran, results)
            if bar is not None:
                bar.update(len(ran))
            for position, exc, _ in outcome.failures:
                if not await self._after_failure(actor, batch[position], exc, bar):
                    return

    async def _work_in_slices(self, actor: Any, todo: Iterator[int], bar: Any) -> None:
        """Run calls in a worker thread, many per trip, a time slice at a time.

        A trip to a worker thread and back costs tens of microseconds: more
        than a tiny call. So the thread runs call after call until
        :data:`TIME_SLICE` has passed, then returns to the event loop, which
        moves the progress bar. A call longer than the slice ends its trip
        alone, as before.
        """
        while not self.stopping:
            try:
                completed, failure, exhausted = await anyio.to_thread.run_sync(
                    self._slice, actor, todo, limiter=self.limiter
                )
            except anyio.get_cancelled_exc_class():
                self.halted = True  # the other slices end after their call
                raise
            if self.emit is not None:
                for i, result in completed:
                    self.emit(i, result)
            if bar is not None and completed:
                bar.update(len(completed))
            if failure is not None:
                i, exc = failure
                if not await self._after_failure(actor, i, exc, bar):
                    return
            if exhausted:
                return

    def _slice(
        self, actor: Any, todo: Iterator[int]
    ) -> tuple[list[tuple[int, Any]], tuple[int, BaseException] | None, bool]:
        """In a worker thread: run calls until the slice is used up.

        Returns the calls completed (already in the outputs and handed to the
        checkpoint), the failure that ended the slice, if any, and whether no
        call is left to start.
        """
        parameters, outputs, store = self.plan.parameters, self.outputs, self.store
        record = None if store is None else store.record
        # A plain LabelledActor only calls its function: call it directly.
        func = actor.get_func() if type(actor) is LabelledActor else None
        completed: list[tuple[int, Any]] = []
        clock, lock = time.perf_counter, self._todo_lock
        check_cancelled = anyio.from_thread.check_cancelled
        deadline = clock() + TIME_SLICE
        while not (self.halted or self.stopping):
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
                if self._stops_the_run(exc):
                    self.halted = True  # no other slice starts a call now
                return completed, (i, exc), False
            outputs[i] = result
            if record is not None:
                record(i, result)
            completed.append((i, result))
            now = clock()
            # Cancellation and Ctrl-C: checked after any call that took a
            # while (the run may have been cancelled meanwhile), and every
            # few tiny ones, so that no call starts once they are seen.
            if now - started > _LONG_CALL or len(completed) % _CHECK_EVERY == 0:
                try:
                    check_cancelled()
                except BaseException:
                    self.halted = True
                    break
            if now >= deadline:
                break
        return completed, None, False

    def _stops_the_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a call's first attempt, ends the run."""
        return not isinstance(exc, Exception) or self._first_failure_stops

    @property
    def _first_failure_stops(self) -> bool:
        """Whether the first failure of a call (an Exception) ends the run."""
        return self.plan.errors == "raise" and self.plan.retries == 0

    async def _after_failure(
        self, actor: Any, i: int, exc: BaseException, bar: Any
    ) -> bool:
        """Retry call ``i``, which raised ``exc`` once; return whether to go on."""
        if not isinstance(exc, Exception):
            self.stopping.append((i, exc))
            return False
        if self.plan.retries:
            return await self._run_one(actor, i, bar, failed=1)
        going_on = self._failed(i, exc)
        if going_on and bar is not None:
            bar.update()
        return going_on

    def _failed(self, i: int, exc: Exception) -> bool:
        """Handle the failure of call ``i``; return whether to go on."""
        self._note(i, exc)
        if self.store is not None:
            self.store.record_failure(i, CallFailure.of(exc, self.plan.retries + 1))
        if self.plan.errors == "raise":
            self.stopping.append((i, exc))
            return False
        if self.plan.errors == "defer":
            self.deferred.append((i, exc))
        else:  # "return"
            self.outputs[i] = exc
            if self.emit is not None:
                self.emit(i, exc)
        return True

    async def _call_with_retries(self, actor: Any, i: int, failed: int = 0) -> Any:
        """Call ``i``, and again after each failure, up to ``retries`` times."""
        while True:
            if failed:  # exponential backoff with jitter; cancellation cuts it
                delay = self.plan.retry_delay * 2 ** (failed - 1)
                await anyio.sleep(delay * random.uniform(0.5, 1.5))
            try:
                return await self._call(actor, i, self.plan.parameters[i])
            except Exception:
                failed += 1
                if failed > self.plan.retries:
                    raise

    async def _call(self, actor: Any, i: int, args: Sequence[Any]) -> Any:
        if self.plan.on_ray:
            async with self.limiter:
                return await call_ray_actor(actor, i, args)
        if self.executor is not None:
            async with self.limiter:
                return await call_in_executor(self.executor, actor.get_func(), args)
        if not self.plan.is_async:
            _, result = await anyio.to_thread.run_sync(
                actor.run, i, *args, limiter=self.limiter
            )
            return result
        # One call at a time per worker task: no limiter needed. Unlike a
        # thread, a coroutine can be cancelled: it has no result yet.
        _, coroutine = actor.run(i, *args)
        return await coroutine

    def _note(self, i: int, exc: BaseException) -> None:
        exc.add_note(
            f"raised by call {i}: {self.plan.func_name}(*parameters[{i}]) with "
            f"parameters[{i}] = {reprlib.repr(self.plan.parameters[i])}"
        )

    def raise_failures(self) -> None:
        """Raise what stopped the run, or the deferred failures as a group."""
        if self.stopping:
            i, exc = self.stopping[0]
            if not isinstance(exc, Exception):
                self._note(i, exc)
            for j, other in self.stopping[1:]:
                exc.add_note(f"call {j} failed too: {type(other).__name__}: {other}")
            raise exc
        if self.deferred:
            n = len(self.plan.parameters)
            failed = sorted(self.deferred, key=lambda pair: pair[0])
            raise CallsFailed(
                f"{len(failed)} of {n} calls failed; every other result is "
                "saved, and a rerun computes only the failed ones",
                [exc for _, exc in failed],
            )
