"""The checkpoint file format: one pickle stream that grows by appended frames.

A finished file is a single ordinary pickle, so ``pickle.load`` and
``saveable_objects.SaveableObject.load`` read it, followed by the pickle of the
arguments it was made from, as ``saveable_objects`` writes them::

    PROTO 5, GLOBAL thread_chunks.Checkpoint._from_journal, MARK
    BINBYTES8 <crc32 | pickled header>                         written once
    BINBYTES8 <crc32 | index, time | pickled result>           one per result
    TUPLE, REDUCE, STOP                                        when finished
    <pickled arguments>

Unpickling calls ``Checkpoint._from_journal(header, *records)``, which replays
the records. Every result is a frame of its own, with its own length and
checksum: one that cannot be loaded costs only itself. While a run goes on the
tail is missing and frames are only appended, a group at a time, each group
fsynced once: the bytes written never change, so results cost what they weigh
once. A frame cut short by a crash fails its length or its checksum and is
ignored. A finished file is reopened by cutting off its tail. Every function
here blocks: callers use worker threads.
"""

from __future__ import annotations

import mmap
import os
import pickle
import time
from collections.abc import Sequence
from typing import IO, Any

from ._atomic import BINARY, replace_atomically
from ._equality import same
from ._frames import (
    FRAME_HEAD_SIZE,
    META,
    PLAIN_TYPES,
    Appender,
    Record,
    Scan,
    decode_record,
    plain_frames,
    scan_frames,
    write_at,
)
from ._pickling import dumps

__all__ = ["DamagedHeader", "Journal", "Summary", "read_journal", "write_snapshot"]

TAIL = pickle.TUPLE + pickle.REDUCE + pickle.STOP

Summary = dict[str, Any]
"""The first frame: plain data that says what the file is about (the
function's name, how many calls), readable without unpickling the header."""


def _write_start(fd: int, start: bytes, summary: Summary, header: object) -> int:
    appender = Appender(fd, write_at(fd, start, 0))
    appender.frame(summary)
    appender.frame(header)
    appender.flush()
    return appender.offset


class Journal:
    """An open checkpoint file that results are appended to.

    Use :meth:`create` for a new file or :meth:`reopen` to continue one.
    """

    def __init__(self, path: str, fd: int, end: int) -> None:
        self.path = path
        self._fd = fd
        self._end = end
        self._tail: bytes | None = None

    @classmethod
    def create(
        cls, path: str, start: bytes, summary: Summary, header: object
    ) -> Journal:
        """Atomically replace ``path`` by a new journal: ``start``, the summary
        and the header frames, and no result yet."""
        end = replace_atomically(
            path, lambda fd: _write_start(fd, start, summary, header)
        )
        return cls(path, os.open(path, os.O_RDWR | BINARY), end)  # synced already

    @classmethod
    def reopen(cls, path: str, end: int) -> Journal:
        """Open ``path`` for appending after ``end``, cutting off what follows."""
        fd = os.open(path, os.O_RDWR | BINARY)
        try:
            os.ftruncate(fd, end)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, end)

    def append(self, indices: Sequence[int], results: Sequence[Any]) -> list[int]:
        """Append one frame per result, then fsync once.

        Returns the indices of the results that cannot be pickled, whatever
        the error their pickling raised: they are left out. Only a failed
        write or sync raises (``OSError``), and the file is then cut back to
        where this call began.
        """
        appender = Appender(self._fd, self._end)
        written_at = time.time()
        unpicklable: list[int] = []
        try:
            if set(map(type, results)) <= PLAIN_TYPES:  # the usual tiny results
                appender.frames(plain_frames(indices, results, written_at))
            else:
                unpicklable = self._frame_each(appender, indices, results, written_at)
            appender.flush()
            if appender.offset < os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, appender.offset)  # a rewound frame's bytes
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, self._end)
            raise
        self._end = appender.offset
        return unpicklable

    @staticmethod
    def _frame_each(
        appender: Appender,
        indices: Sequence[int],
        results: Sequence[Any],
        written_at: float,
    ) -> list[int]:
        """Frame results one by one; return the indices of the unpicklable."""
        unpicklable: list[int] = []
        pack, frame = META.pack, appender.frame
        for i, result in zip(indices, results, strict=True):
            try:
                frame(result, pack(i, written_at))
            except Exception:
                if appender.io_error:
                    raise
                unpicklable.append(i)  # the frame took itself back
        return unpicklable

    def deleted(self) -> bool:
        """Whether the file was deleted (its directory too, maybe) since opened."""
        return os.fstat(self._fd).st_nlink == 0

    def prepare_tail(self, arguments: Any) -> None:
        """Pickle the arguments of the tail now, before the run, not at its end.

        They hold every parameter: pickling them can take a while, which a
        cancelled or interrupted run should not have to wait for.
        """
        self._tail = TAIL + dumps(arguments)

    def finish(self, arguments: Any) -> None:
        """Write the tail and the arguments, fsync and close: a plain pickle now."""
        tail = self._tail or TAIL + dumps(arguments)
        try:
            write_at(self._fd, tail, self._end)
            os.fsync(self._fd)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file, leaving it as it is (readable, not finished)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_snapshot(
    path: str, start: bytes, summary: Summary, header: object, arguments: Any
) -> None:
    """Atomically replace ``path`` by a finished file holding ``header`` alone."""

    def write(fd: int) -> int:
        end = _write_start(fd, start, summary, header)
        return write_at(fd, TAIL + dumps(arguments), end)

    replace_atomically(path, write)


