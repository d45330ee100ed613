"""Calls on a :class:`concurrent.futures.Executor`: processes, clusters, MPI.

Our process stays the driver: it submits one call per free worker task, awaits
the future without parking a thread on it, and saves results and advances the
progress bar exactly as with threads.
"""

from __future__ import annotations

import pickle
import signal
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import (
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
)
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import Any

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread
import cloudpickle

__all__ = [
    "PROCESSES",
    "call_in_executor",
    "check_executor",
    "opened_executor",
    "wait_for_future",
]

PROCESSES = "processes"


def check_executor(executor: object, func: Callable[..., Any], name: str) -> None:
    """Raise unless ``executor`` can run ``func``; say how to fix it if not."""
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
    if isinstance(executor, ProcessPoolExecutor) or module.startswith("mpi4py"):
        _check_serialisable(func, name, pickle.dumps, "pickle")
    elif not isinstance(executor, ThreadPoolExecutor):
        _check_serialisable(func, name, cloudpickle.dumps, "cloudpickle")


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
            "executor='processes' needs loky: pip install 'thread-chunks[processes]'"
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


async def call_in_executor(
    executor: Executor, func: Callable[..., Any], args: Sequence[Any]
) -> Any:
    """Submit ``func(*args)`` and return its result, without blocking a thread.

    If cancelled while the call waits in the executor's queue, the call is
    withdrawn. If it is already running, it cannot be: the wait goes on,
    shielded, and the result is returned so that it can be saved; the
    cancellation is delivered at the caller's next checkpoint.
    """
    await anyio.lowlevel.checkpoint_if_cancelled()
    return await wait_for_future(executor.submit(func, *args))


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
