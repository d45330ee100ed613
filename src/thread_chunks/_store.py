"""A run's checkpoint file: opening it, then keeping it in step with the run.

**Opening.** Lock the file, then resume it, replace it or move it aside. A
file is unpickled only if it begins the way the files we write begin:
anything else at ``path`` (another program's pickle, a 1.x checkpoint,
garbage) is renamed out of the way unread, because unpickling runs code.

**Writing.** Workers hand each result to :meth:`CheckpointStore.record`, which
only queues it. One writer, running in a worker thread under an
:class:`anyio.Lock`, appends everything queued since its last write as one
record and fsyncs it (group commit): at most one write is in flight, results
that complete during it go together into the next, and a slow disk never
stalls a call. When the run ends, however it ends, the rest is written and the
file is finished.

**In memory.** The run's checkpoint is a :class:`CheckpointData`: the results,
the failures (:class:`CallFailure`), the function's identity, and the rules
that compare and resume them. The public ``Checkpoint`` (``_checkpoint``) is
one that saveable-objects can save and load; a run never imports it, nor
saveable-objects, which imports numpy.
"""

from __future__ import annotations

import errno
import logging
import os
import pickle
import reprlib
import struct
import threading
import time
import traceback
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from functools import partial
from itertools import compress, islice, repeat
from operator import is_not, itemgetter
from typing import Any, NamedTuple, Self, TypeVar

import anyio
import anyio.to_thread

from ._identity import FunctionIdentity, identify, same_parameters
from ._journal import (
    FORMAT,
    MAGIC,
    OPENING,
    OPENING_1,
    TAIL,
    CheckpointLock,
    Commit,
    Contents,
    DamagedHeader,
    Journal,
    OldFormat,
    Run,
    columns,
    copy_frames,
    iter_ranges,
    keep_copy,
    load_parameters,
    memo_of,
    move_aside,
    new_key,
    read_contents,
    remove_leftovers,
    same_pickle,
    write_file,
)
from ._pickling import dumps, failure_key, is_failure_key

__all__ = [
    "MIN_WRITE_GAP",
    "CallFailure",
    "CheckpointData",
    "CheckpointFailedWarning",
    "CheckpointStore",
    "Warn",
    "open_checkpoint_file",
    "read_checkpoint",
]

logger = logging.getLogger("thread_chunks")

Warn = Callable[[str, type[Warning], str], None]
"""How the store warns: ``warn(message, category, kind)``; the run issues the
first warning of each ``kind`` from the line that started it."""

MIN_WRITE_GAP = 0.002
"""Seconds between two checkpoint writes at least: at most 500 fsyncs a second."""

logger = logging.getLogger("thread_chunks")


# ---- the checkpoint in memory

C = TypeVar("C", bound="CheckpointData")


class CallFailure(NamedTuple):
    """Why a call failed, as a checkpoint keeps it until the call succeeds.

    Attributes
    ----------
    exception_type : str
        The name of the exception's class, such as ``'ValueError'``.
    message : str
        ``str()`` of the exception.
    traceback : str
        The formatted traceback.
    attempts : int
        How many times the call was tried (``1 + retries``).
    time : float
        When it failed last, in seconds since the epoch.

    Examples
    --------
    >>> from thread_chunks import Checkpoint, chunk
    >>> def inverse(x):
    ...     return 1 / x
    >>> chunk(inverse, [[1], [0]], errors="return", path=tmp / "inv.pkl",
    ...       progress_bar=False)
    [1.0, ZeroDivisionError('division by zero')]
    >>> failure = Checkpoint.load(tmp / "inv.pkl").failures[1]
    >>> failure.exception_type, failure.message, failure.attempts
    ('ZeroDivisionError', 'division by zero', 1)
    """

    exception_type: str
    message: str
    traceback: str
    attempts: int
    time: float

    @classmethod
    def of_record(cls, record: Mapping[str, Any]) -> CallFailure:
        """The failure that a checkpoint file records as JSON."""
        return cls(
            str(record["exception_type"]),
            str(record["message"]),
            str(record["traceback"]),
            int(record["attempts"]),
            float(record["time"]),
        )

    @classmethod
    def of(cls, exc: BaseException, attempts: int) -> CallFailure:
        """Describe ``exc``, raised after ``attempts`` tries."""
        text = "".join(traceback.format_exception(exc))
        return cls(type(exc).__qualname__, str(exc), text, attempts, time.time())


class CheckpointFailedWarning(Warning):
    """A checkpoint could not be read or written; the computation goes on.

    Results are never lost because of this warning: they are still returned.
    What it means is that a rerun may have to compute some of them again.

    Examples
    --------
    Stop a run whose checkpoint cannot be saved, instead of carrying on:

    >>> import warnings
    >>> from thread_chunks import chunk
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", CheckpointFailedWarning)
    ...     chunk(abs, [[-1]], path=tmp / "strict.pkl", progress_bar=False)
    [1]
    """

    __module__ = "thread_chunks"


