"""A reusable runner that keeps its workers between runs."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, Generic, Literal, Never, TypeVar, Unpack, overload

from ._actors import LabelledActor
from ._host import ResultIterator, host
from ._options import NewOptions, Options, check_no_unknown, hide_catch_all
from ._plan import Parameters, Plan, check_map_style, make_plan

__all__ = ["Chunker"]

R = TypeVar("R")
S = TypeVar("S")
_Path = str | os.PathLike[str] | None
_Bar = bool | Mapping[str, Any] | None
_Errors = Literal["raise", "defer", "return"]


class Chunker(Generic[R]):
    """Run many parameter lists through the same workers, run after run.

    Its actors are made once and reused, so per-worker state built by a
    :class:`LabelledActor` subclass (a loaded model, a connection) is paid for
    once, not once per run. The positional order is that of thread-chunks 1.x.

    Parameters
    ----------
    func : callable, optional
        The function to run. ``None`` runs the function the ``actors`` hold.
    actors : list of LabelledActor or of Ray actor handles, optional
        The workers, exactly ``chunk_size`` of them; each call borrows one for
        its whole duration. Defaults to ``chunk_size`` plain
        ``LabelledActor(func)``, which run calls in threads. Handles of
        ``RemoteLabelledActor`` (thread-chunks 1.x's Ray actors) run each call
        on the Ray actor it borrows.
    chunk_size : int, optional
        The most calls running at once. Defaults to ``len(actors)`` if actors
        are given, else to ``thread_chunks.config.default_chunk_size``.
    progress_bar : bool or dict, optional
        Show a tqdm progress bar. A dict shows one with these tqdm keyword
        arguments (``desc``, ``position``, ``leave``, ...) merged over ours.
        Defaults to ``thread_chunks.config.progress_bar``, which shows one when
        stderr is a terminal or in a Jupyter notebook, not when it is a file or
        a pipe.
    path : str or os.PathLike, optional
        A checkpoint file. Each result is saved as soon as its call completes,
        and a rerun with the same function and parameters skips every call
        already saved; another function or other parameters replace the file.
    checkpoint_every : float, optional
        The least number of seconds between two checkpoint writes. ``0`` (the
        default) writes as soon as possible; a few seconds saves disk syncs when
        calls take milliseconds, at the risk of recomputing that much on a
        crash.

        .. versionadded:: 2.0
    executor : concurrent.futures.Executor or 'processes', optional
        Run each call on this executor instead of in a thread: a process pool, a
        Dask cluster (``client.get_executor(pure=False)``), an MPI pool. This
        process still saves the checkpoint and shows progress. ``'processes'``
        creates (and closes) a loky process pool of ``chunk_size`` workers,
        which runs lambdas too (it needs loky: ``pip install loky``).

        .. versionadded:: 2.0
    errors : {'raise', 'defer', 'return'}, optional
        What a failing call does to the run. ``'raise'`` (the default) stops
        starting calls, lets the running ones finish, saves, and raises the
        first exception. ``'defer'`` runs every call, then raises an
        ``ExceptionGroup`` of the failures (``except*`` works). ``'return'``
        runs every call and puts each failed call's exception in its place in
        the results. A failed call is never saved as done: a rerun computes it
        again.

        .. versionadded:: 2.0
    retries : int, optional
        How many more times a call that raises is tried before it counts as
        failed. The call keeps its place among the ``chunk_size`` running calls
        while it waits.

        .. versionadded:: 2.0
    retry_delay : float, optional
        Seconds before the first retry, doubled at each further one, with some
        jitter. Cancellation and Ctrl-C cut the wait short.

        .. versionadded:: 2.0
    timeout : float, optional
        Seconds an attempt at a call may take; ``None`` (the default) for no
        limit. An attempt past it fails with ``TimeoutError`` (tried again under
        ``retries``) and its place is freed. A coroutine is cancelled; a worker
        of ``executor='processes'`` is killed and replaced; a thread gets the
        ``TimeoutError`` at its next line of Python (a call blocked in C code
        keeps its place until it returns to Python); a call on another executor
        is abandoned, and may run on there.

        .. versionadded:: 2.1
    reuse : {'run', 'calls'}, optional
        What a checkpoint made for other parameters gives this run. ``'run'``
        (the default): nothing; it is replaced and every call computed, as for
        another function. ``'calls'``: each call whose function and arguments
        are the same as a saved call's takes that saved result, wherever it
        stood in the old list; the other calls are computed, the checkpoint is
        rewritten for the new list, and the old file is kept as ``path +
        '.previous'``. Use it to refine a sweep (add, remove or reorder rows)
        without computing it all again.

        .. versionadded:: 2.0
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
        actors: Sequence[Any] | None = None,
        chunk_size: int | None = None,
        progress_bar: _Bar = None,
        persistent: bool = False,
        path: _Path = None,
        *,
        checkpoint_every: float = 0.0,
        executor: Executor | str | None = None,
        errors: _Errors = "raise",
        retries: int = 0,
        retry_delay: float = 0.1,
        timeout: float | None = None,
        reuse: Literal["run", "calls"] = "run",
        **unknown: Never,
    ) -> None:
        check_no_unknown("Chunker", unknown)
        given = Options(
            actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
            path=path, checkpoint_every=checkpoint_every, executor=executor,
            errors=errors, retries=retries, retry_delay=retry_delay,
            timeout=timeout, reuse=reuse,
        )  # fmt: skip
        plan = make_plan(func, [], given)
        # The actors carry the function and the chunk size from now on: those
        # given, now holding func, or chunk_size new ones.
        held = plan.actors
        if not held and func is not None:
            held = [LabelledActor(func) for _ in range(plan.chunk_size)]
        self._options = replace(given, actors=held, chunk_size=None)
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
        parameters: Parameters,
        func: None = ...,
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[R]: ...
    @overload
    def __call__(
        self,
        parameters: Parameters,
        func: Callable[..., Coroutine[Any, Any, S]],
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[S]: ...
    @overload
    def __call__(
        self,
        parameters: Parameters,
        func: Callable[..., S],
        progress_bar: _Bar = ...,
        path: _Path = ...,
        **options: Unpack[NewOptions],
    ) -> list[S]: ...
    def __call__(
        self,
        parameters: Parameters,
        func: Callable[..., Any] | None = None,
        progress_bar: _Bar = None,
        path: _Path = None,
        *,
        checkpoint_every: float | None = None,
        executor: Executor | str | None = None,
        errors: _Errors | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,
        reuse: Literal["run", "calls"] | None = None,
        **unknown: Never,
    ) -> list[Any]:
        """Run every call and return the results in order; see :func:`chunk`.

        Options given here apply to this run only (``None``: the Chunker's);
        ``func`` replaces the function of the actors for this run and the
        next ones.

        Parameters
        ----------
        parameters : iterable of sequences or dicts
            One row per call: an argument list, or a dict of keyword arguments
            (see :func:`chunk`).
        func : callable, optional
            A new function for the actors, this run and the next ones.
        progress_bar : bool or dict, optional
            Show a tqdm progress bar. A dict shows one with these tqdm keyword
            arguments (``desc``, ``position``, ``leave``, ...) merged over ours.
            Defaults to ``thread_chunks.config.progress_bar``, which shows one when
            stderr is a terminal or in a Jupyter notebook, not when it is a file or
            a pipe.
        path : str or os.PathLike, optional
            A checkpoint file. Each result is saved as soon as its call completes,
            and a rerun with the same function and parameters skips every call
            already saved; another function or other parameters replace the file.
        checkpoint_every : float, optional
            The least number of seconds between two checkpoint writes. ``0`` (the
            default) writes as soon as possible; a few seconds saves disk syncs when
            calls take milliseconds, at the risk of recomputing that much on a
            crash.

            .. versionadded:: 2.0
        executor : concurrent.futures.Executor or 'processes', optional
            Run each call on this executor instead of in a thread: a process pool, a
            Dask cluster (``client.get_executor(pure=False)``), an MPI pool. This
            process still saves the checkpoint and shows progress. ``'processes'``
            creates (and closes) a loky process pool of ``chunk_size`` workers,
            which runs lambdas too (it needs loky: ``pip install loky``).

            .. versionadded:: 2.0
        errors : {'raise', 'defer', 'return'}, optional
            What a failing call does to the run. ``'raise'`` (the default) stops
            starting calls, lets the running ones finish, saves, and raises the
            first exception. ``'defer'`` runs every call, then raises an
            ``ExceptionGroup`` of the failures (``except*`` works). ``'return'``
            runs every call and puts each failed call's exception in its place in
            the results. A failed call is never saved as done: a rerun computes it
            again.

            .. versionadded:: 2.0
        retries : int, optional
            How many more times a call that raises is tried before it counts as
            failed. The call keeps its place among the ``chunk_size`` running calls
            while it waits.

            .. versionadded:: 2.0
        retry_delay : float, optional
            Seconds before the first retry, doubled at each further one, with some
            jitter. Cancellation and Ctrl-C cut the wait short.

            .. versionadded:: 2.0
        timeout : float, optional
            Seconds an attempt at a call may take; ``None`` (the default) for no
            limit. An attempt past it fails with ``TimeoutError`` (tried again under
            ``retries``) and its place is freed. A coroutine is cancelled; a worker
            of ``executor='processes'`` is killed and replaced; a thread gets the
            ``TimeoutError`` at its next line of Python (a call blocked in C code
            keeps its place until it returns to Python); a call on another executor
            is abandoned, and may run on there.

            .. versionadded:: 2.1
        reuse : {'run', 'calls'}, optional
            What a checkpoint made for other parameters gives this run. ``'run'``
            (the default): nothing; it is replaced and every call computed, as for
            another function. ``'calls'``: each call whose function and arguments
            are the same as a saved call's takes that saved result, wherever it
            stood in the old list; the other calls are computed, the checkpoint is
            rewritten for the new list, and the old file is kept as ``path +
            '.previous'``. Use it to refine a sweep (add, remove or reorder rows)
            without computing it all again.

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
        RuntimeError
            If another run is writing the same checkpoint file, before any call runs.
        Exception
            The first exception raised by ``func``, once the calls already running
            have finished and their results are saved; a note names the call.
        KeyboardInterrupt
            On Ctrl-C, once the running calls have finished and the checkpoint is
            written. A second Ctrl-C stops at once.

        Warns
        -----
        CheckpointFailedWarning
            If a checkpoint cannot be read or written; the run goes on. It points at
            the line that started the run.
        """
        given = {
            "progress_bar": progress_bar, "path": path,
            "checkpoint_every": checkpoint_every, "executor": executor,
            "errors": errors, "retries": retries, "retry_delay": retry_delay,
            "timeout": timeout,
            "reuse": reuse,
        }  # fmt: skip
        check_no_unknown("Chunker.__call__", unknown)
        check_map_style("chunker(", parameters, (func, progress_bar, path))
        with self._exclusive():
            plan = self._plan(parameters, func, given)
            return ResultIterator(plan, stream=False, stacklevel=3).outputs()

    async def achunk(
        self,
        parameters: Parameters,
        func: Callable[..., Any] | None = None,
        progress_bar: _Bar = None,
        path: _Path = None,
        *,
        checkpoint_every: float | None = None,
        executor: Executor | str | None = None,
        errors: _Errors | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (per call, not the run)
        reuse: Literal["run", "calls"] | None = None,
        **unknown: Never,
    ) -> list[Any]:
        """The async twin of :meth:`__call__`: the same arguments and results.

        Calls run as with :func:`achunk`, under asyncio or trio.

        Parameters
        ----------
        parameters : iterable of sequences or dicts
            One row per call: an argument list, or a dict of keyword arguments
            (see :func:`chunk`).
        func : callable, optional
            A new function for the actors, this run and the next ones.
        progress_bar : bool or dict, optional
            Show a tqdm progress bar. A dict shows one with these tqdm keyword
            arguments (``desc``, ``position``, ``leave``, ...) merged over ours.
            Defaults to ``thread_chunks.config.progress_bar``, which shows one when
            stderr is a terminal or in a Jupyter notebook, not when it is a file or
            a pipe.
        path : str or os.PathLike, optional
            A checkpoint file. Each result is saved as soon as its call completes,
            and a rerun with the same function and parameters skips every call
            already saved; another function or other parameters replace the file.
        checkpoint_every : float, optional
            The least number of seconds between two checkpoint writes. ``0`` (the
            default) writes as soon as possible; a few seconds saves disk syncs when
            calls take milliseconds, at the risk of recomputing that much on a
            crash.

            .. versionadded:: 2.0
        executor : concurrent.futures.Executor or 'processes', optional
            Run each call on this executor instead of in a thread: a process pool, a
            Dask cluster (``client.get_executor(pure=False)``), an MPI pool. This
            process still saves the checkpoint and shows progress. ``'processes'``
            creates (and closes) a loky process pool of ``chunk_size`` workers,
            which runs lambdas too (it needs loky: ``pip install loky``).

            .. versionadded:: 2.0
        errors : {'raise', 'defer', 'return'}, optional
            What a failing call does to the run. ``'raise'`` (the default) stops
            starting calls, lets the running ones finish, saves, and raises the
            first exception. ``'defer'`` runs every call, then raises an
            ``ExceptionGroup`` of the failures (``except*`` works). ``'return'``
            runs every call and puts each failed call's exception in its place in
            the results. A failed call is never saved as done: a rerun computes it
            again.

            .. versionadded:: 2.0
        retries : int, optional
            How many more times a call that raises is tried before it counts as
            failed. The call keeps its place among the ``chunk_size`` running calls
            while it waits.

            .. versionadded:: 2.0
        retry_delay : float, optional
            Seconds before the first retry, doubled at each further one, with some
            jitter. Cancellation and Ctrl-C cut the wait short.

            .. versionadded:: 2.0
        timeout : float, optional
            Seconds an attempt at a call may take; ``None`` (the default) for no
            limit. An attempt past it fails with ``TimeoutError`` (tried again under
            ``retries``) and its place is freed. A coroutine is cancelled; a worker
            of ``executor='processes'`` is killed and replaced; a thread gets the
            ``TimeoutError`` at its next line of Python (a call blocked in C code
            keeps its place until it returns to Python); a call on another executor
            is abandoned, and may run on there.

            .. versionadded:: 2.1
        reuse : {'run', 'calls'}, optional
            What a checkpoint made for other parameters gives this run. ``'run'``
            (the default): nothing; it is replaced and every call computed, as for
            another function. ``'calls'``: each call whose function and arguments
            are the same as a saved call's takes that saved result, wherever it
            stood in the old list; the other calls are computed, the checkpoint is
            rewritten for the new list, and the old file is kept as ``path +
            '.previous'``. Use it to refine a sweep (add, remove or reorder rows)
            without computing it all again.

            .. versionadded:: 2.0

        Returns
        -------
        list
            ``[func(*args) for args in parameters]``, in order.

        Examples
        --------
        >>> import anyio
        >>> chunker = Chunker(abs, chunk_size=2, progress_bar=False)
        >>> anyio.run(chunker.achunk, [[-5], [6]])
        [5, 6]
        """
        given = {
            "progress_bar": progress_bar, "path": path,
            "checkpoint_every": checkpoint_every, "executor": executor,
            "errors": errors, "retries": retries, "retry_delay": retry_delay,
            "timeout": timeout,
            "reuse": reuse,
        }  # fmt: skip
        check_no_unknown("Chunker.achunk", unknown)
        check_map_style("chunker.achunk(", parameters, (func, progress_bar, path))
        with self._exclusive():
            return await host(self._plan(parameters, func, given))

    def _plan(
        self,
        parameters: Parameters,
        func: Callable[..., Any] | None,
        given: Mapping[str, Any],
    ) -> Plan:
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


for _method in (Chunker.__init__, Chunker.__call__, Chunker.achunk):
    hide_catch_all(_method)
del _method
