"""The synchronous entry point: :func:`chunk` drives an event loop of its own."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from anyio.from_thread import start_blocking_portal

from ._actors import LabelledActor
from ._core import run_plan
from ._errors import unwrapped_exception_groups
from ._plan import Plan, make_plan

__all__ = ["chunk", "run_blocking"]

R = TypeVar("R")
logger = logging.getLogger("thread_chunks")


def chunk(
    func: Callable[..., R] | None,
    parameters: Iterable[Sequence[Any]],
    actors: Sequence[LabelledActor] | None = None,
    chunk_size: int | None = None,
    progress_bar: bool | None = None,
    path: str | os.PathLike[str] | None = None,
    *,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
) -> list[R]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    The blocking twin of :func:`achunk`, with the same arguments and results.
    It runs its own event loop in a helper thread, so it also works where a
    loop is already running (a Jupyter cell, sync code called from async code).

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
    parameters : iterable of lists or tuples
        One argument list per call: call ``i`` is ``func(*parameters[i])``.
    actors : list of LabelledActor, optional
        Exactly ``chunk_size`` workers; each call borrows one for its duration.
    chunk_size : int, optional
        The most calls running at once (default: ``config.default_chunk_size``).
    progress_bar : bool, optional
        Show a tqdm progress bar (default: ``config.progress_bar``).
    path : str or os.PathLike, optional
        A checkpoint file; see :func:`achunk`.
    checkpoint_every : float, optional
        The least number of seconds between two checkpoint writes.
    executor : concurrent.futures.Executor or 'processes', optional
        Run the calls on this executor instead of in threads; see :func:`achunk`.

    Returns
    -------
    list
        ``[func(*args) for args in parameters]``, in order.

    Raises
    ------
    KeyboardInterrupt
        On Ctrl-C, once the running calls have finished and the checkpoint is
        written. A second Ctrl-C stops at once.

    Examples
    --------
    >>> from thread_chunks import chunk
    >>> def f(x, y):
    ...     return x + y
    >>> chunk(f, [[1, 4], [2, 5], [3, 6]], chunk_size=2, progress_bar=False)
    [5, 7, 9]
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
    return run_blocking(plan)


def run_blocking(plan: Plan) -> list[Any]:
    """Run ``plan`` on a private asyncio loop in a helper thread and wait for it."""
    if not plan.parameters:
        return []
    with (
        unwrapped_exception_groups(),
        start_blocking_portal("asyncio", name="thread-chunks") as portal,
    ):
        future = portal.start_task_soon(run_plan, plan)
        try:
            outputs: list[Any] = future.result()
            return outputs
        except KeyboardInterrupt:
            logger.warning(
                "interrupted: waiting for the running calls to finish and saving "
                "the checkpoint; press Ctrl-C again to stop at once"
            )
            future.cancel()
            raise
