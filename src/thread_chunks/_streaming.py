"""Results as they complete: :func:`chunk_iter` and :func:`achunk_iter`."""

from __future__ import annotations

import inspect
import math
import queue
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
    Sequence,
)
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar, Unpack, overload

import anyio
from anyio.from_thread import start_blocking_portal

from ._core import run_plan_captured
from ._errors import unwrapped_exception_groups
from ._notices import Notices
from ._options import Options, OptionsDict
from ._plan import Plan, make_plan
from ._signals import Terminated, sigterm_stops_the_run
from ._signatures import takes_options
from ._sync import log_stopping

__all__ = ["achunk_iter", "chunk_iter"]

R = TypeVar("R")
_END = object()


@overload
def chunk_iter(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> Iterator[tuple[int, R]]: ...
@overload
def chunk_iter(
    func: Callable[..., R] | None,
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> Iterator[tuple[int, R]]: ...
@takes_options(OptionsDict)
def chunk_iter(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> Iterator[tuple[int, Any]]:
    """Yield ``(index, result)`` for every call, in the order calls complete.

    Runs like :func:`chunk`, with the same options (all keyword-only here).
    Results saved by an earlier run come first, at once. With
    ``errors="return"``, a failed call yields ``(index, exception)``.
    Arguments are checked at once, before anything runs. Leaving the loop
    early (``break``, an exception in its body, ``close()``) stops the run
    the orderly way: running calls finish and are saved, nothing is left
    running, and the next run resumes.

    Parameters
    ----------
    {func_and_parameters}
    {options}

    Yields
    ------
    tuple
        ``(index, func(*parameters[index]))``, as each call completes.

    Examples
    --------
    >>> from thread_chunks import chunk_iter
    >>> sorted(chunk_iter(pow, [[2, 3], [3, 2]], progress_bar=False))
    [(0, 8), (1, 9)]
    """
    return _iterate(make_plan(func, parameters, Options(**options)))


def _iterate(plan: Plan) -> Iterator[tuple[int, Any]]:
    if not plan.parameters:
        return
    notices = Notices()
    results: queue.SimpleQueue[Any] = queue.SimpleQueue()
    with (
        sigterm_stops_the_run(),
        unwrapped_exception_groups(),
        start_blocking_portal("asyncio", name="thread-chunks") as portal,
    ):
        future = portal.start_task_soon(
            run_plan_captured, plan, notices, lambda i, r: results.put((i, r))
        )
        future.add_done_callback(lambda _: results.put(_END))
        try:
            while (item := results.get()) is not _END:
                notices.issue(stacklevel=2)
                yield item
            notices.issue(stacklevel=2)
            outcome = future.result()
        except (KeyboardInterrupt, Terminated) as exc:
            log_stopping(exc)
            future.cancel()
            raise
        except (GeneratorExit, Exception):
            # A loop left early, a warning turned error: stop the run, and
            # leaving the portal waits for it to save.
            future.cancel()
            raise
    if isinstance(outcome, BaseException):
        raise outcome


@takes_options(OptionsDict)
@asynccontextmanager
async def achunk_iter(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    **options: Unpack[OptionsDict],
) -> AsyncIterator[AsyncIterator[tuple[int, Any]]]:
    """Run like :func:`achunk`; give ``(index, result)`` pairs as calls complete.

    An async context manager that owns the run and hands out an async
    iterator of its results, in the order calls complete (results saved by an
    earlier run first). Leaving the block, however early, stops the run the
    orderly way: running calls finish and are saved. An error of the run is
    raised when the block is left. Following trio's rule, the iterator is a
    stream read from a task group, not a generator that yields inside one.

    Parameters
    ----------
    {func_and_parameters}
    {options}

    Yields
    ------
    async iterator of tuple
        ``(index, func(*parameters[index]))``, as each call completes.

    Examples
    --------
    >>> import anyio
    >>> from thread_chunks import achunk_iter
    >>> async def main():
    ...     async with achunk_iter(abs, [[-1], [-2]], progress_bar=False) as results:
    ...         return sorted([pair async for pair in results])
    >>> anyio.run(main)
    [(0, 1), (1, 2)]
    """
    plan = make_plan(func, parameters, Options(**options))
    notices = Notices()
    send, receive = anyio.create_memory_object_stream[tuple[int, Any]](math.inf)
    outcome: list[list[Any] | BaseException] = []

    def emit(index: int, result: Any) -> None:
        with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            send.send_nowait((index, result))

    async def run() -> None:
        with send:
            outcome.append(await run_plan_captured(plan, notices, emit))

    with unwrapped_exception_groups():
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(run)
            try:
                with receive:
                    yield receive
            finally:
                if not outcome:  # left before the end: stop the run
                    task_group.cancel_scope.cancel()
        notices.issue(stacklevel=3)
        if outcome and isinstance(outcome[0], BaseException):
            raise outcome[0]


achunk_iter.__signature__ = inspect.signature(achunk_iter).replace(  # type: ignore[attr-defined]
    return_annotation="AbstractAsyncContextManager[AsyncIterator[tuple[int, Any]]]"
)