class CheckpointData:
    """What a run has computed so far: the data and rules of a :class:`Checkpoint`.

    A run keeps its checkpoint in one of these, which needs nothing of
    saveable-objects (nor numpy, which that imports): the public
    :class:`~thread_chunks.Checkpoint` adds saving and loading to it. The
    arguments and attributes are the ``Checkpoint``'s, but ``path``.
    """

    ready_outputs: list[Any] | None = None
    """Every call's result in order, when a resume found them all: then
    :attr:`results` stays empty unless a run asks for it (see
    :meth:`take_outputs`)."""

    def __init__(
        self,
        func_name: str,
        parameters: Sequence[Sequence[Any]],
        output: Sequence[Any] | None = None,
        completed: Sequence[bool] | None = None,
        index: int | None = None,
        done: int | None = None,
    ) -> None:
        self.func_name = func_name
        self.parameters = list(parameters)
        self.results: dict[int, Any] = {}
        self.index = 0 if index is None else index
        self.unreadable: dict[int, str] = {}
        self.failures: dict[int, CallFailure] = {}
        self.function: FunctionIdentity | None = None
        if output is None and completed is None and not done:
            return  # nothing done yet: no lists of n entries to build
        n = len(self.parameters)
        output = [None] * n if output is None else list(output)
        completed = [False] * n if completed is None else list(completed)
        for name, values in (("output", output), ("completed", completed)):
            if len(values) != n:
                raise ValueError(
                    f"{name} must have one entry per argument list: got "
                    f"{len(values)} for {n} parameters"
                )
        if done is not None and done != sum(map(bool, completed)):
            raise ValueError(
                f"done={done} disagrees with completed, which has "
                f"{sum(map(bool, completed))} calls done; leave out done"
            )
        self.results = {i: output[i] for i in compress(range(n), completed)}
        if index is None:
            self.index = max(self.results, default=-1) + 1

    @property
    def done(self) -> int:
        """The number of completed calls."""
        if self.ready_outputs is not None:
            return len(self.ready_outputs)
        return len(self.results)

    def matches(
        self,
        func: str | Callable[..., Any] | FunctionIdentity,
        parameters: Sequence[Sequence[Any]],
    ) -> bool:
        """Return whether this checkpoint belongs to ``func`` over ``parameters``.

        ``func`` is a function, or only its name (as thread-chunks 1.x did).
        A checkpoint written by a run records where its function is defined
        and what is bound to it (a partial's arguments, a method's object):
        a function is then the same only if all of that is. Parameters are
        compared strictly, by value; see the Checkpointing guide.

        Examples
        --------
        >>> from thread_chunks import Checkpoint
        >>> Checkpoint("f", [[1, 2]]).matches("f", [(1, 2)])
        True
        >>> Checkpoint("f", [[1, 2]]).matches("f", [[2, 1]])
        False
        >>> Checkpoint("f", [[0.0]]).matches("f", [[-0.0]])
        False
        """
        if isinstance(func, str):
            same_function = func == self.func_name
        else:
            if not isinstance(func, FunctionIdentity):
                func = identify(func)
            if self.function is None:  # made by hand, or by 1.x: the name only
                same_function = func.name == self.func_name
            else:
                same_function = self.function.same_function(func)
        return same_function and same_parameters(self.parameters, parameters)

    def apply(self, results: Mapping[int, Any]) -> None:
        """Record each ``results[i]`` as the output of call ``i``.

        Examples
        --------
        >>> from thread_chunks import Checkpoint
        >>> checkpoint = Checkpoint("f", [[1], [2], [3]])
        >>> checkpoint.apply({1: "b"})
        >>> checkpoint.output, checkpoint.index
        ([None, 'b', None], 2)
        """
        self.results.update(results)
        if self.failures:
            for i in results:
                self.failures.pop(i, None)
        if results:
            self.index = max(self.index, max(results) + 1)

    @classmethod
    def of_file(
        cls, summary: Mapping[str, Any], parameters: tuple[Any, Any, str | None]
    ) -> Self:
        """A checkpoint for a file's summary and its ``(bound, parameters, error)``."""
        bound, rows, bound_error = parameters
        checkpoint = cls(summary["function"], ())
        # Read from the file, or the run's own list: no copy of it needed.
        checkpoint.parameters = rows if type(rows) is list else list(rows)
        if summary.get("module") is None:  # made by hand or by 1.x: the name only
            return checkpoint
        checkpoint.function = FunctionIdentity(
            summary.get("module"),
            summary["function"],
            bound,
            summary.get("code"),
            bound_error,
        )
        return checkpoint

    def take_saved(self, contents: Contents, last: int | None = None) -> None:
        """Take the results, failures and unreadable results read from a file.

        ``last``: the highest index among the results, if known already.
        """
        self.results = contents.results
        self.unreadable = contents.unreadable
        self.failures = {
            i: CallFailure.of_record(record) for i, record in contents.failures.items()
        }
        if last is None:
            last = max(self.results, default=-1)
        self.index = last + 1

    def take_outputs(self, contents: Contents, outputs: list[Any]) -> None:
        """Take a complete file's results: ``outputs``, one for each call.

        No dictionary of them is built: a run that resumes a complete
        checkpoint returns this very list. Only for a run's own checkpoint,
        never a :class:`~thread_chunks.Checkpoint`, whose ``output`` reads
        :attr:`results`.
        """
        assert type(self) is CheckpointData
        self.ready_outputs = outputs
        self.results = {}
        self.unreadable = contents.unreadable
        self.failures = {}
        self.index = len(outputs)

    def summary(self) -> dict[str, Any]:
        """What the header of the file says, as JSON: readable without the rest.

        Examples
        --------
        >>> from thread_chunks import Checkpoint
        >>> Checkpoint("f", [[1], [2]]).summary()["total"]
        2
        """
        function = self.function
        return {
            "format": FORMAT,
            "function": self.func_name,
            "module": None if function is None else function.module,
            "code": None if function is None else function.code,
            "total": len(self.parameters),
        }


