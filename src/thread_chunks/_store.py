"""Keeping a checkpoint file in step with a run, without ever blocking the workers.

Workers hand each result to :meth:`CheckpointStore.record`, which only queues
it. One writer, running in a worker thread under an :class:`anyio.Lock`,
appends everything queued since its last write as one record and fsyncs it
(group commit): at most one write is in flight, results that complete during
it go together into the next, and a slow disk never stalls a call. When the
run ends, however it ends, the rest is written and the file is finished.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from itertools import islice
from typing import Any

import anyio
import anyio.to_thread
from filelock import FileLock

from ._checkpoint import Checkpoint, CheckpointFailedWarning
from ._failure import CallFailure
from ._identity import FunctionIdentity
from ._journal import Journal
from ._notices import Notices
from ._opening import create_journal, lock_checkpoint, open_checkpoint_file

__all__ = ["MIN_WRITE_GAP", "CheckpointStore"]

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
        lock: FileLock | None,
        checkpoint_every: float,
        notices: Notices,
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
        self._stopping = threading.Event()
        self._write_lock = anyio.Lock()
        """Held by the writer while the run goes on and while the file is
        finished: no two writes of the journal ever overlap."""
        self._io_limiter = anyio.CapacityLimiter(1)
        self._notices = notices

    @classmethod
    async def open(
        cls,
        path: str,
        function: FunctionIdentity,
        parameters: Sequence[Sequence[Any]],
        checkpoint_every: float,
        notices: Notices,
    ) -> CheckpointStore:
        """Resume the checkpoint at ``path`` if it matches, else start a new one.

        Raises ``OSError`` if the file cannot be written, before any call runs.
        """
        checkpoint, journal, lock, messages = await anyio.to_thread.run_sync(
            open_checkpoint_file, path, function, parameters
        )
        for message in messages:
            notices.warn(message, CheckpointFailedWarning, kind="read")
        return cls(checkpoint, journal, lock, checkpoint_every, notices)

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

    def record_many(self, indices: list[int], results: list[Any]) -> None:
        """Queue several completed results at once, as :meth:`record` does."""
        self._queue.extend(zip(indices, results, strict=True))
        self.wake()

    def record_failure(self, index: int, failure: CallFailure) -> None:
        """Queue the failure of call ``index``: kept until the call succeeds."""
        self._failures_queued = True  # some writes hold failures from now on
        self.record(-index - 1, tuple(failure))  # plain data, as the file keeps it

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
        try:
            if self._journal.deleted():
                self._write_again()
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
        if self._failures_queued and saved and min(saved) < 0:  # failures
            failures = {i: failure for i, failure in saved.items() if i < 0}
            self._checkpoint.failures.update(
                {-i - 1: CallFailure(*failure) for i, failure in failures.items()}
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
        self._journal = create_journal(path, self._checkpoint)
        self._file_lock.release()
        self._file_lock = lock_checkpoint(path)
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
        self._notices.warn(message, CheckpointFailedWarning, kind=kind)
