"""The entry points: ``chunk``, ``achunk``, ``chunk_iter`` and ``achunk_iter``.

Each checks its arguments into a plan (``_plan``), then hosts the run
(``_host``). Their options are those of ``_options.Options``; the overloads
only tell type checkers what a coroutine function returns.
"""

from __future__ import annotations

import os
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Mapping,
    Sequence,
)
from concurrent.futures import Executor
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Never, TypeVar, Unpack, overload

from ._actors import LabelledActor
from ._host import ResultIterator, host, hosted_stream
from ._options import (
    NewOptions,
    Options,
    OptionsDict,
    check_no_unknown,
    hide_catch_all,
)
from ._plan import Parameters, check_map_style, make_plan

__all__ = ["achunk", "achunk_iter", "chunk", "chunk_iter"]

R = TypeVar("R")
Path = str | os.PathLike[str] | None
Bar = bool | Mapping[str, Any] | None
Errors = Literal["raise", "defer", "return"]
Reuse = Literal["run", "calls"]


@overload
def chunk(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Parameters,
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: Bar = ...,
    path: Path = ...,
    **options: Unpack[NewOptions],
) -> list[R]: ...
@overload
def chunk(
    func: Callable[..., R],
    parameters: Parameters,
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: Bar = ...,
    path: Path = ...,
    **options: Unpack[NewOptions],
) -> list[R]: ...
@overload
def chunk(
    func: None,
    parameters: Parameters,
    actors: Sequence[LabelledActor] | None = ...,
    chunk_size: int | None = ...,
    progress_bar: Bar = ...,
    path: Path = ...,
    **options: Unpack[NewOptions],
) -> list[Any]: ...
def chunk(
    func: Callable[..., Any] | None,
    parameters: Parameters,
    actors: Sequence[Any] | None = None,
    chunk_size: int | None = None,
    progress_bar: Bar = None,
    path: Path = None,
    *,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
    errors: Errors = "raise",
    retries: int = 0,
    retry_delay: float = 0.1,
    timeout: float | None = None,
    reuse: Reuse = "run",
    **unknown: Never,
) -> list[Any]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    The blocking twin of :func:`achunk`, with the same options and results.
    ``actors``, ``chunk_size``, ``progress_bar`` and ``path`` may be passed by
    position, in the order of thread-chunks 1.x; the others are keyword-only.
    It runs its own event loop in a helper thread, so it also works where a
    loop is already running (a Jupyter cell, sync code called from async code).

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
        A coroutine function is awaited on the event loop.
    parameters : iterable of sequences or dicts
        One row per call: call ``i`` is ``func(*parameters[i])`` for an
        argument list (a list, a tuple, a row of a 2-D numpy array, any other
        sequence but a string), ``func(**parameters[i])`` for a dict (any
        mapping) of keyword arguments.
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

    Examples
    --------
    >>> from thread_chunks import chunk
    >>> def f(x, y):
    ...     return x + y
    >>> chunk(f, [[1, 4], [2, 5], [3, 6]], chunk_size=2, progress_bar=False)
    [5, 7, 9]
    """
    check_no_unknown("chunk", unknown)
    label = getattr(func, "__name__", "func")
    after = (actors, chunk_size, progress_bar, path)
    check_map_style(f"chunk({label}, ", parameters, after)
    options = Options(
        actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
        path=path, checkpoint_every=checkpoint_every, executor=executor,
        errors=errors, retries=retries, retry_delay=retry_delay,
        timeout=timeout, reuse=reuse,
    )  # fmt: skip
    plan = make_plan(func, parameters, options)
    return ResultIterator(plan, stream=False, stacklevel=3).outputs()


@overload
async def achunk(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Parameters,
    **options: Unpack[OptionsDict],
) -> list[R]: ...
@overload
async def achunk(
    func: Callable[..., R],
    parameters: Parameters,
    **options: Unpack[OptionsDict],
) -> list[R]: ...
@overload
async def achunk(
    func: None, parameters: Parameters, **options: Unpack[OptionsDict]
) -> list[Any]: ...
async def achunk(
    func: Callable[..., Any] | None,
    parameters: Parameters,
    *,
    actors: Sequence[Any] | None = None,
    chunk_size: int | None = None,
    progress_bar: Bar = None,
    path: Path = None,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
    errors: Errors = "raise",
    retries: int = 0,
    retry_delay: float = 0.1,
    timeout: float | None = None,  # noqa: ASYNC109 (per call, not for the run)
    reuse: Reuse = "run",
    **unknown: Never,
) -> list[Any]:
    """Call ``func(*args)`` for every ``args`` in ``parameters``, a few at a time.

    Sync functions run in worker threads, coroutine functions on the event
    loop; at most ``chunk_size`` calls run at once and the next starts as soon
    as one finishes. Works under asyncio and trio. Every option is keyword-only.

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
        A coroutine function is awaited on the event loop.
    parameters : iterable of sequences or dicts
        One row per call: call ``i`` is ``func(*parameters[i])`` for an
        argument list (a list, a tuple, a row of a 2-D numpy array, any other
        sequence but a string), ``func(**parameters[i])`` for a dict (any
        mapping) of keyword arguments.
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
    check_no_unknown("achunk", unknown)
    options = Options(
        actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
        path=path, checkpoint_every=checkpoint_every, executor=executor,
        errors=errors, retries=retries, retry_delay=retry_delay,
        timeout=timeout, reuse=reuse,
    )  # fmt: skip
    return await host(make_plan(func, parameters, options))