def read_checkpoint(
    path: str, cls: type[C], strict_typing: bool = True
) -> tuple[C, Contents | None]:
    """Read the checkpoint file at ``path`` with every result saved in it.

    Returns the checkpoint and the :class:`~thread_chunks._journal.Contents`
    of the file (what is intact, what is damaged, where it ends), or ``None``
    for a file of an earlier format, read as its format says. Reads the file
    a frame at a time: no copy of it is made.
    """
    contents: Contents | None = None
    with open(path, "rb") as file:
        try:
            contents = read_contents(file)
        except OldFormat:
            file.seek(0)
            checkpoint = _read_old(file)
        else:
            parameters = load_parameters(file, contents)
            checkpoint = cls.of_file(contents.summary, parameters)
            checkpoint.take_saved(contents)
    if strict_typing and not isinstance(checkpoint, cls):
        raise TypeError(
            f"{path!r} holds a {type(checkpoint).__name__}, not a {cls.__name__}"
        )
    return checkpoint, contents


def _read_old(file: Any) -> Any:
    """A checkpoint of format 1, or a plain pickle (thread-chunks 1.x).

    A format 1 file that a run left unfinished lacks the end of its pickle:
    its frames are walked by their lengths (never searched) and the end added.
    """
    data = file.read()
    if not data.startswith(OPENING_1):
        return pickle.loads(data)
    position = len(OPENING_1)
    while data[position : position + 1] == pickle.BINBYTES8:
        (length,) = struct.unpack_from("<Q", data, position + 1)
        if position + 9 + length > len(data):
            break
        position += 9 + length
    return pickle.loads(data[:position] + TAIL)


# ---- keeping the file in step with the run


