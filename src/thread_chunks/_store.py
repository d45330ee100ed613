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
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from typing import Any

import anyio
import anyio.to_thread

from ._checkpoint import (
    CallFailure,
    Checkpoint,
    CheckpointFailedWarning,
    read_checkpoint,
)
from ._identity import FunctionIdentity
from ._journal import (
    CheckpointLock,
    Journal,
    keep_copy,
    move_aside,
    remove_leftovers,
)
from ._pickling import Scan, failure_key, is_failure_key

__all__ = ["MIN_WRITE_GAP", "CheckpointStore", "Warn", "open_checkpoint_file"]

logger = logging.getLogger("thread_chunks")

Warn = Callable[[str, type[Warning], str], None]
"""How the store warns: ``warn(message, category, kind)``; the run issues the
first warning of each ``kind`` from the line that started it."""

MIN_WRITE_GAP = 0.002
"""Seconds between two checkpoint writes at least: at most 500 fsyncs a second."""

logger = logging.getLogger("thread_chunks")


class CheckpointStore:
    """One run's checkpoint file: the journal and the results queued for it.

    Create it with :meth:`open`, which reads the results saved before, then
    wrap the work in :meth:`running` and hand each new result to :meth:`record`.
    """

    def __init__(
        self,
        checkpoint: Checkpoint,
        journal: Journal | None,
        lock: CheckpointLock | None,
        checkpoint_every: float,
        warn: Warn,
    ) -> None:
        self._checkpoint = checkpoint
        self._journal = journal
        self._file_lock = lock
        self._every = checkpoint_every
        self._queue: deque[tuple[int, Any]] = deque()
        """``(index, result)`` pairs to write: any thread appends, without a
        lock (a deque's appends and pops are atomic); the writer pops."""
        self._wakeup = threading.Event()
        self._failures_queued = False
        self._taken = False
        """Whether another run took the file after it was deleted."""
        self._stopping = threading.Event()
        self._write_lock = anyio.Lock()
        """Held by the writer while the run goes on and while the file is
        finished: no two writes of the journal ever overlap."""
        self._io_limiter = anyio.CapacityLimiter(1)
        self._warn = warn

    @classmethod
    async def open(
        cls,
        path: str,
        function: FunctionIdentity,
        parameters: Sequence[Sequence[Any]],
        checkpoint_every: float,
        warn: Warn,
    ) -> CheckpointStore:
        """Resume the checkpoint at ``path`` if it matches, else start a new one.

        Raises ``OSError`` if the file cannot be written, before any call runs.
        """
        checkpoint, journal, lock, messages = await anyio.to_thread.run_sync(
            open_checkpoint_file, path, function, parameters
        )
        for message in messages:
            warn(message, CheckpointFailedWarning, "read")
        return cls(checkpoint, journal, lock, checkpoint_every, warn)

    @property
    def results(self) -> dict[int, Any]:
        """The results saved by earlier runs, by call index."""
        return self._checkpoint.results

    def record(self, index: int, result: Any) -> None:
        """Queue a completed result for the next write. Never blocks on the disk."""
        self._queue.append((index, result))
        self.wake()

    def wake(self) -> None:
        """Have the writer write what is queued."""
        if not self._wakeup.is_set():  # one wake-up for all the results queued
            self._wakeup.set()

    def record_many(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """Queue several completed results at once, as :meth:`record` does."""
        self._queue.extend(zip(indices, results, strict=True))
        self.wake()

    def record_failure(self, index: int, failure: CallFailure) -> None:
        """Queue the failure of call ``index``: kept until the call succeeds."""
        self._failures_queued = True  # some writes hold failures from now on
        self.record(failure_key(index), tuple(failure))  # plain data, as kept

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write queued results in the background while the body runs.

        On leaving, however the body ends (error, cancellation), every queued
        result is written and the file finished, shielded from cancellation.
        A finished checkpoint opened read-only has nothing to write.
        """
        if self._journal is None:
            yield
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
            self._wakeup.wait()
            self._wakeup.clear()
            self._write_queued()
            self._stopping.wait(max(self._every, MIN_WRITE_GAP))

    def _write_queued(self) -> None:
        queue = self._queue
        # Pop what is queued now, at C speed; workers may append meanwhile.
        pairs = list(islice(iter(queue.popleft, None), len(queue)))
        if not pairs:
            return
        indices, results = zip(*pairs, strict=True)
        assert self._journal is not None
        if self._journal.deleted():
            self._write_again()
        if self._taken:
            return  # another run writes the file now: the results are returned
        try:
            unpicklable = self._journal.append(indices, results)
        except OSError as exc:
            # A full disk may still hold some of them: save what fits, one by
            # one, and keep the others for the next write.
            written, unpicklable = self._append_what_fits(indices, results)
            queue.extendleft(reversed(pairs[written:]))
            del pairs[written:]
            self._notify(
                "write",
                f"could not write checkpoint {self._journal.path!r} ({exc}); the "
                "results are kept in memory and the write will be retried",
            )
        # Kept, to write it all again if the file is deleted.
        saved = dict(pairs)
        for i in unpicklable:
            del saved[i]
        if self._failures_queued and saved and is_failure_key(min(saved)):
            failures = {k: failure for k, failure in saved.items() if k < 0}
            self._checkpoint.failures.update(
                {
                    failure_key(k): CallFailure(*failure)
                    for k, failure in failures.items()
                }
            )
            saved = {i: result for i, result in saved.items() if i >= 0}
        self._checkpoint.apply(saved)
        if unpicklable:
            self._notify(
                "pickle",
                f"the result of call {unpicklable[0]} cannot be pickled, so it is "
                f"not saved in {self._journal.path!r} (nor any other unpicklable "
                "result); it is still returned, but a rerun will compute it again",
            )

    def _append_what_fits(
        self, indices: Sequence[int], results: Sequence[Any]
    ) -> tuple[int, list[int]]:
        """Append one result at a time until a write fails; say how many went."""
        assert self._journal is not None
        unpicklable: list[int] = []
        for written, (i, result) in enumerate(zip(indices, results, strict=True)):
            try:
                unpicklable += self._journal.append([i], [result])
            except OSError:
                return written, unpicklable
        return len(indices), unpicklable

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
        self._journal = create_journal(path, self._checkpoint)
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
                    self._journal.finish(self._checkpoint.arguments())
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
    path: str, function: FunctionIdentity, parameters: Sequence[Sequence[Any]]
) -> tuple[Checkpoint, Journal | None, CheckpointLock | None, list[str]]:
    """Lock ``path``, then resume the checkpoint there or start a new one.

    Returns the checkpoint, its journal open for appending, the lock (held)
    and the warnings to give the user. Blocks: run it in a worker thread.
    Takes the checkpoint's lock first, so that two runs (in this process or
    another) never write the same file: the second fails before computing.
    In a directory this process cannot write, a finished checkpoint of the
    same run is still read, with no journal and no lock: nothing to write.
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
        checkpoint, journal, messages = _resume_or_create(path, function, parameters)
        journal.prepare_tail(checkpoint.arguments())
    except BaseException:
        lock.release()
        raise
    return checkpoint, journal, lock, messages


