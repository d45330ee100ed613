"""Calls on a :class:`concurrent.futures.Executor`: processes, clusters, MPI.

Our process stays the driver: it saves results and moves the progress bar
exactly as with threads. A submission to a process pool or a cluster costs far
more than a tiny call (a fraction of a millisecond on a local pool,
milliseconds on Dask), so each submitted task runs a *batch* of calls one
after another in the worker (``_remote.run_batch``) and sends their results
back together. The first batch holds one call; then :class:`BatchSizes` aims
each batch at about :data:`TARGET` seconds of calls, learning from the time
the last batches took, like joblib's automatic batching. A batch is bounded
in time too: the worker returns what it has once :data:`BUDGET` seconds have
passed, and the calls it did not start go back to the front of the queue.

``executor="processes"`` is :class:`OwnPool`, a pebble process pool: when a
worker dies, only its own task fails (the pool starts another worker), and a
task past its timeout has its worker killed. A batch of several calls on it
has a side file, where the worker appends the results as it computes them
(``_remote.run_batch``): when a worker dies, the results its batch had
written are kept, and only the calls that did not finish are run again one
per task, so that the call that kills its worker when run alone fails by
itself, with :class:`WorkerDied`.

Each worker task sends a batch, waits for it without parking a thread, keeps
its results the moment it returns, and sends the next. With one batch per
worker task, no more than ``chunk_size`` calls ever run at once, and no call
starts once a failure or a cancellation is seen. A retry is a batch of one:
every attempt travels the same way.
"""

from __future__ import annotations

import math
import os
import pickle
import shutil
import signal
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import BrokenExecutor, Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio
import anyio.from_thread
import anyio.lowlevel
import anyio.to_thread

from ._actors import Calls

if TYPE_CHECKING:
    from ._remote import SideFile

__all__ = [
    "BUDGET",
    "PROCESSES",
    "TARGET",
    "Batch",
    "BatchSizes",
    "Batches",
    "OwnPool",
    "RemoteTraceback",
    "WorkerDied",
    "check_executor",
    "kill_our_workers",
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
        _import_pebble()
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


def _import_pebble() -> Any:
    """pebble, which runs our pool, after checking that loky is there too.

    loky's way of starting processes runs a fresh interpreter that neither
    forks a process with threads nor runs the main module again (a script
    without ``if __name__ == "__main__":`` works, and workers start fast).
    """
    try:
        import loky.backend  # noqa: F401  (checked here, used by OwnPool)
        import pebble
    except ImportError:
        raise ImportError(
            "executor='processes' needs pebble and loky (the "
            "thread-chunks[processes] extra): pip install pebble loky"
        ) from None
    return pebble


class WorkerDied(Exception):
    """A call's worker process died while it ran the call.

    Raised for the call that, run alone in a worker of
    ``executor="processes"`` (or on Dask), ended its worker: ``os._exit``, a
    crash in C code, or a signal. When a worker dies, the calls of its batch
    that did not finish are run again one per task, so that only the call
    that kills its worker fails, with this exception; each such attempt
    counts under ``retries=``, and ``errors=`` then decides as for any
    failure. The message names the call and the exit code or the signal; a
    worker killed by SIGKILL was most often killed by the kernel's
    out-of-memory killer.

    Parameters
    ----------
    message : str
        What happened, naming the call.
    exitcode : int or None
        The worker's exit code, negative for a signal (``-9``: SIGKILL), or
        ``None`` if unknown.

    Examples
    --------
    >>> from thread_chunks import WorkerDied
    >>> died = WorkerDied("the worker process running call 2 died", exitcode=-9)
    >>> died.exitcode
    -9

    A run with ``errors="return"`` returns it in the place of the call that
    killed its worker, and every other result:

    >>> import os
    >>> from thread_chunks import chunk
    >>> def crash(x):
    ...     if x == 2:
    ...         os._exit(1)
    ...     return x
    >>> out = chunk(crash, [[0], [1], [2]], chunk_size=2, errors="return",
    ...             executor="processes", progress_bar=False)
    >>> out[:2], type(out[2]).__name__
    ([0, 1], 'WorkerDied')
    """

    __module__ = "thread_chunks"

    def __init__(self, message: str, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.args[0], self.exitcode)


def _died(index: int, exitcode: int | None, how: str = "") -> WorkerDied:
    """The :class:`WorkerDied` of call ``index``, whose worker ended so."""
    what = f"the worker process running call {index} died"
    if exitcode is None:
        return WorkerDied(what + how, exitcode)
    if exitcode >= 0:
        return WorkerDied(
            f"{what} with exit code {exitcode} (os._exit, sys.exit in a thread "
            "or a crash in C code); run alone, this call ended its worker",
            exitcode,
        )
    try:
        name = signal.Signals(-exitcode).name
    except ValueError:
        name = f"signal {-exitcode}"
    message = f"{what}, killed by {name}"
    if -exitcode == signal.SIGKILL:
        message += (
            ": the kernel's out-of-memory killer is the usual cause (see "
            "dmesg); give the call less data, lower chunk_size so that fewer "
            "calls share the memory, or use a machine with more memory"
        )
    return WorkerDied(message, exitcode)


class _Recording:
    """A multiprocessing context that remembers the processes it starts."""

    def __init__(self, base: Any) -> None:
        self._base = base
        self.processes: weakref.WeakSet[Any] = weakref.WeakSet()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._base, name)

    def Process(self, *args: Any, **kwargs: Any) -> Any:
        process = self._base.Process(*args, **kwargs)
        self.processes.add(process)
        return process


