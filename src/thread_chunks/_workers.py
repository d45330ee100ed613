"""The worker tasks of a run: each takes the next call, runs it, records it.

There are ``chunk_size`` of them, sharing one iterator of the calls to make,
so the next call starts the moment any one ends. A failing call is tried
again ``retries`` times (its worker waits, keeping its place: no more than
``chunk_size`` calls ever run), then handled as ``errors`` says.
"""

from __future__ import annotations

import random
import reprlib
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any

import anyio
import anyio.to_thread

from ._executor import call_in_executor
from ._failure import CallFailure
from ._plan import Plan
from ._ray import call_ray_actor
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
    ) -> None:
        self.plan = plan
        self.outputs = outputs
        self.store = store
        self.executor = executor
        self.emit = emit
        self.limiter = anyio.CapacityLimiter(plan.chunk_size)
        self.stopping: list[tuple[int, BaseException]] = []
        self.deferred: list[tuple[int, Exception]] = []

    async def work(self, actor: Any, todo: Iterable[int], bar: Any) -> None:
        """Take the next index from the shared ``todo`` until none is left."""
        parameters, outputs, store = self.plan.parameters, self.outputs, self.store
        for i in todo:
            if self.stopping:
                return
            try:
                result = await self._call_with_retries(actor, i, parameters[i])
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as exc:
                if not self._failed(i, exc):
                    return
            except BaseException as exc:  # SystemExit too: stop, save, raise
                self.stopping.append((i, exc))
                return
            else:
                outputs[i] = result
                if store is not None:
                    store.record(i, result)
                if self.emit is not None:
                    self.emit(i, result)
            if bar is not None:
                bar.update()

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

    async def _call_with_retries(self, actor: Any, i: int, args: Sequence[Any]) -> Any:
        for attempt in range(self.plan.retries):
            try:
                return await self._call(actor, i, args)
            except Exception:
                # Exponential backoff with jitter; cancellation cuts it short.
                delay = self.plan.retry_delay * 2**attempt
                await anyio.sleep(delay * random.uniform(0.5, 1.5))
        return await self._call(actor, i, args)

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
        async with self.limiter:
            # Unlike a thread, a coroutine can be cancelled: it has no result yet.
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