def _read_only(
    path: str,
    function: FunctionIdentity,
    parameters: Sequence[Sequence[Any]],
    error: OSError,
) -> Checkpoint:
    """The finished checkpoint at ``path`` in a read-only directory, or ``error``."""
    if os.path.exists(path) and _written_by_us(path):
        old, _ = read_checkpoint(path, Checkpoint)
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
    path: str, function: FunctionIdentity, parameters: Sequence[Sequence[Any]]
) -> tuple[Checkpoint, Journal, list[str]]:
    messages: list[str] = []
    if os.path.exists(path) and not _written_by_us(path):
        # Unpickling runs code from the file: only our own files are read.
        aside = move_aside(path)
        logger.warning("moved unreadable checkpoint %r to %r", path, aside)
        messages.append(_foreign_file_message(path, aside))
    elif os.path.exists(path):
        try:
            old, scan = read_checkpoint(path, Checkpoint)
        except OSError:
            raise
        except Exception as exc:  # a damaged header, a class that is gone
            aside = move_aside(path)
            logger.warning("moved unreadable checkpoint %r to %r", path, aside)
            messages.append(
                f"checkpoint {path!r} cannot be read ({type(exc).__name__}: {exc}); "
                f"moved it to {aside!r} and starting afresh"
            )
        else:
            if old.matches(function, parameters):
                journal = _resume(path, old, scan, function, messages)
                return old, journal, messages
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
                old.done,
                previous,
            )
    checkpoint = Checkpoint(function.name, parameters)
    checkpoint.function = function
    checkpoint.path = path
    try:
        return checkpoint, create_journal(path, checkpoint), messages
    except OSError:
        raise
    except Exception as exc:  # the parameters cannot be pickled
        raise TypeError(
            f"path={path!r} saves the parameters (and what is bound to func: a "
            "partial's arguments, a method's object) beside the results, to "
            f"recognise the run later, but they cannot be pickled ({exc}); pass "
            "picklable ones, or leave out path="
        ) from exc


