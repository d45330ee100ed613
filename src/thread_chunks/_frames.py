"""Frames: how one object is stored in a checkpoint file, and read back.

A frame is a pickle ``BINBYTES8`` opcode whose bytes are a CRC-32 and a body:
the header's pickle, or a result's index and write time followed by its
pickle. The length and the checksum make every frame self-delimiting and
self-checking, so a reader knows exactly which frames a crash cut short.
"""

from __future__ import annotations

import os
import pickle
import struct
import zlib
from collections.abc import Iterator
from typing import IO, Any

from ._pickling import PROTOCOL, dump

__all__ = [
    "META",
    "Appender",
    "DamagedFrame",
    "Record",
    "decode_frame",
    "decode_record",
    "opening",
    "read_frames",
    "write_at",
]

_HEAD = struct.Struct("<cQI")  # BINBYTES8, payload length, crc32 of the body
META = struct.Struct("<qd")  # a result's index and the time it was written
_DIRECT = 1 << 16  # writes at least this long skip the buffer
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


class Appender:
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
            self.flushed = self.write_at(view, self.flushed)
        return len(view)

    def flush(self) -> None:
        if self.pending:
            self.flushed = self.write_at(self.pending, self.flushed)
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
            self.write_at(head, start)

    def rewind(self, start: int) -> None:
        """Drop what was written from ``start`` on: it is written over next."""
        if start >= self.flushed:
            del self.pending[start - self.flushed :]
        else:
            self.pending.clear()
            self.flushed = start

    def write_at(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        try:
            return write_at(self.fd, data, offset)
        except OSError:
            self.io_error = True
            raise


def write_at(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
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
    index, written_at = META.unpack_from(body)
    try:
        return index, written_at, pickle.loads(body[META.size :]), None
    except Exception as exc:
        return index, written_at, None, f"{type(exc).__name__}: {exc}"


def read_frames(file: IO[bytes]) -> Iterator[memoryview]:
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
