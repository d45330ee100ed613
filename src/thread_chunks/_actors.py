"""The workers: actors, what a worker task sees of its run, and awaited calls.

Each running call borrows one actor for its whole duration. A run has
``chunk_size`` worker tasks; each runs calls through a *strategy* (threads,
an executor, Ray actors, coroutines on the event loop), which sees the run
only through the narrow :class:`Calls` interface. The strategies for calls
that are awaited one at a time (coroutines, Ray actors) share
:class:`OneAtATime`; the others live in ``_threads`` and ``_executor``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import anyio
import anyio.lowlevel

__all__ = [
    "CHECK_EVERY",
    "LONG_CALL",
    "TIME_SLICE",
    "Calls",
    "Coroutines",
    "LabelledActor",
    "OneAtATime",
    "Row",
    "Strategy",
    "call_row",
    "is_ray_actor",
    "run_row",
    "timed_out",
]

Row = Sequence[Any] | Mapping[str, Any]
"""One row of ``parameters``: the arguments of one call, ``func(*row)``, or its
keyword arguments, ``func(**row)`` for a mapping."""

TIME_SLICE = 0.005
"""Seconds of calls that a worker runs before the event loop gets control back.

A trip to a worker thread and back costs about 70 µs here: over 5 ms it is
under 2% of the time, while the progress bar still moves every 5 ms."""

LONG_CALL = 0.00002
"""Seconds: after a call this long, check for cancellation before the next."""

CHECK_EVERY = 32
"""And after every so many tiny calls: no call starts once a cancellation or
a failure elsewhere is seen, within this many tiny calls."""

L = TypeVar("L")


class LabelledActor:
    """A worker that runs one function call at a time and labels its result.

    :func:`chunk` and :func:`achunk` hand every call to one actor, and no other
    call uses that actor until the call returns. A subclass can therefore keep
    per-worker state that is not thread-safe (a model, a connection, a scratch
    buffer) without any locking.

    Parameters
    ----------
    func : callable
        The function this actor calls.

    Examples
    --------
    >>> actor = LabelledActor(pow)
    >>> actor.run("first", 2, 10)
    ('first', 1024)

    Per-worker state, created once per worker rather than once per call:

    >>> class Scaler(LabelledActor):
    ...     def __init__(self, factor):
    ...         super().__init__(self.scale)
    ...         self.factor = factor
    ...     def scale(self, x):
    ...         return self.factor * x
    >>> from thread_chunks import chunk
    >>> chunk(None, [[1], [2], [3]], actors=[Scaler(10), Scaler(10)],
    ...       chunk_size=2, progress_bar=False)
    [10, 20, 30]
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func

    def run(self, label: L, *args: Any, **kwargs: Any) -> tuple[L, Any]:
        """Call the function with ``args`` and ``kwargs``; return ``(label, result)``.

        A row of ``parameters`` that is a dict reaches ``run`` as keyword
        arguments: a subclass that overrides ``run`` takes ``**kwargs`` too.

        Parameters
        ----------
        label : object
            Returned unchanged beside the result, to tell calls apart.
        *args
            The positional arguments of the call.
        **kwargs
            The keyword arguments of the call.

            .. versionadded:: 2.0

        Returns
        -------
        tuple
            ``(label, func(*args, **kwargs))``.

        Examples
        --------
        >>> LabelledActor(max).run(7, 3, 5)
        (7, 5)
        >>> LabelledActor(sorted).run("k", [3, 1, 2], reverse=True)
        ('k', [3, 2, 1])
        """
        return label, self._func(*args, **kwargs)

    def set_func(self, func: Callable[..., Any]) -> None:
        """Replace the function this actor calls.

        Examples
        --------
        >>> actor = LabelledActor(min)
        >>> actor.set_func(max)
        >>> actor.run(0, 3, 5)
        (0, 5)
        """
        self._func = func

    def __repr__(self) -> str:
        name = getattr(self._func, "__qualname__", type(self._func).__qualname__)
        return f"{type(self).__qualname__}({name})"

    def get_func(self) -> Callable[..., Any]:
        """Return the function this actor calls.

        Examples
        --------
        >>> LabelledActor(abs).get_func() is abs
        True
        """
        return self._func


def call_row(func: Callable[..., Any], row: Row) -> Any:
    """``func(*row)``, or ``func(**row)`` for a mapping."""
    if isinstance(row, Mapping):
        return func(**row)
    return func(*row)


def run_row(actor: Any, label: Any, row: Row) -> Any:
    """``actor.run(label, *row)``, or ``actor.run(label, **row)`` for a mapping."""
    if isinstance(row, Mapping):
        return actor.run(label, **row)
    return actor.run(label, *row)


def timed_out(timeout: float) -> TimeoutError:
    """The ``TimeoutError`` of an attempt that took longer than ``timeout`` seconds."""
    return TimeoutError(
        f"the call took longer than timeout={timeout:g} s and was stopped; pass "
        "a larger timeout=, or timeout=None for no limit"
    )