class OwnPool:
    """The process pool of ``executor="processes"``: pebble's, for one run.

    A worker that dies fails its own task only, and the pool starts another.
    A task past its timeout has its worker killed (and replaced). The pool's
    processes are started by a thread of its own that lives as long as the
    pool, which matters on Linux: each worker asks the kernel for SIGKILL
    when that thread ends (``prctl(PR_SET_PDEATHSIG)``), so no worker
    outlives the driver, however the driver ends. Tasks are cloudpickled
    :class:`~thread_chunks._remote.Invocation` bytes that the workers load
    with the standard pickle: lambdas travel, and the workers never import
    thread_chunks.
    """

    def __init__(self, workers: int) -> None:
        pebble = _import_pebble()
        import cloudpickle
        import loky.backend

        from ._remote import Invocation, set_up_worker

        self._context = _Recording(loky.backend.get_context("loky"))
        set_up = cloudpickle.dumps(Invocation(set_up_worker, (os.getpid(),)))
        self._pool = pebble.ProcessPool(
            max_workers=workers,
            initializer=pickle.loads,
            initargs=(set_up,),
            context=self._context,
        )
        self._started = threading.Event()
        self._closing = threading.Event()
        self._thread = threading.Thread(
            target=self._host, name="thread-chunks process pool", daemon=True
        )
        self._sides: str | None = None
        self._side_count = 0

    def side_file(self) -> str:
        """A new path for a batch's side file, in a directory of this pool."""
        if self._sides is None:
            self._sides = tempfile.mkdtemp(prefix="thread-chunks-")
        self._side_count += 1
        return os.path.join(self._sides, f"{self._side_count}.pickle")

    def _host(self) -> None:
        """In the pool's own thread: start the workers, stop them when told."""
        try:
            self._pool.active  # noqa: B018  (starts the workers from this thread)
        finally:
            self._started.set()
        self._closing.wait()
        self._pool.stop()
        self._pool.join()

    def start(self) -> None:
        """Start the pool's thread and its workers; block until they are."""
        with _open_pools_lock:
            _open_pools.add(self)
        self._thread.start()
        self._started.wait()

    def close(self) -> None:
        """Stop the workers (a task still running is ended) and wait for them."""
        self._closing.set()
        self._thread.join()
        with _open_pools_lock:
            _open_pools.discard(self)
        if self._sides is not None:
            shutil.rmtree(self._sides, ignore_errors=True)

    def pids(self) -> list[int]:
        """The process ids of the workers alive now."""
        return [
            process.pid
            for process in list(self._context.processes)
            if process.pid is not None and process.exitcode is None
        ]

    def kill(self) -> int:
        """SIGKILL every worker now; return how many were alive."""
        killed = 0
        for pid in self.pids():
            with suppress(ProcessLookupError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))
                killed += 1
        return killed

    def submit_batch(
        self, arguments: tuple[Any, ...], timeout: float | None
    ) -> Future[Any]:
        """Run ``run_batch(*arguments)`` in a worker; past ``timeout``, kill it."""
        import cloudpickle

        from ._remote import Invocation, run_batch

        payload = cloudpickle.dumps(Invocation(run_batch, arguments), protocol=5)
        future: Future[Any] = self._pool.schedule(
            pickle.loads, args=(payload,), timeout=timeout
        )
        return future


