"""The synchronous entry point: :func:`chunk` drives an event loop of its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import wait as wait_for_futures
from typing import Any, TypeVar, Unpack, overload

from anyio.from_thread import start_blocking_portal

from ._actors import LabelledActor
from ._core import run_plan_captured
from ._errors import unwrapped_exception_groups
from ._notices import Notices
from ._options import NewOptions, Options
from ._plan import Plan, make_plan
from ._signals import Terminated, sigterm_stops_the_run
from ._signatures import takes_options

__all__ = ["chunk", "log_stopping", "run_blocking"]

R = TypeVar("R")
logger = logging.getLogger("thread_chunks")

_Path = str | os.PathLike[str] | None
_Bar = bool | Mapping[str, Any] | None


@overload
def chunk(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Iterable[Sequence[Any]],
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: _Bar = ...,
    path: _Path = ...,
    **options: Unpack[NewOptions],
) -> list[R]: ...
@overload
def chunk(
    func: Callable[..., R],
    parameters: Iterable[Sequence[Any]],
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: _Bar = ...,
    path: _Path = ...,
    **options: Unpack[NewOptions],
) -> list[R]: ...
@overload
def chunk(
    func: None,
    parameters: Iterable[Sequence[Any]],
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: _Bar = ...,
    path: _Path = ...,
    **options: Unpack[NewOptions],
) -> list[Any]: ...
@takes_options(NewOptions)
def chunk(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    actors: Sequence[LabelledActor] | None = None,
    chunk_size: int | None = None,
    progress_bar: _Bar = None,
    path: _Path = None,
    **options: Unpack[NewOptions],
) -> list[Any]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    The blocking twin of :func:`achunk`, with the same options and results.
    ``actors``, ``chunk_size``, ``progress_bar`` and ``path`` may be passed by
    position, in the order of thread-chunks 1.x; the others are keyword-only.
    It runs its own event loop in a helper thread, so it also works where a
    loop is already running (a Jupyter cell, sync code called from async code).

    Parameters
    ----------
    {func_and_parameters}
    {options}

    {outcome}

    Examples
    --------
    >>> from thread_chunks import chunk
    >>> def f(x, y):
    ...     return x + y
    >>> chunk(f, [[1, 4], [2, 5], [3, 6]], chunk_size=2, progress_bar=False)
    [5, 7, 9]
    """
    given = Options(
        actors=actors, chunk_size=chunk_size, progress_bar=progress_bar, path=path,
        **options,
    )  # fmt: skip
    return run_blocking(make_plan(func, parameters, given))


def log_stopping(signal: KeyboardInterrupt | Terminated) -> None:
    """Say that the first Ctrl-C or SIGTERM is stopping the run, and how."""
    ctrl_c = isinstance(signal, KeyboardInterrupt)
    logger.warning(
        "%s: waiting for the running calls to finish and saving the checkpoint; "
        "a second %s stops at once",
        "interrupted" if ctrl_c else "SIGTERM",
        "Ctrl-C" if ctrl_c else "SIGTERM",
    )


def run_blocking(plan: Plan) -> list[Any]:
    """Run ``plan`` on a private event loop in a helper thread and wait for it.

    The run's warnings are issued here, as they come, pointing at the line that
    called the entry point (two frames up); a warning turned into an error
    stops the run (the running calls finish and are saved), then propagates.
    """
    if not plan.parameters:
        return []
    notices = Notices()
    with (
        sigterm_stops_the_run(),
        unwrapped_exception_groups(),
        start_blocking_portal("asyncio", name="thread-chunks") as portal,
    ):
        future = portal.start_task_soon(run_plan_captured, plan, notices)
        future.add_done_callback(lambda _: notices.end())
        try:
            while not notices.ended:
                notices.wait_blocking()
                notices.issue(stacklevel=3)
            notices.issue(stacklevel=3)
            outcome: list[Any] | BaseException = future.result()
        except (KeyboardInterrupt, Terminated) as exc:
            log_stopping(exc)
            future.cancel()
            raise
        except Warning:  # a warning that a filter turned into an error
            future.cancel()
            wait_for_futures([future])
            raise
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