@overload
def chunk_iter(
    func: Callable[..., Coroutine[Any, Any, R]],
    parameters: Parameters,
    *,
    ordered: bool = ...,
    **options: Unpack[OptionsDict],
) -> ResultIterator[R]: ...
@overload
def chunk_iter(
    func: Callable[..., R] | None,
    parameters: Parameters,
    *,
    ordered: bool = ...,
    **options: Unpack[OptionsDict],
) -> ResultIterator[R]: ...
def chunk_iter(
    func: Callable[..., Any] | None,
    parameters: Parameters,
    *,
    actors: Sequence[Any] | None = None,
    chunk_size: int | None = None,
    progress_bar: Bar = None,
    path: Path = None,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
    errors: Errors = "raise",
    retries: int = 0,
    retry_delay: float = 0.1,
    timeout: float | None = None,
    reuse: Reuse = "run",
    ordered: bool = False,
    **unknown: Never,
) -> ResultIterator[Any]:
    """Yield ``(index, result)`` for every call, in the order calls complete.

    Runs like :func:`chunk`, with the same options (all keyword-only here).
    Results saved by an earlier run come first, at once. With
    ``errors="return"``, a failed call yields ``(index, exception)``. With
    ``ordered=True``, the results come in the order of ``parameters``.
    Arguments are checked at once; nothing runs until the first ``next()``.
    Leaving the loop early (``break``, an exception in its body, ``close()``,
    leaving a ``with`` block around it, dropping the iterator, the interpreter
    exiting) stops the run the orderly way: running calls finish and are
    saved, nothing is left running, and the next run resumes.

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
        A coroutine function is awaited on the event loop.
    parameters : iterable of sequences or dicts
        One row per call: call ``i`` is ``func(*parameters[i])`` for an
        argument list (a list, a tuple, a row of a 2-D numpy array, any other
        sequence but a string), ``func(**parameters[i])`` for a dict (any
        mapping) of keyword arguments.
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
    ordered : bool, optional
        ``False`` (the default) gives the results in the order calls
        complete. ``True`` gives them in the order of ``parameters``, each as
        soon as it and every result before it are there (saved results of an
        earlier run included): a slow call holds back the results after it,
        not the calls. A call that fails with ``errors="defer"`` is skipped;
        with ``errors="return"`` its exception comes in its place. It changes
        only the order of delivery, not the run: a checkpoint made with either
        resumes with either.

        .. versionadded:: 2.0

    Returns
    -------
    iterator of tuple
        ``(index, func(*parameters[index]))``, as each call completes (in
        index order with ``ordered=True``). It is also a context manager that
        stops the run when the block is left.

    Examples
    --------
    >>> from thread_chunks import chunk_iter
    >>> sorted(chunk_iter(pow, [[2, 3], [3, 2]], progress_bar=False))
    [(0, 8), (1, 9)]
    >>> with chunk_iter(abs, [[-1], [-2], [-3]], progress_bar=False) as results:
    ...     first = next(results)  # leaving the block stops the run
    >>> list(chunk_iter(pow, [[2, 3], [3, 2]], progress_bar=False, ordered=True))
    [(0, 8), (1, 9)]
    """
    check_no_unknown("chunk_iter", unknown)
    _check_ordered(ordered)
    options = Options(
        actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
        path=path, checkpoint_every=checkpoint_every, executor=executor,
        errors=errors, retries=retries, retry_delay=retry_delay,
        timeout=timeout, reuse=reuse,
    )  # fmt: skip
    plan = make_plan(func, parameters, options)
    return ResultIterator(plan, stacklevel=1, ordered=ordered)