class DamagedHeader(pickle.UnpicklingError):
    """The first frame of a checkpoint, which says which run it belongs to, is
    damaged or missing."""


def read_journal(
    file: IO[bytes], start: bytes
) -> tuple[Any, list[Record], Scan] | None:
    """Read a file written by :class:`Journal` or :func:`write_snapshot`.

    Returns the unpickled header, the decoded result frames in order, and the
    :class:`Scan` of the file (where the intact frames end, what is damaged).
    Returns ``None`` unless the file opens with ``start``; raises
    :class:`DamagedHeader` if the header is not intact.
    """
    if file.read(len(start)) != start:
        return None
    size = os.fstat(file.fileno()).st_size
    with mmap.mmap(file.fileno(), size, access=mmap.ACCESS_READ) as data:
        scan = scan_frames(data, len(start))
    if not _lead_intact(scan, len(start)):
        if not scan.damaged:
            raise DamagedHeader("the checkpoint file ends inside its header")
        raise DamagedHeader(
            "the header of the checkpoint, which says which run it belongs to, "
            "fails its checksum: the file is damaged there"
        )
    header = pickle.loads(scan.bodies[1])  # after the summary
    records = [decode_record(body) for body in scan.bodies[2:]]
    scan.tail_damaged = not _clean_ending(scan.rest, header)
    return header, records, scan


def _lead_intact(scan: Scan, start: int) -> bool:
    """Whether the summary comes right after the opening, the header after it."""
    if len(scan.bodies) < 2:
        return False
    summary_end = start + FRAME_HEAD_SIZE + len(scan.bodies[0])
    return scan.offsets[:2] == [start, summary_end]


def _clean_ending(rest: bytes, header: Any) -> bool:
    """Whether ``rest`` is nothing, a frame cut short, or the header's tail."""
    if not rest:
        return True
    if rest[:1] == pickle.BINBYTES8:  # a frame whose write a crash cut short
        return len(rest) < 9 or len(rest) < 9 + int.from_bytes(rest[1:9], "little")
    if not rest.startswith(TAIL):
        return False
    try:
        arguments = pickle.loads(rest[len(TAIL) :])
    except Exception:
        return False
    return same(arguments, header.arguments())
