"""A reusable runner that keeps its workers between runs."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from typing import Any

from ._actors import LabelledActor
from ._core import run_plan
from ._errors import unwrapped_exception_groups
from ._plan import Plan, make_plan
from ._sync import run_blocking

__all__ = ["Chunker"]


class Chunker:
    """Run many parameter lists through the same workers, run after run.

    Its actors are made once and reused, so per-worker state built by a
    :class:`LabelledActor` subclass (a loaded model, a connection) is paid for
    once, not once per run.

    Parameters
    ----------
    func : callable, optional
        The function to run. ``None`` runs the function the ``actors`` hold.
    actors : list of LabelledActor, optional
        The workers, exactly ``chunk_size`` of them. Defaults to ``chunk_size``
        plain ``LabelledActor(func)``.
    chunk_size : int, optional
        The most calls running at once (default: ``len(actors)`` if given, else
        ``config.default_chunk_size``, read now).
    progress_bar : bool, optional
        The default for each run (default: ``config.progress_bar``, read at
        each run).
    path : str or os.PathLike, optional
        The default checkpoint file for each run.
    executor : concurrent.futures.Executor or 'processes', optional
        Run the calls on this executor; see :func:`achunk`.

    Examples
    --------
    >>> from thread_chunks import Chunker
    >>> chunker = Chunker(abs, chunk_size=2, progress_bar=False)
    >>> chunker([[-1], [-2]])
    [1, 2]
    >>> chunker([[3, 4]], func=max)  # later runs keep using max
    [4]
    >>> import anyio
    >>> anyio.run(chunker.achunk, [[5, 1]])
    [5]
    """

    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        actors: Sequence[LabelledActor] | None = None,
        chunk_size: int | None = None,
        progress_bar: bool | None = None,
        path: str | os.PathLike[str] | None = None,
        executor: Executor | str | None = None,
    ) -> None:
        plan = make_plan(
            func,
            [],
            actors=actors,
            chunk_size=chunk_size,
            progress_bar=progress_bar,
            path=path,
            executor=executor,
        )
        self._defaults: dict[str, Any] = {
            "actors": plan.actors,
            "executor": executor,
            "progress_bar": progress_bar,  # None: read the config at each run
            "path": path,
        }
        self._running = False

    @property
    def actors(self) -> list[LabelledActor]:
        """The workers, one per call that may run at once.

        Pass them to :func:`chunk` to run other parameters on the same workers.

        Examples
        --------
        >>> from thread_chunks import chunk
        >>> chunker = Chunker(abs, chunk_size=2, progress_bar=False)
        >>> chunk(None, [[-3]], chunker.actors, progress_bar=False)
        [3]
        """
        return list(self._defaults["actors"])

    @property
    def chunk_size(self) -> int:
        """The most calls running at once.

        Examples
        --------
        >>> Chunker(abs, chunk_size=3).chunk_size
        3
        """
        return len(self._defaults["actors"])

    def __call__(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None = None,
        progress_bar: bool | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> list[Any]:
        """Run every call and return the results in order; see :func:`chunk`."""
        with self._exclusive():
            return run_blocking(self._plan(parameters, func, progress_bar, path))

    async def achunk(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None = None,
        progress_bar: bool | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> list[Any]:
        """Run every call and return the results in order; see :func:`achunk`."""
        with self._exclusive(), unwrapped_exception_groups():
            return await run_plan(self._plan(parameters, func, progress_bar, path))

    def _plan(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None,
        progress_bar: bool | None,
        path: str | os.PathLike[str] | None,
    ) -> Plan:
        arguments = dict(self._defaults)
        if progress_bar is not None:
            arguments["progress_bar"] = progress_bar
        if path is not None:
            arguments["path"] = path
        return make_plan(func, parameters, **arguments)

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the actors for one run; a second run at the same time fails."""
        if self._running:
            raise RuntimeError(
                "this Chunker is already running: its actors can serve one run at "
                "a time, so create one Chunker per concurrent run"
            )
        self._running = True
        try:
            yield
        finally:
            self._running = False
