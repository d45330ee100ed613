"""Calls on a :class:`concurrent.futures.Executor`: processes, clusters, MPI.

Our process stays the driver: it saves results and moves the progress bar
exactly as with threads. A submission to a process pool or a cluster costs far
more than a tiny call (a fraction of a millisecond on a local pool,
milliseconds on Dask), so each submitted task runs a *batch* of calls one
after another in the worker (``_remote.run_batch``) and sends their results
back together. The first batch holds one call; then :class:`BatchSizes` aims
each batch at about :data:`TARGET` seconds of calls, learning from the time
the last batches took, like joblib's automatic batching.

Each worker task sends a batch, waits for it without parking a thread, keeps
its results the moment it returns, and sends the next. With one batch per
worker task, no more than ``chunk_size`` calls ever run at once, and no call
starts once a failure or a cancellation is seen. A retry is a batch of one:
every attempt travels the same way.
"""

from __future__ import annotations

import math
import pickle
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any, NamedTuple

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._actors import Calls

__all__ = [
    "PROCESSES",
    "TARGET",
    "Batch",
    "BatchSizes",
    "Batches",
    "RemoteTraceback",
    "check_executor",
    "opened_executor",
    "unpack",
    "wait_for_future",
]

PROCESSES = "processes"


def check_executor(executor: object, func: Callable[..., Any], name: str) -> None:
    """Raise unless ``executor`` can run ``func``; say how to fix it if not."""
    import cloudpickle  # only once an executor is used

    if isinstance(executor, str):
        if executor != PROCESSES:
            raise ValueError(
                f"executor must be 'processes' or a concurrent.futures.Executor, "
                f"got {executor!r}"
            )
        _import_loky()
        _check_serialisable(func, name, cloudpickle.dumps, "cloudpickle")
        return
    if not isinstance(executor, Executor):
        raise TypeError(
            "executor must be 'processes' or a concurrent.futures.Executor, got "
            f"{type(executor).__name__}"
        )
    module = type(executor).__module__
    if _is_process_pool(executor) or module.startswith("mpi4py"):
        _check_serialisable(func, name, pickle.dumps, "pickle")
    elif not isinstance(executor, ThreadPoolExecutor):
        _check_serialisable(func, name, cloudpickle.dumps, "cloudpickle")


def _is_process_pool(executor: Executor) -> bool:
    """``isinstance(executor, ProcessPoolExecutor)``, without importing its module.

    Importing ``concurrent.futures.process`` costs a run on threads 10-20 ms;
    a process pool exists only if its module has been imported.
    """
    process = sys.modules.get("concurrent.futures.process")
    return process is not None and isinstance(executor, process.ProcessPoolExecutor)


def _check_serialisable(
    func: Callable[..., Any], name: str, dumps: Callable[[Any], bytes], how: str
) -> None:
    try:
        dumps(func)
    except Exception as exc:
        fix = (
            "define it with def at the top level of a module (not a lambda, not "
            "inside another function, not in a notebook) and bind arguments with "
            "functools.partial, or use executor='processes', which uses cloudpickle"
            if how == "pickle"
            else "make sure everything it refers to can be pickled"
        )
        raise TypeError(
            f"func {name} cannot be sent to the executor, which serialises with "
            f"{how} ({type(exc).__name__}: {exc}); {fix}"
        ) from None


def _import_loky() -> Any:
    try:
        import loky
    except ImportError:
        raise ImportError(
            "executor='processes' needs loky (the thread-chunks[processes] extra): "
            "pip install loky"
        ) from None
    return loky