_open_pools: weakref.WeakSet[OwnPool] = weakref.WeakSet()
_open_pools_lock = threading.Lock()


def kill_our_workers() -> int:
    """SIGKILL, now, every worker of every ``executor="processes"`` pool open.

    For the host's second Ctrl-C or SIGTERM, once the runs start no more
    calls: a run whose call hangs in a worker then ends without waiting for
    the call; the calls that were running fail with :class:`WorkerDied`, and
    the pools close as the runs end. Not for a run that goes on: an idle
    worker killed while it waits for a task may hold the lock of the pool's
    task queue, and then no other worker gets a task. Safe from any thread.
    Returns how many workers were killed.

    Examples
    --------
    >>> from thread_chunks._executor import kill_our_workers
    >>> kill_our_workers()  # no pool open here
    0
    """
    with _open_pools_lock:
        pools = list(_open_pools)
    return sum(pool.kill() for pool in pools)


@asynccontextmanager
async def opened_executor(
    executor: Executor | str | None, chunk_size: int
) -> AsyncIterator[Executor | OwnPool | None]:
    """Yield the executor to use, creating and closing it for ``'processes'``.

    ``'processes'`` is an :class:`OwnPool` of ``chunk_size`` workers for this
    run, started in a worker thread so as not to block the event loop; its
    workers ignore SIGINT.
    """
    if not isinstance(executor, str):
        yield executor
        return
    created = OwnPool(chunk_size)
    await anyio.to_thread.run_sync(created.start)
    try:
        yield created
    finally:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(created.close)


class _TimedOut(Exception):
    """A future not done within its timeout; ``started``: it was running."""

    def __init__(self, started: bool) -> None:
        super().__init__(started)
        self.started = started


