"""A reusable runner that keeps its workers between runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Generic, TypeVar, Unpack, overload

from ._actors import LabelledActor
from ._core import drive
from ._options import NewOptions, Options
from ._plan import Plan, make_plan
from ._signatures import takes_options
from ._sync import run_blocking

__all__ = ["Chunker"]

R = TypeVar("R")
S = TypeVar("S")
_Path = str | os.PathLike[str] | None
_Bar = bool | Mapping[str, Any] | None


@takes_options(NewOptions)
class Chunker(Generic[R]):
    """Run many parameter lists through the same workers, run after run.

    Its actors are made once and reused, so per-worker state built by a
    :class:`LabelledActor` subclass (a loaded model, a connection) is paid for
    once, not once per run. The positional order is that of thread-chunks 1.x.

    Parameters
    ----------
    func : callable, optional
        The function to run. ``None`` runs the function the ``actors`` hold.
    {options}
    persistent : bool, optional
        Kept from thread-chunks 1.x, where it kept a Ray instance alive; it
        has no effect on threads.

    The options are the defaults of every run. ``chunk_size`` is fixed now
    (``config.default_chunk_size`` is read now); ``progress_bar`` follows
    ``config.progress_bar`` at each run unless given.

    Attributes
    ----------
    persistent : bool

    Examples
    --------
    >>> from thread_chunks import Chunker
    >>> chunker = Chunker(abs, chunk_size=2, progress_bar=False)
    >>> chunker
    Chunker(abs, chunk_size=2, path=None)
    >>> chunker([[-1], [-2]])
    [1, 2]
    >>> chunker([[3, 4]], func=max)  # later runs keep using max
    [4]
    >>> import anyio
    >>> anyio.run(chunker.achunk, [[5, 1]])
    [5]
    """

    @overload
    def __init__(
        self: Chunker[S],
        func: Callable[..., Coroutine[Any, Any, S]],
        actors: Sequence[LabelledActor] | None = ...,
        chunk_size: int | None = ...,
        progress_bar: _Bar = ...,
        persistent: bool = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Chunker[S],
        func: Callable[..., S],
        actors: Sequence[LabelledActor] | None = ...,
        chunk_size: int | None = ...,
        progress_bar: _Bar = ...,
        persistent: bool = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> None: ...
    @overload
    def __init__(
        self: Chunker[Any],
        func: None = ...,
        actors: Sequence[LabelledActor] | None = ...,
        chunk_size: int | None = ...,
        progress_bar: _Bar = ...,
        persistent: bool = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> None: ...
    def __init__(
        self,
        func: Callable[..., Any] | None = None,
        actors: Sequence[LabelledActor] | None = None,
        chunk_size: int | None = None,
        progress_bar: _Bar = None,
        persistent: bool = False,
        path: _Path = None,
        **options: Unpack[NewOptions],
    ) -> None:
        given = Options(
            actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
            path=path, **options,
        )  # fmt: skip
        plan = make_plan(func, [], given)
        # The actors carry the function and the chunk size from now on.
        self._options = replace(given, actors=plan.actors, chunk_size=None)
        self.persistent = persistent
        self._guard = threading.Lock()

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
        return list(self._options.actors or [])

    @property
    def chunk_size(self) -> int:
        """The most calls running at once: ``len(actors)``.

        Examples
        --------
        >>> Chunker(abs, chunk_size=3).chunk_size
        3
        """
        return len(self.actors)

    @property
    def progress_bar(self) -> _Bar:
        """The default ``progress_bar`` of each run (``None``: from the config)."""
        return self._options.progress_bar

    @progress_bar.setter
    def progress_bar(self, value: _Bar) -> None:
        self._options = replace(self._options, progress_bar=value)

    @property
    def path(self) -> _Path:
        """The default checkpoint file of each run."""
        return self._options.path

    @path.setter
    def path(self, value: _Path) -> None:
        self._options = replace(self._options, path=value)

    @overload
    def __call__(
        self,
        parameters: Iterable[Sequence[Any]],
        func: None = ...,
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[R]: ...
    @overload
    def __call__(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Coroutine[Any, Any, S]],
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[S]: ...
    @overload
    def __call__(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., S],
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[S]: ...
    @takes_options(NewOptions)
    def __call__(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None = None,
        progress_bar: _Bar = None,
        path: _Path = None,
        **options: Unpack[NewOptions],
    ) -> list[Any]:
        """Run every call and return the results in order; see :func:`chunk`.

        Options given here apply to this run only; ``func`` replaces the
        function of the actors for this run and the next ones.

        Parameters
        ----------
        parameters : iterable of lists or tuples
            One argument list per call.
        func : callable, optional
            A new function for the actors, this run and the next ones.
        {options}

        {outcome}
        """
        with self._exclusive():
            plan = self._plan(parameters, func, progress_bar, path, options)
            return run_blocking(plan)

    @takes_options(NewOptions)
    async def achunk(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None = None,
        progress_bar: _Bar = None,
        path: _Path = None,
        **options: Unpack[NewOptions],
    ) -> list[Any]:
        """The async twin of :meth:`__call__`: the same arguments and results.

        Calls run as with :func:`achunk`, under asyncio or trio.

        Examples
        --------
        >>> import anyio
        >>> chunker = Chunker(abs, chunk_size=2, progress_bar=False)
        >>> anyio.run(chunker.achunk, [[-5], [6]])
        [5, 6]
        """
        with self._exclusive():
            plan = self._plan(parameters, func, progress_bar, path, options)
            return await drive(plan)

    def _plan(
        self,
        parameters: Iterable[Sequence[Any]],
        func: Callable[..., Any] | None,
        progress_bar: _Bar,
        path: _Path,
        options: Mapping[str, Any],
    ) -> Plan:
        given = {"progress_bar": progress_bar, "path": path, **options}
        return make_plan(func, parameters, self._options.merged(given))

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the actors for one run; a second run at the same time fails."""
        if not self._guard.acquire(blocking=False):
            raise RuntimeError(
                "this Chunker is already running: its actors can serve one run at "
                "a time, so create one Chunker per concurrent run"
            )
        try:
            yield
        finally:
            self._guard.release()

    def __repr__(self) -> str:
        func = self.actors[0].get_func()
        name = getattr(func, "__qualname__", type(func).__qualname__)
        return f"Chunker({name}, chunk_size={self.chunk_size}, path={self.path!r})"
