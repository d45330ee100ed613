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
    "Record",
    "decode_frame",
    "decode_record",
    "opening",
    "read_journal",
    "write_snapshot",
]

_HEAD = struct.Struct("<cQI")  # BINBYTES8, payload length, crc32 of the body
_META = struct.Struct("<qd")  # a result's index and the time it was written
_DIRECT = 1 << 16  # writes at least this long skip the buffer
TAIL = pickle.TUPLE + pickle.REDUCE + pickle.STOP

Record = tuple[int, float, Any, str | None]
"""A decoded result frame: index, time written, result, and the error that
loading the result raised (``None`` if it loaded)."""


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


class _Appender:
    """Writes frames from ``offset`` on: small writes gathered, large ones direct.

    Pickling writes to it as to a file. The head of each frame (length and
    checksum) is filled in when the frame is sealed, so a frame is valid only
    once all its bytes are there. ``io_error`` tells a failed write apart from
    a failure to pickle.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.flushed = offset  # where the gathered bytes go in the file
        self.pending = bytearray()
        self.crc = 0
        self.io_error = False

    @property
    def offset(self) -> int:
        return self.flushed + len(self.pending)

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        if len(view) < _DIRECT:
            self.pending += view
        else:
            self.flush()
            self.flushed = self._write_at(view, self.flushed)
        return len(view)

    def flush(self) -> None:
        if self.pending:
            self.flushed = self._write_at(self.pending, self.flushed)
            self.pending.clear()

    def frame(self, obj: Any, meta: bytes = b"") -> None:
        """Write one frame whose body is ``meta``, then the pickle of ``obj``."""
        start = self.offset
        self.pending += bytes(_HEAD.size)
        self.crc = 0
        self.write(meta)
        dump(obj, self)
        head = _HEAD.pack(pickle.BINBYTES8, self.offset - start - 9, self.crc)
        if start >= self.flushed:
            self.pending[start - self.flushed : start - self.flushed + _HEAD.size] = (
                head
            )
        else:
            self._write_at(head, start)

    def rewind(self, start: int) -> None:
        """Drop what was written from ``start`` on: it is written over next."""
        if start >= self.flushed:
            del self.pending[start - self.flushed :]
        else:
            self.pending.clear()
            self.flushed = start

    def _write_at(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        try:
            return _write_at(self.fd, data, offset)
        except OSError:
            self.io_error = True
            raise


def _write_at(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
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


def _write_start(fd: int, start: bytes, header: object) -> int:
    appender = _Appender(fd, _write_at(fd, start, 0))
    appender.frame(header)
    appender.flush()
    return appender.offset


def decode_frame(payload: bytes | memoryview) -> memoryview:
    """Check the payload of a frame (checksum, then body); return the body."""
    view = memoryview(payload)
    (crc,) = struct.unpack_from("<I", view)
    if zlib.crc32(view[4:]) != crc:
        raise DamagedFrame("checkpoint frame fails its checksum")
    return view[4:]


def decode_record(body: bytes | memoryview) -> Record:
    """Decode the checked body of a result frame (see :func:`decode_frame`).

    A result that fails to load is reported in the record, not raised.
    """
    index, written_at = _META.unpack_from(body)
    try:
        return index, written_at, pickle.loads(body[_META.size :]), None
    except Exception as exc:
        return index, written_at, None, f"{type(exc).__name__}: {exc}"


class Journal:
    """An open checkpoint file that results are appended to.

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
        """Append one frame per result, then fsync once.

        Returns the indices of the results that cannot be pickled, whatever
        the error their pickling raised: they are left out. Only a failed
        write or sync raises (``OSError``), and the file is then cut back to
        where this call began.
        """
        appender = _Appender(self._fd, self._end)
        written_at = time.time()
        unpicklable: list[int] = []
        try:
            for i, result in zip(indices, results, strict=True):
                start = appender.offset
                try:
                    appender.frame(result, _META.pack(i, written_at))
                except Exception:
                    if appender.io_error:
                        raise
                    appender.rewind(start)
                    unpicklable.append(i)
            appender.flush()
            if appender.offset < os.fstat(self._fd).st_size:
                os.ftruncate(self._fd, appender.offset)  # a rewound frame's bytes
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, self._end)
            raise
        self._end = appender.offset
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


def read_journal(file: IO[bytes], start: bytes) -> tuple[Any, list[Record], int] | None:
    """Read a file written by :class:`Journal` or :func:`write_snapshot`.

    Returns ``(header, records, end)``: the unpickled header, the decoded
    result frames in order, and where the valid frames end (where to append
    next, cutting off the tail of a finished file). Stops quietly at a frame
    that is incomplete or corrupt. Returns ``None`` unless the file opens with
    ``start``.
    """
    if file.read(len(start)) != start:
        return None
    frames = _frames(file)
    header = next(frames, None)
    if header is None:
        raise pickle.UnpicklingError("checkpoint file ends inside its header")
    records = [decode_record(body) for body in frames]
    return pickle.loads(header), records, file.tell()


def _frames(file: IO[bytes]) -> Iterator[memoryview]:
    """Yield the checked bodies of the intact frames from the current position on.

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
            body = decode_frame(file.read(length))
        except DamagedFrame:
            break
        yield body
    file.seek(start)