async def wait_for_future(
    future: Future[Any],
    withdraw: bool = True,
    abandon_after: float | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Any:
    """Wait for ``future`` without blocking a thread and return its result.

    On cancellation a future still queued is cancelled (unless ``withdraw`` is
    false: the future cannot tell whether its call runs); one that is running
    is waited for, shielded, and its result returned so that it can be saved.
    After ``abandon_after`` seconds a future still queued is cancelled and one that
    runs is abandoned: :class:`_TimedOut` says which. ``meanwhile`` is called
    while the future runs long (see :func:`_wait`).
    """
    abandoned = threading.Event()
    done = _done_event(future, abandoned)
    deadline = (
        math.inf if abandon_after is None else anyio.current_time() + abandon_after
    )
    with anyio.CancelScope(deadline=deadline) as timer:
        try:
            await _wait(done, meanwhile)
        except anyio.get_cancelled_exc_class():
            if timer.cancel_called:  # the timeout: handled below
                raise
            if withdraw and future.cancel():
                raise
            # Like anyio.to_thread.run_sync: a started call is waited for and
            # its result returned. The cancel scope stays cancelled, so the
            # caller's next checkpoint raises again.
            with anyio.CancelScope(shield=True):
                await _wait(done, meanwhile)
    if not future.done():
        # Its end must not wait for this event loop, which may be blocked
        # then (in the executor's shutdown, say): it would wait forever.
        abandoned.set()
        raise _TimedOut(started=not future.cancel())
    return future.result()


class _MeanwhileFailed(Exception):
    """What ``meanwhile`` raised, once the future it ran beside is done."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


async def _wait(done: anyio.Event, meanwhile: Callable[[], None] | None) -> None:
    """Wait for ``done``; from 2 :data:`BUDGET` on, call ``meanwhile`` every BUDGET.

    A batch within its budget is back before the first call. What
    ``meanwhile`` raises is raised as :class:`_MeanwhileFailed` once ``done``
    is set: the task it watches is never left running.
    """
    interval = 2 * BUDGET
    while meanwhile is not None:
        with anyio.move_on_after(interval):
            await done.wait()
            return
        interval = BUDGET
        try:
            meanwhile()
        except Exception as exc:
            with anyio.CancelScope(shield=True):  # nothing replaces exc
                await done.wait()
            raise _MeanwhileFailed(exc) from exc
    await done.wait()


def _done_event(
    future: Future[Any], abandoned: threading.Event | None = None
) -> anyio.Event:
    """An event set on the event loop thread when ``future`` is done.

    Not once ``abandoned`` is set: nobody waits for it then.
    """
    event = anyio.Event()
    token = anyio.lowlevel.current_token()
    loop_thread = threading.get_ident()

    def on_done(_: Future[Any]) -> None:
        if threading.get_ident() == loop_thread:  # done already, or cancelled here
            event.set()
            return
        if abandoned is not None and abandoned.is_set():
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

BUDGET = 2 * TARGET
"""Seconds after which a batch returns what it has, whatever its size: the
worker checks the clock after each call. A crash of the driving process
loses, per worker, at most the running call and about this much of finished
calls; and a batch never starts more calls than this allows at the slowest
call seen lately, so that a slow call shrinks the next batches at once."""

_LOW, _HIGH = TARGET / 2, TARGET * 2
_GROWTH = 64  # a batch is at most this many times the size of the one measured
_SHORTEST = 0.005  # seconds: the even shares of the last calls are no shorter


class Batch(NamedTuple):
    """What a batch sent back: one result per call it ran, and its failures."""

    results: list[Any]
    """The results in order; ``None`` where the call failed. Calls past the
    end did not start (the batch's time budget was spent, or a failure
    stopped it)."""
    failures: list[tuple[int, BaseException, str]]
    """``(position in the batch, exception, traceback text)`` for each failure."""
    slowest: float = 0.0
    """Seconds of the slowest call."""


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
    makes them smaller. No batch takes more calls than :data:`BUDGET` allows
    at the slowest call seen lately (that time halves with each batch that
    has no slower one). No batch takes more than an even share of the calls
    left (unless that would take under ``_SHORTEST`` seconds), so that the
    last calls spread over all the workers and they finish together.
    """

    def __init__(self, calls: int, workers: int) -> None:
        self.size = 1
        self.shortest = 1
        self.left = calls
        self.workers = workers
        self.slowest = 0.0
        """Seconds of the slowest call seen lately."""

    def next_size(self) -> int:
        """The size of the next batch; counts its calls as taken."""
        share = max(math.ceil(self.left / self.workers), self.shortest)
        size = max(min(self.size, share), 1)
        if self.slowest * size > BUDGET:
            size = max(1, int(BUDGET / self.slowest))
        self.left -= size
        return size

    def give_back(self, calls: int) -> None:
        """Count ``calls`` calls taken but not started as left again."""
        self.left += calls

    def learn(self, calls: int, seconds: float, slowest: float = 0.0) -> None:
        """Adjust to a batch of ``calls`` calls that took ``seconds``.

        ``slowest``: the seconds of its slowest call, as the worker measured.
        """
        self.slowest = max(slowest, self.slowest / 2)
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


def _spans(indices: list[int]) -> str:
    """Sorted ``indices`` as text: ``"4 to 7, 9 and 12"``."""
    spans: list[list[int]] = []
    for i in indices:
        if spans and spans[-1][1] == i - 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    parts = [str(a) if a == b else f"{a} to {b}" for a, b in spans]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


class _Broken(Exception):
    """A user's executor that broke (a worker died): it cannot run more."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


class Batches:
    """The strategy for an executor: calls sent a batch at a time.

    Each batch's results are kept the moment it returns, and the calls it
    did not start (its time budget was spent) go back to the front of the
    queue; its failures are then retried one call at a time, or handled as
    ``errors`` says. A batch that fails as a whole (its worker died, or its
    arguments cannot be sent) has its calls run again one per task, so that
    each fails, or not, by itself. With ``timeout``, each batch is one call.
    """

    def __init__(
        self,
        calls: Calls,
        limiter: anyio.CapacityLimiter,
        executor: Executor | OwnPool,
        sizes: BatchSizes,
        stop_at_failure: bool,
        timeout: float | None = None,
    ) -> None:
        """``stop_at_failure``: whether a failing call ends the run at once."""
        self.calls = calls
        self.limiter = limiter
        self.executor = executor
        self.sizes = sizes
        self.stop_at_failure = stop_at_failure
        self.timeout = timeout
        # Whether the batches cross processes: then they travel pickled by us.
        self.pickled = not isinstance(executor, ThreadPoolExecutor)
        self._in_flight: dict[int, list[int]] = {}
        """The batches sent and not back, by a number of their own."""
        self._sent = 0
        self._broken = False

    async def work(self, actor: Any) -> None:
        """Send batches of calls until none is left or the run stops."""
        calls = self.calls
        while not calls.stopped:
            await anyio.lowlevel.checkpoint_if_cancelled()
            size = 1 if self.timeout is not None else self.sizes.next_size()
            batch = calls.take(size)
            if not batch:
                return
            side = self._side_file(batch)
            try:
                outcome, seconds = await self._send(
                    actor, batch, self.stop_at_failure, side
                )
            except _Broken as broken:
                self._stop_broken(batch, broken)
                return
            except _MeanwhileFailed as failed:  # ours, not the batch's
                raise failed.error from failed.error.__cause__
            except Exception as exc:  # the batch as a whole: its worker died...
                if len(batch) == 1:
                    going_on = await calls.failed(actor, batch[0], exc)
                else:
                    rest: list[int] | None = batch
                    if side is not None:  # what finished before it died is kept
                        rest = await self._keep_side(actor, batch, side)
                    going_on = rest is not None and await self._one_by_one(actor, rest)
                if not going_on:
                    return
                continue
            finally:
                if side is not None:
                    with suppress(OSError):
                        os.remove(side.path)
            if not await self._keep(actor, batch, outcome, seconds, side):
                return

    def _side_file(self, batch: list[int]) -> SideFile | None:
        """The side file of a batch of several calls on our own pool."""
        if not isinstance(self.executor, OwnPool) or len(batch) == 1:
            return None
        from ._remote import SideFile

        return SideFile(self.executor.side_file())

    def _harvest(self, batch: list[int], side: SideFile) -> None:
        """Keep the results that a running batch has appended to its side file.

        A batch returns once its budget is spent, but only after the call it
        runs then: a slow call (or one that hangs) would otherwise hold the
        results finished before it, unsaved and off the progress bar.
        """
        results = side.read()
        if results:
            positions = sorted(results)
            ran = [batch[p] for p in positions]
            kept = [results[p] for p in positions]
            self.calls.completed(ran, kept)
            self.calls.reported(ran, kept)
            side.kept.update(positions)

    async def call(self, actor: Any, index: int) -> Any:
        """One attempt at call ``index``: a batch of one."""
        try:
            outcome, _ = await self._send(actor, [index], True)
        except _Broken as broken:
            self._stop_broken([index], broken)
            raise broken.error from broken.error.__cause__
        if outcome.failures:
            raise outcome.failures[0][1]
        return outcome.results[0]

    async def _one_by_one(self, actor: Any, batch: list[int]) -> bool:
        """Run the calls ``batch`` one per task; return whether to go on."""
        calls = self.calls
        for k, index in enumerate(batch):
            if calls.stopped:
                calls.give_back(batch[k:])
                return False
            try:
                result = await self.call(actor, index)
            except anyio.get_cancelled_exc_class():
                raise
            except BaseException as exc:
                if not await calls.failed(actor, index, exc):
                    return False
            else:
                calls.completed([index], [result])
                calls.reported([index], [result])
        return True

    async def _keep_side(
        self, actor: Any, batch: list[int], side: SideFile
    ) -> list[int] | None:
        """Keep the calls of a dead batch that its side file says finished.

        Returns the calls to run again, or ``None`` if the run is not to go
        on (a failure among those kept stops it).
        """
        calls = self.calls
        self._harvest(batch, side)
        failures = side.failures
        finished = {*side.kept, *(position for position, _, _ in failures)}
        rest = [index for p, index in enumerate(batch) if p not in finished]
        going_on = True
        for position, exc, text in failures:
            if text and exc.__cause__ is None:
                exc.__cause__ = RemoteTraceback(text)
            going_on = await calls.failed(actor, batch[position], exc) and going_on
        if not going_on:
            calls.give_back(rest)
            return None
        return rest

    async def _send(
        self,
        actor: Any,
        batch: list[int],
        stop_at_failure: bool,
        side: SideFile | None = None,
    ) -> tuple[Batch, float]:
        """Run the calls ``batch`` in one task of the executor.

        Returns what it sent back, and the seconds of its round trip. Raises
        what failed the batch as a whole, as the failure of its call when it
        holds one: :class:`WorkerDied`, :class:`TimeoutError`, or what the
        executor raised (an argument that cannot be pickled); :class:`_Broken`
        when a user's executor broke.
        """
        from ._remote import pickle_arguments, run_batch  # and cloudpickle

        parameters = self.calls.parameters
        arguments: Any = [parameters[i] for i in batch]
        func = actor.get_func()
        own = self.executor if isinstance(self.executor, OwnPool) else None
        number = self._sent = self._sent + 1
        async with self.limiter:
            sent_at = time.perf_counter()
            self._in_flight[number] = batch
            try:
                if self.pickled and len(batch) > 1:  # pickled at once, unpickled fast
                    arguments = pickle_arguments(arguments)
                task = (func, arguments, stop_at_failure, self.pickled,
                        self.calls.keywords, BUDGET,
                        None if side is None else side.path)  # fmt: skip
                if own is not None:
                    future = own.submit_batch(task, self.timeout)
                    # Never cancelled: pebble would kill a running task's
                    # worker, and every task sent to our pool (no more than
                    # it has workers) starts at once.
                    sent = await wait_for_future(
                        future,
                        withdraw=False,
                        meanwhile=None
                        if side is None
                        else partial(self._harvest, batch, side),
                    )
                else:
                    assert not isinstance(self.executor, OwnPool)
                    future = self.executor.submit(run_batch, *task)
                    sent = await wait_for_future(future, abandon_after=self.timeout)
            except (anyio.get_cancelled_exc_class(), _MeanwhileFailed):
                raise
            except Exception as exc:
                failure = self._failure(batch, exc, own is not None)
                if failure is exc:
                    raise
                raise failure from failure.__cause__
            finally:
                del self._in_flight[number]
            seconds = time.perf_counter() - sent_at
        return unpack(sent), seconds

    def _failure(self, batch: list[int], exc: Exception, own: bool) -> Exception:
        """What failed the task of the calls ``batch``, as their failure."""
        index = batch[0]
        if isinstance(exc, _TimedOut):
            what = (
                "was abandoned: it may go on running in the executor, which "
                "cannot stop it"
                if exc.started
                else "was cancelled before it started"
            )
            return TimeoutError(
                f"call {index} took longer than timeout={self.timeout} s and {what}"
            )
        if own and isinstance(exc, TimeoutError):
            return TimeoutError(
                f"call {index} took longer than timeout={self.timeout} s: its "
                "worker process was killed, and another started"
            )
        if isinstance(exc, BrokenExecutor) and not own:
            return _Broken(exc)
        if own and isinstance(exc, _import_pebble().ProcessExpired):
            return _died(index, exc.exitcode)
        if type(exc).__name__ == "KilledWorker":  # Dask gave up on the task
            died = _died(index, None, f" (Dask: {exc})")
            died.__cause__ = exc
            return died
        if len(batch) == 1:
            exc.add_note(
                "raised by the executor as it ran this call, not by the call: "
                "an argument or the function that cannot be pickled?"
            )
        return exc

    def _stop_broken(self, batch: list[int], broken: _Broken) -> None:
        """Stop the run: the user's executor broke as it ran ``batch``."""
        if self._broken:  # another batch of this run told already
            self.calls.stop()
            return
        self._broken = True
        exc = broken.error
        running = sorted({*batch, *(i for b in self._in_flight.values() for i in b)})
        if len(running) == 1:
            which = f"call {running[0]}, the only call it ran then, killed it"
        else:
            which = (
                "the call that killed it is one of those it was running or about "
                f"to run: calls {_spans(running)}"
            )
        exc.add_note(
            f"the executor ({type(self.executor).__name__}) broke: a worker process "
            f"died; {which}. Every result that came back is saved. This executor "
            "cannot be used once a worker dies: pass executor='processes', whose "
            "pool replaces a dead worker and fails only the call that killed it, "
            "with WorkerDied"
        )
        self.calls.stop((batch[0], exc))

    async def _keep(
        self,
        actor: Any,
        batch: list[int],
        outcome: Batch,
        seconds: float,
        side: SideFile | None = None,
    ) -> bool:
        """Keep what a batch sent back (but what ``side`` kept); go on?"""
        calls = self.calls
        ran, results = batch[: len(outcome.results)], outcome.results
        if len(ran) < len(batch):  # not started: next, before new calls
            calls.give_back(batch[len(ran) :])
            self.sizes.give_back(len(batch) - len(ran))
        self.sizes.learn(len(ran), seconds, outcome.slowest)
        if outcome.failures or (side is not None and side.kept):
            # The failures' and those kept already: the others' results first.
            skip = {position for position, _, _ in outcome.failures}
            if side is not None:
                skip |= side.kept
            kept = [p for p in range(len(ran)) if p not in skip]
            ran, results = [ran[p] for p in kept], [results[p] for p in kept]
        if ran:
            calls.completed(ran, results)
            calls.reported(ran, results)
        going_on = True
        for position, exc, _ in outcome.failures:  # each kept, none lost
            going_on = await calls.failed(actor, batch[position], exc) and going_on
        return going_on