def is_ray_actor(obj: object) -> bool:
    """Whether ``obj`` is a Ray actor handle (without importing Ray)."""
    ray = sys.modules.get("ray")
    return ray is not None and isinstance(obj, ray.actor.ActorHandle)


class Calls(Protocol):
    """What a strategy sees of its run: the calls to make and where results go.

    Every method but :meth:`failed` and :meth:`reported` may be called from
    any thread.
    """

    @property
    def parameters(self) -> Sequence[Row]:
        """The rows: call ``i`` is ``func(*parameters[i])`` (``**`` for a mapping)."""

    @property
    def keywords(self) -> bool:
        """Whether any row is a mapping of keyword arguments."""

    @property
    def streaming(self) -> bool:
        """Whether :meth:`reported` needs each result, not only how many."""

    @property
    def stopped(self) -> bool:
        """Whether no further call may start."""

    def stop(self, because: tuple[int, BaseException] | None = None) -> None:
        """Start no further call; ``because`` is the failure that ends the run."""

    def take(self, most: int) -> list[int]:
        """Take the indices of up to ``most`` calls to make; none left: ``[]``."""

    def take_one(self) -> int | None:
        """Take the index of the next call to make; none left: ``None``."""

    def take_run(self, most: int) -> Sequence[int]:
        """Take up to ``most`` indices at once, in order: a ``range`` if consecutive."""

    def give_back(self, indices: Sequence[int]) -> None:
        """Give back calls taken but not started: the next ones taken."""

    def stops_the_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a call's first attempt, ends the run."""

    def completed(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """Keep results: in the outputs and the checkpoint (ascending indices)."""

    def completed_one(self, index: int, result: Any) -> None:
        """Keep one result, as :meth:`completed` does."""

    def reported(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """On the event loop: show results kept (progress bar, streaming)."""

    async def failed(self, actor: Any, index: int, exc: BaseException) -> bool:
        """On the event loop: retry or handle a failure; return whether to go on."""


class Strategy(Protocol):
    """How calls reach a thread, an executor, a Ray actor or the event loop."""

    async def work(self, actor: Any) -> None:
        """Run calls on ``actor``, first attempts, until none is left."""

    async def call(self, actor: Any, index: int) -> Any:
        """Make one attempt at call ``index`` on ``actor``; return its result."""


class OneAtATime:
    """A strategy that awaits one call after another: subclasses say how.

    With a ``timeout``, :meth:`call` gives up on an attempt after that many
    seconds (see :meth:`within_timeout`).
    """

    def __init__(self, calls: Calls, timeout: float | None = None) -> None:
        self.calls = calls
        self.timeout = timeout

    async def within_timeout(self, awaitable: Awaitable[Any]) -> Any:
        """Await ``awaitable``; past the timeout, cancel it, raise ``TimeoutError``."""
        timeout = self.timeout
        if timeout is None:
            return await awaitable
        with anyio.move_on_after(timeout):
            return await awaitable
        raise timed_out(timeout)  # only the deadline's cancellation ends here

    async def call(self, actor: Any, index: int) -> Any:
        raise NotImplementedError

    async def work(self, actor: Any) -> None:
        """Await one call after another until none is left or the run stops."""
        calls, clock = self.calls, time.perf_counter
        take, keep, report = calls.take_one, calls.completed_one, calls.reported
        cancelled = anyio.get_cancelled_exc_class()
        deadline = clock() + TIME_SLICE
        count = 0
        while not calls.stopped and (i := take()) is not None:
            count += 1
            started = clock()
            try:
                result = await self.call(actor, i)
            except cancelled:
                raise
            except BaseException as exc:
                if calls.stops_the_run(exc):
                    calls.stop()
                if not await calls.failed(actor, i, exc):
                    return
            else:
                keep(i, result)
                report((i,), (result,))
            # A coroutine that never awaits never lets the event loop run:
            # make room for the other tasks once a slice, and check for
            # cancellation as the threads do.
            now = clock()
            if now >= deadline:
                await anyio.lowlevel.checkpoint()
                deadline = clock() + TIME_SLICE
            elif now - started > LONG_CALL or count % CHECK_EVERY == 0:
                await anyio.lowlevel.checkpoint_if_cancelled()


class Coroutines(OneAtATime):
    """Coroutine functions, awaited on the event loop by the worker tasks.

    One call at a time per worker task: no limiter needed. Unlike a thread,
    a coroutine can be cancelled: it has no result yet. Past ``timeout=``, it
    is cancelled at its next ``await`` and the attempt fails with
    ``TimeoutError``.
    """

    async def call(self, actor: Any, index: int) -> Any:
        row = self.calls.parameters[index]
        if self.calls.keywords:
            _, coroutine = run_row(actor, index, row)
        elif type(actor) is LabelledActor:  # only calls its function
            coroutine = actor.get_func()(*row)
        else:
            _, coroutine = actor.run(index, *row)
        return await self.within_timeout(coroutine)
