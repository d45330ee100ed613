"""The core loop: run every call, at most ``chunk_size`` at a time, in order."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Iterable, Sequence
from contextlib import AsyncExitStack
from typing import Any, TypeVar, Unpack, overload

import anyio
import anyio.to_thread

from ._errors import unwrapped_exception_groups
from ._executor import opened_executor
from ._notices import Notices
from ._options import Options, OptionsDict
from ._plan import Plan, make_plan
from ._progress import open_progress_bar
from ._signatures import takes_options
from ._store import CheckpointStore
from ._workers import Emit, Workers

__all__ = ["achunk", "drive", "run_plan", "run_plan_captured"]

R = TypeVar("R")
logger = logging.getLogger("thread_chunks")


@overload
async def achunk(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> list[R]: ...
@overload
async def achunk(
    func: Callable[..., R],
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> list[R]: ...
@overload
async def achunk(
    func: None, parameters: Iterable[Sequence[Any]], **options: Unpack[OptionsDict]
) -> list[Any]: ...
@takes_options(OptionsDict)
async def achunk(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> list[Any]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    Sync functions run in worker threads, coroutine functions on the event
    loop; at most ``chunk_size`` calls run at once and the next starts as soon
    as one finishes. Works under asyncio and trio. Every option is keyword-only.

    Parameters
    ----------
    {func_and_parameters}
    {options}

    {outcome}

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
    return await drive(make_plan(func, parameters, Options(**options)))


async def drive(plan: Plan) -> list[Any]:
    """Run ``plan`` on the current event loop; warn from the caller's caller.

    The run's warnings are issued here, as they come, so that they point at the
    line that called the entry point (two frames up) and a warning turned into
    an error stops the run like any exception.
    """
    notices = Notices()
    outcome: list[list[Any] | BaseException] = []

    async def run() -> None:
        outcome.append(await run_plan_captured(plan, notices))

    with unwrapped_exception_groups():
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run)
            while not notices.ended:
                await notices.wait()
                notices.issue(stacklevel=3)
        notices.issue(stacklevel=3)
        if isinstance(outcome[0], BaseException):
            raise outcome[0]  # raised here, in the caller's task, after warnings
    return outcome[0]


async def run_plan_captured(
    plan: Plan, notices: Notices, emit: Emit | None = None
) -> list[Any] | BaseException:
    """Run ``plan``; return its outputs, or the exception it raised.

    A ``KeyboardInterrupt`` or ``SystemExit`` that escapes a task stops an
    asyncio event loop on the spot, with a long report of the tasks it left
    behind. So everything but cancellation is returned, for the entry point
    to raise from its own task or thread once the run is over. Ends
    ``notices`` however the run ends.
    """
    try:
        return await run_plan(plan, notices, emit)
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as exc:
        return exc
    finally:
        notices.end()


async def run_plan(plan: Plan, notices: Notices, emit: Emit | None = None) -> list[Any]:
    """Run a checked :class:`Plan` and return its outputs in order.

    ``emit`` sees each result as it comes: first those of earlier runs, then
    each new one as its call completes.
    """
    n = len(plan.parameters)
    if n == 0:
        return []
    outputs: list[Any] = [None] * n
    store = None
    # Closed in reverse order, however the run ends: the calls, the executor,
    # the progress bar, and last the checkpoint, which saves what they left.
    async with AsyncExitStack() as stack:
        if plan.path is not None:
            store = await CheckpointStore.open(
                plan.path,
                plan.function,
                plan.parameters,
                plan.checkpoint_every,
                notices,
            )
            await stack.enter_async_context(store.running())
            for i, result in store.results.items():
                outputs[i] = result
                if emit is not None:
                    emit(i, result)
        done = set() if store is None else set(store.results)
        bar = _progress(plan, len(done))
        if bar is not None:
            stack.callback(bar.close)
        executor = await stack.enter_async_context(
            opened_executor(plan.executor, plan.chunk_size)
        )
        workers = Workers(plan, outputs, store, executor, emit, n - len(done))
        todo = (i for i in range(n) if i not in done)
        async with anyio.create_task_group() as task_group:
            for actor in plan.actors[: n - len(done)]:
                task_group.start_soon(workers.work, actor, todo, bar)
    workers.raise_failures()
    return outputs


def _progress(plan: Plan, already_done: int) -> Any:
    if plan.progress_bar is None:
        return None
    description = plan.func_name
    if already_done:
        description += f" (resumed, {already_done} done before)"
    return open_progress_bar(
        len(plan.parameters), already_done, description, plan.progress_bar
    )
