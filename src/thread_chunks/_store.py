"""Keeping a checkpoint file in step with a run, without ever blocking the workers.

Workers hand each result to :meth:`CheckpointStore.record`, which only queues it.
A background task appends everything queued since the last write as one record
(group commit) in a worker thread, under an :class:`anyio.Lock`, so at most one
write is in flight and a slow disk never stalls a call. At the end the file is
compacted into one snapshot that plain ``saveable_objects`` can read.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread

from ._checkpoint import Checkpoint, CheckpointFailedWarning, read_checkpoint
from ._journal import JournalWriter, move_aside, write_snapshot

__all__ = ["CheckpointStore"]

logger = logging.getLogger("thread_chunks")


class CheckpointStore:
    """One run's checkpoint file: the journal writer and what is queued for it.

    Create it with :meth:`open`, then use :meth:`running` around the work.
    """

    def __init__(
        self, checkpoint: Checkpoint, writer: JournalWriter, checkpoint_every: float
    ) -> None:
        self.checkpoint = checkpoint
        self._writer: JournalWriter | None = writer
        self._every = checkpoint_every
        self._queued_indices: list[int] = []
        self._queued_results: list[Any] = []
        self._wakeup = anyio.Event()
        self._lock = anyio.Lock()
        self._io_limiter = anyio.CapacityLimiter(1)
        self._warned: set[str] = set()
        self.started = checkpoint.index

    @classmethod
    async def open(
        cls,
        path: str,
        func_name: str,
        parameters: Sequence[Sequence[Any]],
        checkpoint_every: float = 0.0,
    ) -> CheckpointStore:
        """Resume the checkpoint at ``path`` if it matches, else start a new one.

        Raises ``OSError`` if the file cannot be written, before any call runs.
        """
        checkpoint, writer, notices = await anyio.to_thread.run_sync(
            _open_file, path, func_name, parameters
        )
        for notice in notices:
            warnings.warn(notice, CheckpointFailedWarning, stacklevel=2)
        return cls(checkpoint, writer, checkpoint_every)

    def record(self, index: int, result: Any) -> None:
        """Queue a completed result for the next write. Never blocks."""
        self._queued_indices.append(index)
        self._queued_results.append(result)
        self._wakeup.set()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Write queued results in the background while the body runs.

        On leaving, however the body ends (error, cancellation), every queued
        result is written and the file is compacted, shielded from cancellation.
        """
        try:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(self._write_continually)
                try:
                    yield
                finally:
                    task_group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self._close()

    async def _write_continually(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup = anyio.Event()
            await self._write_queued()
            if self._every > 0:
                await anyio.sleep(self._every)

    async def _write_queued(self) -> None:
        async with self._lock:
            indices, results = self._queued_indices, self._queued_results
            if not indices or self._writer is None:
                return
            self._queued_indices, self._queued_results = [], []
            # Once taken off the queue, a batch is written even if cancelled.
            with anyio.CancelScope(shield=True):
                try:
                    unpicklable = await anyio.to_thread.run_sync(
                        self._writer.append,
                        indices,
                        results,
                        self.started,
                        limiter=self._io_limiter,
                    )
                except OSError as exc:
                    # Keep the results queued: the next write retries them.
                    self._queued_indices[:0] = indices
                    self._queued_results[:0] = results
                    self._warn_once(
                        "write",
                        f"could not write checkpoint {self.checkpoint.path!r} "
                        f"({exc}); results are kept in memory and the write will "
                        "be retried",
                    )
                    return
            self._apply(indices, results, set(unpicklable))

    def _apply(
        self, indices: list[int], results: list[Any], unpicklable: set[int]
    ) -> None:
        output, completed = self.checkpoint.output, self.checkpoint.completed
        for i, result in zip(indices, results, strict=True):
            if i not in unpicklable:
                output[i] = result
                completed[i] = True
        self.checkpoint.index = max(self.checkpoint.index, self.started)
        if unpicklable:
            first = min(unpicklable)
            self._warn_once(
                "pickle",
                f"the result of call {first} (and {len(unpicklable) - 1} more in "
                f"this write) cannot be pickled, so it is not saved in "
                f"{self.checkpoint.path!r}; it is still returned, but a rerun will "
                "compute it again",
            )

    async def _close(self) -> None:
        await self._write_queued()
        async with self._lock:
            writer, self._writer = self._writer, None
            if writer is None:
                return
            writer.close()
            try:
                await anyio.to_thread.run_sync(
                    self.checkpoint.save, limiter=self._io_limiter
                )
            except Exception as exc:
                self._warn_once(
                    "compact",
                    f"could not compact checkpoint {self.checkpoint.path!r} ({exc}); "
                    "every saved result is still in it",
                )

    def _warn_once(self, kind: str, message: str) -> None:
        if kind not in self._warned:
            self._warned.add(kind)
            warnings.warn(message, CheckpointFailedWarning, stacklevel=2)


def _open_file(
    path: str, func_name: str, parameters: Sequence[Sequence[Any]]
) -> tuple[Checkpoint, JournalWriter, list[str]]:
    """Blocking part of :meth:`CheckpointStore.open`, run in a worker thread."""
    notices: list[str] = []
    if os.path.exists(path):
        try:
            old, end = read_checkpoint(path)
        except OSError:
            raise
        except Exception as exc:  # anything unpickling garbage can raise
            aside = move_aside(path)
            notices.append(
                f"checkpoint {path!r} cannot be read ({type(exc).__name__}: {exc}); "
                f"moved it to {aside!r} and starting afresh"
            )
        else:
            if old.matches(func_name, parameters):
                logger.info(
                    "resuming from checkpoint %r: %d of %d calls already done",
                    path,
                    old.done,
                    len(parameters),
                )
                old.path = path
                return old, JournalWriter(path, end), notices
            logger.info(
                "checkpoint %r was made for another function or other parameters; "
                "replacing it and computing every call",
                path,
            )
    checkpoint = Checkpoint(func_name, parameters)
    checkpoint.path = path
    end = write_snapshot(path, checkpoint, checkpoint.arguments())
    return checkpoint, JournalWriter(path, end), notices
