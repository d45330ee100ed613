"""The core loop: run every call, at most ``chunk_size`` at a time, in order."""

from __future__ import annotations

import logging
import reprlib
from collections.abc import Callable, Coroutine, Iterable, Sequence
from concurrent.futures import Executor
from contextlib import AsyncExitStack
from os import PathLike
from typing import Any, TypeVar, overload

import anyio
import anyio.to_thread

from ._actors import LabelledActor
from ._errors import unwrapped_exception_groups
from ._executor import call_in_executor, opened_executor
from ._plan import Plan, make_plan
from ._progress import open_progress_bar
from ._store import CheckpointStore

__all__ = ["achunk", "run_plan"]

R = TypeVar("R")
logger = logging.getLogger("thread_chunks")


@overload
async def achunk(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Iterable[Sequence[Any]],
    *,
    chunk_size: int | None = ...,
    progress_bar: bool | None = ...,
    path: str | PathLike[str] | None = ...,
    actors: Sequence[LabelledActor] | None = ...,
    checkpoint_every: float = ...,
    executor: Executor | str | None = ...,
) -> list[R]: ...
@overload
async def achunk(
    func: Callable[..., R],
    parameters: Iterable[Sequence[Any]],
    *,
    chunk_size: int | None = ...,
    progress_bar: bool | None = ...,
    path: str | PathLike[str] | None = ...,
    actors: Sequence[LabelledActor] | None = ...,
    checkpoint_every: float = ...,
    executor: Executor | str | None = ...,
) -> list[R]: ...
@overload
async def achunk(
    func: None,
    parameters: Iterable[Sequence[Any]],
    *,
    chunk_size: int | None = ...,
    progress_bar: bool | None = ...,
    path: str | PathLike[str] | None = ...,
    actors: Sequence[LabelledActor],
    checkpoint_every: float = ...,
    executor: Executor | str | None = ...,
) -> list[Any]: ...
async def achunk(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    *,
    chunk_size: int | None = None,
    progress_bar: bool | None = None,
    path: str | PathLike[str] | None = None,
    actors: Sequence[LabelledActor] | None = None,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
) -> list[Any]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    Sync functions run in worker threads, coroutine functions on the event
    loop; at most ``chunk_size`` calls run at once and the next starts as soon
    as one finishes. Works under asyncio and trio.

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
    parameters : iterable of lists or tuples
        One argument list per call: call ``i`` is ``func(*parameters[i])``.
    chunk_size : int, optional
        The most calls running at once. Defaults to ``len(actors)`` if actors
        are given, else to ``thread_chunks.config.default_chunk_size``.
    progress_bar : bool, optional
        Show a tqdm progress bar. Defaults to ``thread_chunks.config.progress_bar``.
    path : str or os.PathLike, optional
        A checkpoint file. Each result is saved as soon as its call completes,
        and a rerun with the same function name and parameters skips every
        call already saved. Other function names or parameters replace the file.
    actors : list of LabelledActor, optional
        Exactly ``chunk_size`` workers; each call borrows one for its duration.
    checkpoint_every : float, optional
        The least number of seconds between two checkpoint writes. ``0`` (the
        default) writes as soon as possible; a few seconds saves disk syncs when
        calls take milliseconds, at the risk of recomputing that much on a crash.
    executor : concurrent.futures.Executor or 'processes', optional
        Run each call on this executor instead of in a thread: a process pool,
        a Dask cluster (``client.get_executor(pure=False)``), an MPI pool. At
        most ``chunk_size`` calls are submitted at once; this process still
        saves the checkpoint and shows progress. ``'processes'`` creates (and
        closes) a loky process pool of ``chunk_size`` workers, which runs
        lambdas too; it needs ``pip install 'thread-chunks[processes]'``.

        .. versionadded:: 2.0

    Returns
    -------
    list
        ``[func(*args) for args in parameters]``, in order.

    Raises
    ------
    TypeError, ValueError
        For a bad argument, before any call runs.
    OSError
        If the checkpoint file cannot be written, before any call runs.
    Exception
        The first exception raised by ``func``, once the calls already running
        have finished and their results are saved; a note names the call.

    Examples
    --------
    >>> import anyio
    >>> from thread_chunks import achunk
    >>> async def main():
    ...     return await achunk(pow, [[2, 5], [3, 3]], chunk_size=2,
    ...                         progress_bar=False)
    >>> anyio.run(main)
    [32, 27]
    """
    plan = make_plan(
        func,
        parameters,
        actors=actors,
        chunk_size=chunk_size,
        progress_bar=progress_bar,
        path=path,
        checkpoint_every=checkpoint_every,
        executor=executor,
    )
    with unwrapped_exception_groups():
        return await run_plan(plan)


async def run_plan(plan: Plan) -> list[Any]:
    """Run a checked :class:`Plan` and return its outputs in order."""
    n = len(plan.parameters)
    if n == 0:
        return []
    outputs: list[Any] = [None] * n
    done = [False] * n
    store = None
    # Closed in reverse order, however the run ends: the calls, the executor,
    # the progress bar, and last the checkpoint, which saves what they left.
    async with AsyncExitStack() as stack:
        if plan.path is not None:
            store = await CheckpointStore.open(
                plan.path, plan.func_name, plan.parameters, plan.checkpoint_every
            )
            await stack.enter_async_context(store.running())
            outputs = list(store.checkpoint.output)
            done = list(store.checkpoint.completed)
        already_done = sum(done)
        bar = _progress(plan, already_done)
        if bar is not None:
            stack.callback(bar.close)
        executor = await stack.enter_async_context(
            opened_executor(plan.executor, plan.chunk_size)
        )
        runner = _Runner(plan, outputs, store, executor)
        todo = (i for i in range(n) if not done[i])
        async with anyio.create_task_group() as task_group:
            for actor in plan.actors[: n - already_done]:
                task_group.start_soon(runner.work, actor, todo, bar)
    runner.raise_first_failure()
    return outputs


def _progress(plan: Plan, already_done: int) -> Any:
    if not plan.progress_bar:
        return None
    description = plan.func_name
    if already_done:
        description += f" (resumed, {already_done} done before)"
    return open_progress_bar(len(plan.parameters), already_done, description)


class _Runner:
    """The state shared by the worker tasks of one run."""

    def __init__(
        self,
        plan: Plan,
        outputs: list[Any],
        store: CheckpointStore | None,
        executor: Executor | None,
    ) -> None:
        self.plan = plan
        self.outputs = outputs
        self.store = store
        self.executor = executor
        self.limiter = anyio.CapacityLimiter(plan.chunk_size)
        self.failures: list[tuple[int, Exception]] = []

    async def work(self, actor: LabelledActor, todo: Iterable[int], bar: Any) -> None:
        """Take the next index from the shared ``todo`` until none is left."""
        parameters, outputs, store = self.plan.parameters, self.outputs, self.store
        for i in todo:
            if self.failures:
                return
            if store is not None:
                store.started = max(store.started, i)
            try:
                result = await self._call(actor, i, parameters[i])
            except Exception as exc:
                self.failures.append((i, exc))
                return
            outputs[i] = result
            if store is not None:
                store.record(i, result)
            if bar is not None:
                bar.update()

    async def _call(self, actor: LabelledActor, i: int, args: Sequence[Any]) -> Any:
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

    def raise_first_failure(self) -> None:
        """Raise the first exception a call raised, noting which call it was."""
        if not self.failures:
            return
        i, exc = self.failures[0]
        exc.add_note(
            f"raised by call {i}: {self.plan.func_name}(*parameters[{i}]) with "
            f"parameters[{i}] = {reprlib.repr(self.plan.parameters[i])}"
        )
        for j, other in self.failures:
            if other is not exc:
                exc.add_note(f"call {j} failed too: {type(other).__name__}: {other}")
        raise exc