def _resume(
    path: str,
    old: Checkpoint,
    scan: Scan | None,
    function: FunctionIdentity,
    messages: list[str],
) -> Journal:
    """Continue the checkpoint ``old``, read from ``path``; say what is amiss."""
    logger.info(
        "resuming from checkpoint %r: %d of %d calls already done",
        path,
        old.done,
        len(old.parameters),
    )
    if old.function is not None and old.function.code != function.code:
        logger.warning(
            "the code of %s changed since checkpoint %r was written; its saved "
            "results are kept, since the function's name and the parameters are "
            "the same: to compute every call again, delete the file or pass "
            "another path=",
            function.name,
            path,
        )
    if old.unreadable:
        i, error = next(iter(old.unreadable.items()))
        messages.append(
            f"{len(old.unreadable)} saved results in {path!r} cannot be loaded "
            f"(call {i}: {error}); computing them again"
        )
    old.path = path
    assert scan is not None  # a journal, since it opens like one
    if scan.damaged:
        copy = keep_copy(path, ".damaged")
        lost = sum(end - start for start, end in scan.damaged)
        messages.append(
            f"checkpoint {path!r} is damaged: {lost} bytes in {len(scan.damaged)} "
            f"place(s) cannot be read. Kept a copy as {copy!r}, recovered the "
            f"{old.done} results around the damage, and computing again the "
            "calls whose results were there"
        )
        return create_journal(path, old)  # a clean file, with every recovered result
    if scan.tail_damaged:
        copy = keep_copy(path, ".damaged")
        messages.append(
            f"the end of checkpoint {path!r} is damaged or was cut short, after "
            f"its last result: no result was lost; kept a copy as {copy!r}"
        )
        return create_journal(path, old)  # a new file: the copy stays as it is
    return Journal.reopen(path, scan.end)


def _written_by_us(path: str) -> bool:
    """Whether the file at ``path`` opens like the checkpoints we write."""
    opening = Checkpoint.file_opening()
    with open(path, "rb") as file:
        return file.read(len(opening)) == opening


def _foreign_file_message(path: str, aside: str) -> str:
    with open(aside, "rb") as file:
        start = file.read(256)
    if b"Checkpoint._from_journal" in start:  # ours, with damaged first bytes
        return (
            f"checkpoint {path!r} is damaged in its first bytes, which say what "
            f"the file is: moved it to {aside!r} without loading it and starting "
            "afresh"
        )
    if b"thread_chunks" in start and b"Checkpoint" in start:
        return (
            f"checkpoint {path!r} was written by thread-chunks 1.x (or is a plain "
            f"pickle of a Checkpoint): moved it to {aside!r} without loading it, "
            "since loading a pickle runs code from it, and starting afresh. If "
            f"you trust it, convert it with Checkpoint.load({aside!r}).save("
            f"{path!r}) before running again, and the run resumes from it"
        )
    return (
        f"checkpoint {path!r} is not a thread-chunks checkpoint: moved it to "
        f"{aside!r} without loading it and starting afresh"
    )


def create_journal(path: str, checkpoint: Checkpoint) -> Journal:
    """Replace ``path`` atomically by a new journal whose header is ``checkpoint``."""
    return Journal.create(
        path, Checkpoint.file_opening(), checkpoint.summary(), checkpoint
    )
