"""The checkpoint file format: one pickle stream that grows by appended records.

A finished file is a single ordinary pickle, so ``pickle.load`` and
``saveable_objects.SaveableObject.load`` read it, followed by the pickle of the
arguments it was made from, as ``saveable_objects`` writes them::

    PROTO 5, GLOBAL thread_chunks.Checkpoint._from_journal, MARK
    BINBYTES8 <crc32 | pickled header>                    written once
    BINBYTES8 <crc32 | pickled (indices, results, time)>  one record per write
    TUPLE, REDUCE, STOP                                   when finished
    <pickled arguments>

Unpickling calls ``Checkpoint._from_journal(header, *records)``, which replays
the records. Each result in a record is a pickle of its own, so one that
cannot be loaded does not take the others with it. While a run goes
on the tail is missing and records are only appended and fsynced: the bytes
written never change, so results cost what they weigh once. A record cut short
by a crash fails its length or its checksum and is ignored. A finished file is
reopened by cutting off its tail. Every function here blocks: callers use
worker threads.
"""

from __future__ import annotations

import os
import pickle
import struct
import time
import zlib
from collections.abc import Iterator, Sequence
from typing import IO, Any

from ._atomic import BINARY, replace_atomically
from ._pickling import PROTOCOL, dump, dumps

__all__ = [
    "DamagedFrame",
    "Journal",
    "decode_frame",
    "opening",
    "read_journal",
    "write_snapshot",
]

_HEAD = struct.Struct("<cQI")  # BINBYTES8, payload length, crc32 of the pickle
TAIL = pickle.TUPLE + pickle.REDUCE + pickle.STOP


class DamagedFrame(pickle.UnpicklingError):
    """A frame whose checksum does not match its bytes."""


def opening(module: str, qualname: str) -> bytes:
    """The bytes that open a file: a call of ``module.qualname`` on the frames."""
    module_bytes, name = module.encode(), qualname.encode()
    return (
        pickle.PROTO + bytes([PROTOCOL])
        + pickle.SHORT_BINUNICODE + bytes([len(module_bytes)]) + module_bytes
        + pickle.SHORT_BINUNICODE + bytes([len(name)]) + name
        + pickle.STACK_GLOBAL
        + pickle.MARK
    )  # fmt: skip


class _FrameWriter:
    """A file-like sink that pickles straight to disk as one frame.

    The frame's head (length and checksum) is written last, over the space
    reserved for it, so a frame is never valid before all its bytes are there.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.start = offset
        self.offset = offset + _HEAD.size
        self.crc = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.offset = _write_at(self.fd, view, self.offset)
        return len(view)

    def seal(self) -> int:
        length = self.offset - self.start - _HEAD.size + 4
        _write_at(self.fd, _HEAD.pack(pickle.BINBYTES8, length, self.crc), self.start)
        return self.offset


def _write_at(fd: int, data: bytes | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset``; return the offset after it.

    ``lseek`` and ``write`` rather than ``pwrite``, which Windows lacks; one
    thread at a time writes to a journal.
    """
    view = memoryview(data)
    os.lseek(fd, offset, os.SEEK_SET)
    while view:
        written = os.write(fd, view)
        offset += written
        view = view[written:]
    return offset


def _write_frame(fd: int, offset: int, obj: Any) -> int:
    """Pickle ``obj`` as a frame at ``offset``; return where the frame ends."""
    frame = _FrameWriter(fd, offset)
    dump(obj, frame)
    return frame.seal()


def decode_frame(payload: bytes | memoryview) -> Any:
    """Unpickle the payload of a frame (checksum, then pickle), checking it."""
    view = memoryview(payload)
    (crc,) = struct.unpack_from("<I", view)
    if zlib.crc32(view[4:]) != crc:
        raise DamagedFrame("checkpoint record fails its checksum")
    return pickle.loads(view[4:])


def _write_start(fd: int, start: bytes, header: object) -> int:
    return _write_frame(fd, _write_at(fd, start, 0), header)


class Journal:
    """An open checkpoint file that records are appended to.

    Use :meth:`create` for a new file or :meth:`reopen` to continue one.
    """

    def __init__(self, path: str, fd: int, end: int) -> None:
        self.path = path
        self._fd = fd
        self._end = end

    @classmethod
    def create(cls, path: str, start: bytes, header: object) -> Journal:
        """Atomically replace ``path`` by a new journal: ``start``, then ``header``."""
        end = replace_atomically(path, lambda fd: _write_start(fd, start, header))
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
        """Append one record of results and fsync it.

        Each result is pickled first, on its own: the indices of those that
        cannot be pickled, whatever the error, are returned and left out. Only
        the writing can raise ``OSError``: the file is then cut back to its
        last record.
        """
        kept, blobs, unpicklable = [], [], []
        for i, result in zip(indices, results, strict=True):
            try:
                blobs.append(dumps(result))
            except Exception:
                unpicklable.append(i)
            else:
                kept.append(i)
        if kept:
            try:
                end = _write_frame(self._fd, self._end, (kept, blobs, time.time()))
                os.fsync(self._fd)
            except BaseException:
                os.ftruncate(self._fd, self._end)
                raise
            self._end = end
        return unpicklable

    def finish(self, arguments: dict[str, Any]) -> None:
        """Write the tail and the arguments, fsync and close: a plain pickle now."""
        try:
            _write_at(self._fd, TAIL + dumps(arguments), self._end)
            os.fsync(self._fd)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file, leaving it as it is (readable, not finished)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_snapshot(
    path: str, start: bytes, header: object, arguments: dict[str, Any]
) -> None:
    """Atomically replace ``path`` by a finished file holding ``header`` alone."""

    def write(fd: int) -> int:
        end = _write_start(fd, start, header)
        return _write_at(fd, TAIL + dumps(arguments), end)

    replace_atomically(path, write)


def read_journal(file: IO[bytes], start: bytes) -> tuple[Any, list[Any], int] | None:
    """Read a file written by :class:`Journal` or :func:`write_snapshot`.

    Returns ``(header, records, end)``: the unpickled header, the unpickled
    records in order, and where the valid records end (where to append next,
    cutting off the tail of a finished file). Stops quietly at a record that is
    incomplete or corrupt. Returns ``None`` unless the file opens with ``start``.
    """
    if file.read(len(start)) != start:
        return None
    frames = _frames(file)
    header = next(frames, None)
    if header is None:
        raise pickle.UnpicklingError("checkpoint file ends inside its header")
    records = list(frames)
    return header, records, file.tell()


def _frames(file: IO[bytes]) -> Iterator[Any]:
    """Yield the unpickled frames from the current position on.

    Stops at a frame cut short or failing its checksum (the tail of a write a
    crash interrupted), leaving the file positioned at its start.
    """
    size = os.fstat(file.fileno()).st_size
    while True:
        start = file.tell()
        head = file.read(9)
        if len(head) < 9 or head[:1] != pickle.BINBYTES8:
            break
        (length,) = struct.unpack_from("<Q", head, 1)
        if not 4 <= length <= size - start - 9:
            break  # a length the file cannot hold: damaged
        try:
            yield decode_frame(file.read(length))
        except DamagedFrame:
            break
    file.seek(start)