@asynccontextmanager
async def opened_executor(
    executor: Executor | str | None, chunk_size: int
) -> AsyncIterator[Executor | None]:
    """Yield the executor to use, creating and closing it for ``'processes'``.

    ``'processes'`` is a loky pool of this run's own (never loky's shared
    reusable one, which other runs may be using), started in a worker thread
    so as not to block the event loop; its workers ignore SIGINT.
    """
    if not isinstance(executor, str):
        yield executor
        return
    pool = partial(
        _import_loky().ProcessPoolExecutor,
        max_workers=chunk_size,
        # ignore_sigint, made of the standard library only, so that the
        # workers need not import thread_chunks (see ``_remote``).
        initializer=partial(signal.signal, signal.SIGINT, signal.SIG_IGN),
    )
    created: Executor = await anyio.to_thread.run_sync(pool)
    try:
        yield created
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(created.shutdown, True)


async def wait_for_future(future: Future[Any], withdraw: bool = True) -> Any:
    """Wait for ``future`` without blocking a thread and return its result.

    On cancellation a future still queued is cancelled (unless ``withdraw`` is
    false: the future cannot tell whether its call runs); one that is running
    is waited for, shielded, and its result returned so that it can be saved.
    """
    done = _done_event(future)
    try:
        await done.wait()
    except anyio.get_cancelled_exc_class():
        if withdraw and future.cancel():
            raise
        # Like anyio.to_thread.run_sync: a started call is waited for and its
        # result returned. The cancel scope stays cancelled, so the caller's
        # next checkpoint raises again.
        with anyio.CancelScope(shield=True):
            await done.wait()
    return future.result()


def _done_event(future: Future[Any]) -> anyio.Event:
    """An event set on the event loop thread when ``future`` is done."""
    event = anyio.Event()
    token = anyio.lowlevel.current_token()
    loop_thread = threading.get_ident()

    def on_done(_: Future[Any]) -> None:
        if threading.get_ident() == loop_thread:  # done already, or cancelled here
            event.set()
            return
        with suppress(anyio.RunFinishedError):
            anyio.from_thread.run_sync(event.set, token=token)

    future.add_done_callback(on_done)
    return event


TARGET = 0.1
"""Seconds of calls a batch aims at. Between 0.05 and 0.2 s the size stays as
it is: long enough that a submission's cost is a few percent at most on a
cluster, short enough that the progress bar moves several times a second and
a cancelled run waits little for the batches already running."""

_LOW, _HIGH = TARGET / 2, TARGET * 2
_GROWTH = 64  # a batch is at most this many times the size of the one measured
_SHORTEST = 0.005  # seconds: the even shares of the last calls are no shorter


class Batch(NamedTuple):
    """What a batch sent back: one result per call it ran, and its failures."""

    results: list[Any]
    """The results in order; ``None`` where the call failed."""
    failures: list[tuple[int, BaseException, str]]
    """``(position in the batch, exception, traceback text)`` for each failure."""