def achunk_iter(
    func: Callable[..., Any] | None,
    parameters: Parameters,
    *,
    actors: Sequence[Any] | None = None,
    chunk_size: int | None = None,
    progress_bar: Bar = None,
    path: Path = None,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
    errors: Errors = "raise",
    retries: int = 0,
    retry_delay: float = 0.1,
    timeout: float | None = None,
    reuse: Reuse = "run",
    ordered: bool = False,
    **unknown: Never,
) -> AbstractAsyncContextManager[AsyncIterator[tuple[int, Any]]]:
    """Run like :func:`achunk`; give ``(index, result)`` pairs as calls complete.

    An async context manager that owns the run and hands out an async
    iterator of its results, in the order calls complete (results saved by an
    earlier run first), or in the order of ``parameters`` with
    ``ordered=True``. Leaving the block, however early, stops the run the
    orderly way: running calls finish and are saved. An error of the run is
    raised when the block is left. Following trio's rule, the iterator is a
    stream read from a task group, not a generator that yields inside one.
    Arguments are checked at once, before anything runs.

    Parameters
    ----------
    func : callable or None
        The function to call. ``None`` runs the function the ``actors`` hold.
        A coroutine function is awaited on the event loop.
    parameters : iterable of sequences or dicts
        One row per call: call ``i`` is ``func(*parameters[i])`` for an
        argument list (a list, a tuple, a row of a 2-D numpy array, any other
        sequence but a string), ``func(**parameters[i])`` for a dict (any
        mapping) of keyword arguments.
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
    ordered : bool, optional
        ``False`` (the default) gives the results in the order calls
        complete. ``True`` gives them in the order of ``parameters``, each as
        soon as it and every result before it are there (saved results of an
        earlier run included): a slow call holds back the results after it,
        not the calls. A call that fails with ``errors="defer"`` is skipped;
        with ``errors="return"`` its exception comes in its place. It changes
        only the order of delivery, not the run: a checkpoint made with either
        resumes with either.

        .. versionadded:: 2.0

    Returns
    -------
    async context manager of async iterator of tuple
        ``(index, func(*parameters[index]))``, as each call completes (in
        index order with ``ordered=True``).

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
    check_no_unknown("achunk_iter", unknown)
    _check_ordered(ordered)
    options = Options(
        actors=actors, chunk_size=chunk_size, progress_bar=progress_bar,
        path=path, checkpoint_every=checkpoint_every, executor=executor,
        errors=errors, retries=retries, retry_delay=retry_delay,
        timeout=timeout, reuse=reuse,
    )  # fmt: skip
    plan = make_plan(func, parameters, options)
    return hosted_stream(plan, ordered)


def _check_ordered(ordered: object) -> None:
    if not isinstance(ordered, bool):
        raise TypeError(f"ordered must be True or False, got {ordered!r}")


for _entry in (chunk, achunk, chunk_iter, achunk_iter):
    hide_catch_all(_entry)
del _entry