class CheckpointStore:
    """One run's checkpoint file: the journal and the results queued for it.

    Create it with :meth:`open`, which reads the results saved before, then
    wrap the work in :meth:`running` and hand each new result to :meth:`record`.
    """

    def __init__(
        self,
        checkpoint: CheckpointData,
        journal: Journal | None,
        lock: CheckpointLock | None,
        checkpoint_every: float,
        warn: Warn,
    ) -> None:
        self._checkpoint = checkpoint
        self._journal = journal
        self._file_lock = lock
        self._every = checkpoint_every
        self._queue: deque[Run] = deque()
        """``(indices, results)`` to write, a run of calls each: any thread
        appends, without a lock (a deque's appends and pops are atomic); the
        writer pops."""
        self._wakeup = threading.Event()
        self._idle = False
        """Whether the writer waits for a wake-up (set only by the writer)."""
        self._failures_queued = bool(checkpoint.failures)
        self._unsettled: list[Run] = []
        """Results written but not yet in the checkpoint's dict of results:
        they go there only when something needs it (:meth:`_settle`)."""
        self._unsettled_count = 0
        """Whether writes may hold failures, or results that clear one."""
        self._taken = False
        """Whether another run took the file after it was deleted."""
        self._stopping = threading.Event()
        self._write_lock = anyio.Lock()
        """Held by the writer while the run goes on and while the file is
        finished: no two writes of the journal ever overlap."""
        self._io_limiter = anyio.CapacityLimiter(1)
        self._warn = warn
        if journal is not None:
            journal.commit.describe = partial(_describe, checkpoint.parameters)

    @classmethod
    async def open(
        cls,
        path: str,
        function: FunctionIdentity,
        parameters: Sequence[Sequence[Any]],
        checkpoint_every: float,
        warn: Warn,
        reuse: str = "run",
        plain_rows: bool = False,
    ) -> CheckpointStore:
        """Resume the checkpoint at ``path`` if it matches, else start a new one.

        Raises ``OSError`` if the file cannot be written, before any call runs.
        ``plain_rows``: every row is known to be exactly a list or a tuple.
        """
        checkpoint, journal, lock, messages = await anyio.to_thread.run_sync(
            open_checkpoint_file, path, function, parameters, reuse, plain_rows
        )
        for message in messages:
            warn(message, CheckpointFailedWarning, "read")
        return cls(checkpoint, journal, lock, checkpoint_every, warn)

    @property
    def results(self) -> dict[int, Any]:
        """The results saved by earlier runs, by call index."""
        checkpoint = self._checkpoint
        if checkpoint.ready_outputs is not None:
            checkpoint.results = dict(enumerate(checkpoint.ready_outputs))
            checkpoint.ready_outputs = None
        self._settle()
        return checkpoint.results

    @property
    def done(self) -> int:
        """How many calls have a saved result."""
        return self._checkpoint.done + self._unsettled_count

    def saved_outputs(self) -> list[Any]:
        """A list of each call's saved result, ``None`` where there is none.

        For a complete checkpoint, the list its results were read into: no
        dictionary of them is built, and no call runs to change it.
        """
        checkpoint = self._checkpoint
        if checkpoint.ready_outputs is not None:
            return checkpoint.ready_outputs
        results = self.results
        n = len(checkpoint.parameters)
        return list(map(results.get, range(n))) if results else [None] * n

    def record(self, index: int, result: Any) -> None:
        """Queue a completed result for the next write. Never blocks on the disk."""
        self._queue.append(((index,), (result,)))
        if self._idle:  # the writer sleeps until woken: wake it
            self._wakeup.set()

    def record_many(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """Queue several completed results at once, as :meth:`record` does.

        The two sequences are kept as they are: they must not change after.
        """
        self._queue.append((indices, results))
        if self._idle:
            self._wakeup.set()

    def record_failure(self, index: int, failure: CallFailure) -> None:
        """Queue the failure of call ``index``: kept until the call succeeds.

        The file keeps it as data, with a short ``repr`` of its arguments.
        """
        self._failures_queued = True  # some writes hold failures from now on
        arguments = reprlib.repr(self._checkpoint.parameters[index])
        self.record(failure_key(index), (*failure, arguments))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write queued results in the background while the body runs.

        On leaving, however the body ends (error, cancellation), every queued
        result is written and the file finished, shielded from cancellation.
        A checkpoint whose every call is done has nothing to write.
        """
        if self._journal is None:  # every call done before, or a read-only file
            try:
                yield
            finally:
                if self._file_lock is not None:
                    self._file_lock.release()
            return
        try:
            async with self._write_lock, anyio.create_task_group() as task_group:
                task_group.start_soon(self._run_writer)
                try:
                    yield
                finally:
                    self._stopping.set()
                    self._wakeup.set()
        finally:
            with anyio.CancelScope(shield=True):
                async with self._write_lock:
                    await anyio.to_thread.run_sync(
                        self._finish, limiter=self._io_limiter
                    )

    async def _run_writer(self) -> None:
        await anyio.to_thread.run_sync(
            self._write_continually, limiter=self._io_limiter
        )

    def _write_continually(self) -> None:
        """The writer, in its worker thread: write whatever is queued, repeat.

        Writes are at least ``MIN_WRITE_GAP`` seconds apart (or
        ``checkpoint_every``, if longer), so that very fast calls share their
        fsyncs instead of costing one each; stopping cuts the wait short.
        """
        while not self._stopping.is_set():
            # Workers wake the writer only while it is idle: first say so,
            # then look at the queue, so that no result is left waiting.
            self._idle = True
            if not self._queue:
                self._wakeup.wait()
            self._idle = False
            self._wakeup.clear()
            self._write_queued()
            self._stopping.wait(max(self._every, MIN_WRITE_GAP))

    def _write_queued(self) -> None:
        queue = self._queue
        # Pop what is queued now, at C speed; workers may append meanwhile.
        runs = list(islice(iter(queue.popleft, None), len(queue)))
        if not runs:
            return
        assert self._journal is not None
        if self._journal.deleted():
            self._write_again()
        elif not self._taken:
            self._check_lock()
        journal = self._journal
        if self._taken:
            return  # another run writes the file now: the results are returned
        kept = len(self._unsettled), self._unsettled_count, self._checkpoint.index
        try:
            unpicklable = journal.append_runs(runs, partial(self._keep, runs))
        except OSError as exc:
            # What _keep took of them before the write failed is not saved.
            del self._unsettled[kept[0] :]
            self._unsettled_count, self._checkpoint.index = kept[1:]
            # A full disk may still hold some of them: save what fits, one by
            # one, and keep the others for the next write.
            indices, results = map(list, columns(runs))
            written, unpicklable = self._append_what_fits(indices, results)
            if written < len(indices):
                queue.appendleft((indices[written:], results[written:]))
            self._notify(
                "write",
                f"could not write checkpoint {journal.path!r} ({exc}); the "
                "results are kept in memory and the write will be retried",
            )
        if unpicklable:
            self._notify(
                "pickle",
                f"the result of call {unpicklable[0]} cannot be pickled, so it is "
                f"not saved in {journal.path!r} (nor any other unpicklable "
                "result); it is still returned, but a rerun will compute it again",
            )

    def _keep(self, runs: list[Run], unpicklable: list[int]) -> None:
        """Apply what was written to the checkpoint, kept to write it again."""
        checkpoint = self._checkpoint
        if unpicklable or self._failures_queued:
            self._settle()
            saved = dict(zip(*columns(runs), strict=True))
            for i in unpicklable:
                del saved[i]
            if saved and is_failure_key(min(saved)):
                checkpoint.failures.update(
                    {
                        failure_key(k): CallFailure(*failure[:5])
                        for k, failure in saved.items()
                        if is_failure_key(k)
                    }
                )
                saved = {i: result for i, result in saved.items() if i >= 0}
            checkpoint.apply(saved)
        else:  # the usual case: new results only, all written
            self._unsettled += runs
            self._unsettled_count += sum(map(len, map(itemgetter(0), runs)))
            last = max(map(_largest, map(itemgetter(0), runs)))
            checkpoint.index = max(checkpoint.index, last + 1)
        assert self._journal is not None
        commit = self._journal.commit
        commit.done = checkpoint.done + self._unsettled_count
        commit.failures = checkpoint.failures

    def _settle(self) -> None:
        """Put the results written so far in the checkpoint's dict of results."""
        results = self._checkpoint.results
        for indices, values in self._unsettled:
            results.update(zip(indices, values, strict=True))
        self._unsettled.clear()
        self._unsettled_count = 0

    def _append_what_fits(
        self, indices: list[int], results: list[Any]
    ) -> tuple[int, list[int]]:
        """Append one result at a time until a write fails; say how many went."""
        assert self._journal is not None
        unpicklable: list[int] = []
        for written, (i, result) in enumerate(zip(indices, results, strict=True)):
            run: list[Run] = [((i,), (result,))]
            try:
                unpicklable += self._journal.append_runs(run, partial(self._keep, run))
            except OSError:
                return written, unpicklable
        return len(indices), unpicklable

    def _check_lock(self) -> None:
        """Make sure the lock is still ours: its file may have been deleted.

        A deleted lock file lets another run lock a new one at the same path
        and write the same checkpoint. At each write, the locked file must
        still be the one at the lock's path; if not, the lock is taken again,
        and if another run holds it now, this run stops writing and says so.
        """
        assert self._file_lock is not None
        assert self._journal is not None
        if self._file_lock.still_ours():
            return
        try:
            self._file_lock.take_again()
        except RuntimeError as exc:
            self._taken = True
            self._notify(
                "taken",
                f"the lock file of checkpoint {self._journal.path!r} was deleted "
                f"during the run, and another run has locked it since ({exc}): "
                "this run stops writing the checkpoint; its results are still "
                "returned",
            )

    def _write_again(self) -> None:
        """Write the checkpoint anew, with every result so far: it was deleted."""
        assert self._journal is not None
        assert self._file_lock is not None
        path = self._journal.path
        self._journal.close()
        try:
            self._file_lock.take_again()
        except RuntimeError as exc:  # another run took the path meanwhile
            self._taken = True
            self._notify(
                "taken",
                f"checkpoint {path!r} was deleted during the run, and another run "
                f"has written it since ({exc}): this run stops writing it; its "
                "results are still returned",
            )
            return
        self._settle()
        self._journal = _create(path, self._checkpoint, self._journal.key)
        self._journal.commit.describe = partial(_describe, self._checkpoint.parameters)
        self._notify(
            "deleted",
            f"checkpoint {path!r} was deleted during the run (its directory "
            "too, maybe): wrote it again, with every result so far",
        )

    def _finish(self) -> None:
        """Write what is left and finish the file, in a worker thread."""
        assert self._journal is not None
        assert self._file_lock is not None
        try:
            self._write_queued()
        finally:
            try:
                if not self._taken:
                    self._journal.finish()
            except OSError as exc:
                self._notify(
                    "finish",
                    f"could not finish checkpoint {self._journal.path!r} ({exc}); "
                    "every result written before is still in it",
                )
            finally:
                self._file_lock.release()

    def _notify(self, kind: str, message: str) -> None:
        self._warn(message, CheckpointFailedWarning, kind)


# ---- opening


def open_checkpoint_file(
    path: str,
    function: FunctionIdentity,
    parameters: Sequence[Any],
    reuse: str = "run",
    plain_rows: bool = False,
) -> tuple[CheckpointData, Journal | None, CheckpointLock | None, list[str]]:
    """Lock ``path``, then resume the checkpoint there or start a new one.

    Returns the checkpoint, its journal open for appending (``None`` if there
    is nothing to write), the lock (held) and the warnings to give the user.
    Blocks: run it in a worker thread. Takes the checkpoint's lock first, so
    that two runs (in this process or another) never write the same file: the
    second fails before computing. In a directory this process cannot write,
    a finished checkpoint of the same run is still read, with no journal and
    no lock: nothing to write.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        lock = CheckpointLock(path)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return _read_only(path, function, parameters, exc), None, None, []
    try:
        remove_leftovers(path)
        checkpoint, journal, messages = _resume_or_create(
            path, function, parameters, reuse, plain_rows
        )
    except BaseException:
        lock.release()
        raise
    return checkpoint, journal, lock, messages


def _read_only(
    path: str,
    function: FunctionIdentity,
    parameters: Sequence[Any],
    error: OSError,
) -> CheckpointData:
    """The finished checkpoint at ``path`` in a read-only directory, or ``error``."""
    if os.path.exists(path) and _written_by_us(path):
        old, _ = read_checkpoint(path, CheckpointData)
        finished = old.done == len(parameters) and not old.unreadable
        if finished and old.matches(function, parameters):
            logger.info("read finished checkpoint %r (read-only directory)", path)
            return old
    error.add_note(
        f"the checkpoint {path!r} cannot be written there; a finished checkpoint "
        "of the same run could be read, but this run has calls to compute: "
        "pass a path= in a directory you can write"
    )
    raise error


def _resume_or_create(
    path: str,
    function: FunctionIdentity,
    parameters: Sequence[Any],
    reuse: str,
    plain_rows: bool = False,
) -> tuple[CheckpointData, Journal | None, list[str]]:
    messages: list[str] = []
    if os.path.exists(path) and not _written_by_us(path):
        with open(path, "rb") as file:
            start = file.read(256)
        ours = MAGIC in start  # ours, damaged in its first bytes
        if not ours:
            _refuse_old(path, start)
        # Unpickling runs code from the file: only our own files are read.
        aside = move_aside(path)
        logger.warning("moved unreadable checkpoint %r to %r", path, aside)
        messages.append(
            f"checkpoint {path!r} is damaged in its first bytes, which say what "
            f"the file is: moved it to {aside!r} without loading it and starting "
            "afresh"
            if ours
            else f"checkpoint {path!r} is not a thread-chunks checkpoint: moved it "
            f"to {aside!r} without loading it and starting afresh"
        )
    elif os.path.exists(path):
        with open(path, "rb", buffering=1 << 20) as file:
            try:
                contents = read_contents(file, settled=False)
            except OSError:
                raise
            except Exception as exc:  # a damaged header or parameters
                contents = None
                error = exc
            if contents is not None:
                resumed = _resume(
                    path, file, contents, function, parameters, messages, reuse
                )
                if resumed is not None:
                    return (*resumed, messages)
        if contents is None:
            aside = move_aside(path)
            logger.warning("moved unreadable checkpoint %r to %r", path, aside)
            messages.append(
                f"checkpoint {path!r} cannot be read ({type(error).__name__}: "
                f"{error}); moved it to {aside!r} and starting afresh"
            )
    checkpoint = CheckpointData(function.name, parameters)
    checkpoint.function = function
    try:
        return checkpoint, _create(path, checkpoint, new_key(), plain_rows), messages
    except OSError:
        raise
    except Exception as exc:  # the parameters cannot be pickled
        raise TypeError(
            f"path={path!r} saves the parameters (and what is bound to func: a "
            "partial's arguments, a method's object) beside the results, to "
            f"recognise the run later, but they cannot be pickled ({exc}); pass "
            "picklable ones, or leave out path="
        ) from exc


def _create(
    path: str, checkpoint: CheckpointData, key: bytes, plain_rows: bool = False
) -> Journal:
    """Replace ``path`` by a new file holding ``checkpoint``'s results so far.

    ``plain_rows``: its rows are known to be exactly lists and tuples.
    """
    function = checkpoint.function
    failures = [(failure_key(i), failure) for i, failure in checkpoint.failures.items()]
    journal = write_file(
        path,
        checkpoint.summary(),
        key,
        () if function is None else function.bound,
        checkpoint.parameters,
        commit=Commit(checkpoint.done, checkpoint.failures),
        results=[*checkpoint.results.items(), *failures],
        plain_rows=plain_rows,
    )
    assert journal is not None
    return journal


def _resume(
    path: str,
    file: Any,
    contents: Contents,
    function: FunctionIdentity,
    parameters: Sequence[Any],
    messages: list[str],
    reuse: str = "run",
) -> tuple[CheckpointData, Journal | None] | None:
    """Continue the checkpoint read from ``path`` if it is this run's, else ``None``.

    The parameters are compared first as bytes, pickled straight into a
    comparison with the file (no copy of either); only if the bytes differ
    are the saved ones loaded and compared strictly, which decides.
    """
    summary = contents.summary
    same_name = (summary.get("module"), summary["function"]) == (
        function.module,
        function.name,
    )
    saved: tuple[Any, Any, str | None]
    # Equal bytes are equal values: then the strict comparison has nothing
    # to add, and the saved parameters need not be loaded at all.
    memo = memo_of(summary)
    same = same_name and same_pickle(
        file, contents.parameters_at, function.bound, parameters, memo
    )
    total = int(summary["total"])
    if (
        not same
        and reuse == "calls"
        and same_name
        and len(parameters) > total
        and same_pickle(
            file, contents.parameters_at, function.bound, parameters[:total], memo
        )
    ):  # the old rows, then new ones: every saved frame stays as it is
        contents.settle()
        return _extend(path, file, contents, function, parameters)
    if same:
        saved = (function.bound, parameters, None)
    else:
        saved = load_parameters(file, contents)
    old = CheckpointData.of_file(summary, saved)
    if not (same or old.matches(function, parameters)):
        contents.settle()
        if reuse == "calls" and _same_function(old, function):
            return _reuse(path, old, contents, function, parameters)
        _replace(path, old, len(contents.results))
        return None
    checkpoint = old
    if not same:  # the same values: keep the caller's (``same``: they are)
        checkpoint.parameters = list(parameters)
    n = len(parameters)
    outputs = None if contents.failures else contents.outputs(n)
    if outputs is not None:  # every call done
        checkpoint.take_outputs(contents, outputs)
    else:
        contents.settle()
        last = max(contents.results, default=-1)
        if contents.results and not 0 <= min(contents.results) <= last < n:
            raise DamagedHeader(f"results for calls beyond the {n} of the run")
        checkpoint.take_saved(contents, last)
    _say_what_is_amiss(path, checkpoint, contents, function, messages)
    history = (contents.last_commit or {}).get("history", [])
    commit = Commit(checkpoint.done, checkpoint.failures, history)
    complete = checkpoint.done == len(parameters) and not checkpoint.failures
    damaged = bool(contents.damaged or contents.tail_damaged)
    if complete and contents.clean:  # every result there, the end never written
        Journal.append_to(path, contents.end, contents.key, commit).finish()
        return checkpoint, None
    if complete and not damaged and not contents.cut_short:
        return checkpoint, None  # nothing to compute, nothing to write
    if contents.clean:
        return checkpoint, Journal.append_to(path, contents.end, contents.key, commit)
    if damaged:
        copy = keep_copy(path, ".damaged")
        messages.append(_damage_message(path, checkpoint, contents, copy))
    # A new file, the intact frames copied as they are: nothing is shortened.
    journal = write_file(
        path,
        contents.summary,
        contents.key,
        None,
        None,
        copy=copy_frames(file, list(iter_ranges(contents))),
        commit=commit,
        finished=complete,
    )
    return checkpoint, journal


def _reuse(
    path: str,
    old: CheckpointData,
    contents: Contents,
    function: FunctionIdentity,
    parameters: Sequence[Any],
) -> tuple[CheckpointData, Journal]:
    """A checkpoint for ``parameters`` with the saved results of the same calls.

    ``reuse="calls"``: each new row whose pickle is the pickle of a saved row
    of the same function takes that row's result (equal bytes are equal
    values; rows that are the same values in other bytes, such as sets in
    another order, are computed again). Rows are found by their bytes as
    dictionary keys: at C speed, whatever the number of rows.
    """
    saved = contents.results
    indices = list(saved)
    rows = _row_pickles(list(map(old.parameters.__getitem__, indices)))
    by_pickle = dict(zip(rows, indices, strict=True))
    found: list[Any] = list(map(by_pickle.get, _row_pickles(parameters)))
    kept = list(map(is_not, found, repeat(None)))  # every loop here runs in C
    chosen: Iterator[int] = compress(found, kept)
    results = dict(
        zip(
            compress(range(len(found)), kept),
            map(saved.__getitem__, chosen),
            strict=True,
        )
    )
    previous = keep_copy(path, ".previous")
    logger.warning(
        "checkpoint %r was made for other parameters: reusing the saved results "
        "of %d of its %d calls for the same calls among the %d given "
        "(reuse='calls'), computing the other %d; the old file is kept in %r",
        path,
        len(results),
        len(old.parameters),
        len(parameters),
        len(parameters) - len(results),
        previous,
    )
    checkpoint = CheckpointData(function.name, parameters)
    checkpoint.function = function
    checkpoint.apply(results)
    return checkpoint, _create(path, checkpoint, new_key())


def _extend(
    path: str,
    file: Any,
    contents: Contents,
    function: FunctionIdentity,
    parameters: Sequence[Any],
) -> tuple[CheckpointData, Journal]:
    """``reuse="calls"`` for a sweep whose new rows come after all the old ones.

    Every saved result keeps its index: the new file is the new parameters,
    then the old file's frames copied as they are (not decoded).
    """
    previous = keep_copy(path, ".previous")
    logger.warning(
        "checkpoint %r was made for other parameters: reusing the saved results "
        "of all its %d calls, the first of the %d given (reuse='calls'), and "
        "computing the other %d; the old file is kept in %r",
        path,
        int(contents.summary["total"]),
        len(parameters),
        len(parameters) - len(contents.results),
        previous,
    )
    checkpoint = CheckpointData(function.name, parameters)
    checkpoint.function = function
    checkpoint.take_saved(contents)
    journal = write_file(
        path,
        checkpoint.summary(),
        contents.key,  # the copied frames are checked with it
        function.bound,
        parameters,
        commit=Commit(checkpoint.done, checkpoint.failures),
        then_copy=copy_frames(file, contents.intact),
    )
    assert journal is not None
    return checkpoint, journal


def _row_pickles(rows: Sequence[Any]) -> list[bytes]:
    """The pickle of each row: at C speed, unless a row needs cloudpickle."""
    try:
        return list(map(pickle.dumps, rows, repeat(5)))
    except Exception:
        return list(map(dumps, rows))  # a lambda, say: by value


def _largest(indices: Sequence[int]) -> int:
    """``max(indices)``, at once for a range of calls run one after another."""
    if type(indices) is range and indices.step > 0:
        return indices[-1]
    return max(indices)


def _describe(parameters: Sequence[Any], index: int) -> str:
    """A short ``repr`` of the arguments of call ``index``, for a failure."""
    return reprlib.repr(parameters[index])


def _same_function(old: CheckpointData, function: FunctionIdentity) -> bool:
    """Whether the checkpoint ``old`` was made for ``function``."""
    if old.function is None:  # made by hand, or by 1.x: the name only
        return old.func_name == function.name
    return old.function.same_function(function)


def _replace(path: str, old: CheckpointData, done: int) -> None:
    """Say why the checkpoint at ``path`` is replaced; keep it as ``.previous``."""
    if old.function is not None and old.function.bound_error is not None:
        logger.warning(
            "what was bound to %s in checkpoint %r cannot be loaded (%s), "
            "so the run it belongs to cannot be recognised",
            old.func_name,
            path,
            old.function.bound_error,
        )
    previous = keep_copy(path, ".previous")  # one generation is kept
    logger.warning(
        "checkpoint %r was made for another function or other parameters: "
        "replacing it, which drops its %d saved results (kept in %r until "
        "the next replacement), and computing every call",
        path,
        done,
        previous,
    )


def _say_what_is_amiss(
    path: str,
    checkpoint: CheckpointData,
    contents: Contents,
    function: FunctionIdentity,
    messages: list[str],
) -> None:
    logger.info(
        "resuming from checkpoint %r: %d of %d calls already done",
        path,
        checkpoint.done,
        len(checkpoint.parameters),
    )
    code = contents.summary.get("code")
    if code is not None and code != function.code:
        logger.warning(
            "the code of %s changed since checkpoint %r was written; its saved "
            "results are kept, since the function's name and the parameters are "
            "the same: to compute every call again, delete the file or pass "
            "another path=",
            function.name,
            path,
        )
    if checkpoint.unreadable:
        i, error = next(iter(checkpoint.unreadable.items()))
        messages.append(
            f"{len(checkpoint.unreadable)} saved results in {path!r} cannot be "
            f"loaded (call {i}: {error}); computing them again"
        )


def _damage_message(
    path: str, checkpoint: CheckpointData, contents: Contents, copy: str
) -> str:
    if contents.damaged:
        lost = sum(end - start for start, end in contents.damaged)
        return (
            f"checkpoint {path!r} is damaged: {lost} bytes in "
            f"{len(contents.damaged)} place(s) cannot be read. Kept a copy as "
            f"{copy!r}, recovered the {checkpoint.done} results around the "
            "damage, and computing again the calls whose results were there"
        )
    return (
        f"the end of checkpoint {path!r} is damaged, after its last intact "
        f"result: no result was lost; kept a copy as {copy!r}"
    )


def _written_by_us(path: str) -> bool:
    """Whether the file at ``path`` opens like the checkpoints we write."""
    with open(path, "rb") as file:
        return file.read(len(OPENING)) == OPENING


def _refuse_old(path: str, start: bytes) -> None:
    """Refuse a checkpoint of an earlier format before any call, untouched."""
    if start.startswith(OPENING_1):
        written_by = "a development version of thread-chunks 2.0 (format 1)"
    elif b"thread_chunks" in start and b"Checkpoint" in start:
        written_by = "thread-chunks 1.x (or is a plain pickle of a Checkpoint)"
    else:
        return
    raise ValueError(
        f"checkpoint {path!r} was written by {written_by}, which this version "
        "does not resume as it is: its results would be computed again. It is "
        f"left as it is. If you trust it (loading it runs code from it), convert "
        f"it with: thread-chunks convert {path}  -- or delete it, or pass another "
        "path="
    )