class RemoteTraceback(Exception):
    """The traceback of a call that failed in a worker, as its cause shows it."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def unpack(sent: Any) -> Batch:
    """The :class:`Batch` that ``run_batch`` sent back, with remote tracebacks."""
    batch = Batch(*(pickle.loads(sent) if isinstance(sent, bytes) else sent))
    for _, exc, text in batch.failures:
        if text and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(text)
    return batch


class BatchSizes:
    """How many calls the next batch takes, learnt from the batches so far.

    Starts at one call. A batch shorter than ``TARGET / 2`` makes the next
    ones larger (at most ``_GROWTH`` times), one longer than ``TARGET * 2``
    makes them smaller. No batch takes more than an even share of the calls
    left (unless that would take under ``_SHORTEST`` seconds), so that the
    last calls spread over all the workers and they finish together.
    """

    def __init__(self, calls: int, workers: int) -> None:
        self.size = 1
        self.shortest = 1
        self.left = calls
        self.workers = workers

    def next_size(self) -> int:
        """The size of the next batch; counts its calls as taken."""
        share = max(math.ceil(self.left / self.workers), self.shortest)
        size = max(min(self.size, share), 1)
        self.left -= size
        return size

    def learn(self, calls: int, seconds: float) -> None:
        """Adjust to a batch of ``calls`` calls that took ``seconds``."""
        if calls == 0:
            return
        ideal = TARGET * calls / seconds if seconds > 0 else math.inf
        self.shortest = int(min(ideal * _SHORTEST / TARGET, 2**31))
        if _LOW <= seconds <= _HIGH:
            return
        if seconds < _LOW:
            self.size = max(self.size, int(min(ideal, calls * _GROWTH)))
        else:
            self.size = min(self.size, max(1, int(ideal)))


class Batches:
    """The strategy for an executor: calls sent a batch at a time.

    Each batch's results are kept the moment it returns; its failures are
    then retried one call at a time, or handled as ``errors`` says.
    """

    def __init__(
        self,
        calls: Calls,
        limiter: anyio.CapacityLimiter,
        executor: Executor,
        sizes: BatchSizes,
        stop_at_failure: bool,
    ) -> None:
        """``stop_at_failure``: whether a failing call ends the run at once."""
        self.calls = calls
        self.limiter = limiter
        self.executor = executor
        self.sizes = sizes
        self.stop_at_failure = stop_at_failure
        # Whether the batches cross processes: then they travel pickled by us.
        self.pickled = not isinstance(executor, ThreadPoolExecutor)

    async def work(self, actor: Any) -> None:
        """Send batches of calls until none is left or the run stops."""
        calls = self.calls
        while not calls.stopped:
            await anyio.lowlevel.checkpoint_if_cancelled()
            batch = calls.take(self.sizes.next_size())
            if not batch:
                return
            try:
                outcome, seconds = await self._send(actor, batch, self.stop_at_failure)
            except Exception as exc:  # not a call: the batch failed (a dead worker)
                exc.add_note(
                    f"raised by the executor running calls {batch[0]} to "
                    f"{batch[-1]} as one batch"
                )
                calls.stop((batch[0], exc))
                return
            if not await self._keep(actor, batch, outcome, seconds):
                return

    async def call(self, actor: Any, index: int) -> Any:
        """One attempt at call ``index``: a batch of one."""
        outcome, _ = await self._send(actor, [index], True)
        if outcome.failures:
            raise outcome.failures[0][1]
        return outcome.results[0]

    async def _send(
        self, actor: Any, batch: list[int], stop_at_failure: bool
    ) -> tuple[Batch, float]:
        """Run the calls ``batch`` in one task of the executor.

        Returns what it sent back, and the seconds of its round trip.
        """
        from ._remote import pickle_arguments, run_batch  # and cloudpickle

        parameters = self.calls.parameters
        arguments: Any = [parameters[i] for i in batch]
        if self.pickled and len(batch) > 1:  # many: pickled at once, unpickled fast
            arguments = pickle_arguments(arguments)
        func = actor.get_func()
        async with self.limiter:
            sent_at = time.perf_counter()
            future = self.executor.submit(
                run_batch,
                func,
                arguments,
                stop_at_failure,
                self.pickled,
                self.calls.keywords,
            )
            sent = await wait_for_future(future)
            seconds = time.perf_counter() - sent_at
        return unpack(sent), seconds

    async def _keep(
        self, actor: Any, batch: list[int], outcome: Batch, seconds: float
    ) -> bool:
        """Keep what a batch sent back; return whether to go on."""
        calls = self.calls
        ran, results = batch[: len(outcome.results)], outcome.results
        self.sizes.learn(len(ran), seconds)
        if outcome.failures:  # keep the others' results first
            failed = {position for position, _, _ in outcome.failures}
            kept = [p for p in range(len(ran)) if p not in failed]
            ran, results = [ran[p] for p in kept], [results[p] for p in kept]
        if ran:
            calls.completed(ran, results)
            calls.reported(ran, results)
        going_on = True
        for position, exc, _ in outcome.failures:  # each kept, none lost
            going_on = await calls.failed(actor, batch[position], exc) and going_on
        return going_on
