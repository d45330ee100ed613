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
from concurrent.futures import Executor
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread

from ._batches import BatchSizes
from ._executor import call_in_executor
from ._failure import CallFailure
from ._plan import Plan
from ._ray import call_ray_actor
from ._sending import work_in_batches
from ._slices import CHECK_EVERY, LONG_CALL, TIME_SLICE, work_in_slices
from ._store import CheckpointStore

__all__ = ["CallsFailed", "Emit", "Workers"]

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
        self.todo_lock = threading.Lock()
        """Held by a worker thread taking the next index from ``todo``."""
        self.halted = False
        """Set (from any thread) when no further call may start."""
        self.deferred: list[tuple[int, Exception]] = []
        self.batch_sizes = BatchSizes(calls, plan.chunk_size)

    async def work(self, actor: Any, todo: Iterator[int], bar: Any) -> None:
        """Take the next index from the shared ``todo`` until none is left."""
        if self.executor is not None:
            await work_in_batches(self, actor, todo, bar)
            return
        if not (self.plan.is_async or self.plan.on_ray):
            await work_in_slices(self, actor, todo, bar)
            return
        await self._work_one_at_a_time(actor, todo, bar)

    async def _work_one_at_a_time(
        self, actor: Any, todo: Iterator[int], bar: Any
    ) -> None:
        """Await one call after another: coroutines, and calls on Ray actors."""
        clock = time.perf_counter
        deadline = clock() + TIME_SLICE
        for count, i in enumerate(todo, 1):
            started = clock()
            if self.stopping or not await self._run_one(actor, i, bar):
                return
            # A coroutine that never awaits never lets the event loop run:
            # make room for the other tasks once a slice, and check for
            # cancellation as the threads do (see ``run_slice``).
            now = clock()
            if now >= deadline:
                await anyio.lowlevel.checkpoint()
                deadline = clock() + TIME_SLICE
            elif now - started > LONG_CALL or count % CHECK_EVERY == 0:
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

    def completed_many(self, indices: list[int], results: list[Any]) -> None:
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

    def stops_the_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a call's first attempt, ends the run."""
        return not isinstance(exc, Exception) or self.first_failure_stops

    @property
    def first_failure_stops(self) -> bool:
        """Whether the first failure of a call (an Exception) ends the run."""
        return self.plan.errors == "raise" and self.plan.retries == 0

    async def after_failure(
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
