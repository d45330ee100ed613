"""The bytes of a checkpoint file: the one serialiser, and frames.

The standard pickle stores functions and classes by reference (module and
name), so a rerun of the same script gets its own classes back: an enum
member read from the checkpoint *is* the script's member. What the standard
pickle cannot reference (a lambda, a function or class defined inside a
function) is stored by value with cloudpickle, object by object, instead of
failing the whole write.

A frame is a pickle ``BINBYTES8`` opcode whose bytes are a CRC-32 and a body:
a pickle, or a result's key and write time followed by its pickle. The length
and the checksum make every frame self-delimiting and self-checking, so a
reader knows exactly which frames a crash cut short. A failure is stored under
the key :func:`failure_key` gives its call, so that one stream holds both.
"""

from __future__ import annotations

import importlib
import io
import mmap
import os
import pickle
import struct
import sys
import types
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, repeat
from operator import add
from typing import IO, Any

import cloudpickle

__all__ = [
    "FRAME_HEAD",
    "LENGTH_HEAD",
    "META",
    "PLAIN_TYPES",
    "PROTOCOL",
    "Appender",
    "DamagedFrame",
    "Record",
    "Scan",
    "decode_frame",
    "decode_record",
    "dumps",
    "failure_key",
    "is_failure_key",
    "opening",
    "plain_frames",
    "scan_frames",
    "write_at",
]

PROTOCOL = 5


class _Pickler(pickle.Pickler):
    """A standard pickler that falls back to cloudpickle per object."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType | type) and not _importable(obj):
            return pickle.loads, (cloudpickle.dumps(obj, protocol=PROTOCOL),)
        return NotImplemented


def Pickler(file: IO[bytes] | Any) -> pickle.Pickler:
    """Our pickler, writing to ``file``: reuse it (``clear_memo`` in between)."""
    return _Pickler(file, protocol=PROTOCOL)


def dump(obj: Any, file: IO[bytes] | Any) -> None:
    """Pickle ``obj`` to ``file`` (anything with a ``write`` method)."""
    _Pickler(file, protocol=PROTOCOL).dump(obj)


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` to bytes."""
    buffer = io.BytesIO()
    dump(obj, buffer)
    return buffer.getvalue()


def _importable(obj: types.FunctionType | type) -> bool:
    """Whether ``module.qualname`` of ``obj`` finds ``obj`` itself."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if not isinstance(module_name, str) or "<" in qualname:
        return False  # "<lambda>", "<locals>"
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


FRAME_HEAD = struct.Struct("<cQI")
"""A frame's head: the ``BINBYTES8`` opcode, the payload's length, and the
CRC-32 of the body (the payload is the checksum then the body)."""
LENGTH_HEAD = struct.Struct("<cQ")
"""The part of :data:`FRAME_HEAD` that says how long the frame is: the opcode
and the payload's length; the payload follows it."""
_HEAD = FRAME_HEAD
_NO_HEAD = bytes(_HEAD.size)  # room for a frame's head, written when sealed
META = struct.Struct("<qd")
"""What a result frame's body starts with: its key and the time it was
written. The key is the call's index, or :func:`failure_key` of it."""
_DIRECT = 1 << 16  # writes at least this long skip the buffer
Record = tuple[int, float, Any, str | None]
"""A decoded result frame: index, time written, result, and the error that
loading the result raised (``None`` if it loaded)."""


class DamagedFrame(pickle.UnpicklingError):
    """A frame whose checksum does not match its bytes."""


def failure_key(index: int) -> int:
    """The key under which the failure of call ``index`` is stored: negative.

    The same key decodes back: ``failure_key(failure_key(i)) == i``.
    """
    return -index - 1


def is_failure_key(key: int) -> bool:
    """Whether a frame's key is that of a failure (see :func:`failure_key`)."""
    return key < 0


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
        self.pickler = Pickler(self)  # one for all the frames: cheaper

    @property
    def offset(self) -> int:
        return self.flushed + len(self.pending)

    def write(self, data: Any) -> int:
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        self.crc = zlib.crc32(data, self.crc)
        if len(data) < _DIRECT:
            self.pending += data
        else:
            self.flush()
            self.flushed = self.write_at(data, self.flushed)
        return len(data)

    def flush(self) -> None:
        if self.pending:
            self.flushed = self.write_at(self.pending, self.flushed)
            self.pending.clear()

    def frame(self, obj: Any, meta: bytes = b"") -> None:
        """Write one frame whose body is ``meta``, then the pickle of ``obj``.

        If ``obj`` cannot be pickled, the frame is taken back and the error
        raised: the next frame goes where this one began.
        """
        pending = self.pending
        start = self.flushed + len(pending)
        pending += _NO_HEAD
        pending += meta
        self.crc = zlib.crc32(meta)
        try:
            self.pickler.dump(obj)
        except BaseException:
            self.pickler = Pickler(self)  # leave nothing half-done in it
            if not self.io_error:
                self.rewind(start)
            raise
        self.pickler.clear_memo()
        end = self.flushed + len(self.pending)
        head = _HEAD.pack(pickle.BINBYTES8, end - start - LENGTH_HEAD.size, self.crc)
        if start >= self.flushed:
            at = start - self.flushed
            self.pending[at : at + _HEAD.size] = head
        else:
            self.write_at(head, start)

    def frames(self, data: bytes) -> None:
        """Write frames made whole elsewhere (see :func:`plain_frames`)."""
        if len(data) < _DIRECT:
            self.pending += data
        else:
            self.flush()
            self.flushed = self.write_at(data, self.flushed)

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


PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
"""Types whose pickles are the same from any pickler, and always load."""


def plain_frames(
    indices: Sequence[int], results: Sequence[Any], written_at: float
) -> bytes:
    """The frames of results whose types are all in :data:`PLAIN_TYPES`.

    Byte for byte what :meth:`Appender.frame` writes, but made with C loops
    only: a few hundred nanoseconds a result instead of over a microsecond.
    """
    metas = list(map(META.pack, indices, repeat(written_at)))
    pickles = list(map(pickle.dumps, results, repeat(PROTOCOL)))
    checksums = map(zlib.crc32, pickles, map(zlib.crc32, metas))
    # The length of a BINBYTES8 payload: checksum, meta, then the pickle.
    lengths = map(add, map(len, pickles), repeat(4 + META.size))
    heads = map(_HEAD.pack, repeat(pickle.BINBYTES8), lengths, checksums)
    return b"".join(chain.from_iterable(zip(heads, metas, pickles, strict=True)))


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


@dataclass
class Scan:
    """What :func:`scan_frames` found in a file.

    Attributes
    ----------
    bodies : list of bytes
        The checked bodies of the intact frames, in order.
    offsets : list of int
        Where each of those frames begins.
    damaged : list of (int, int)
        The byte ranges that are not intact frames but lie before one: damage
        in the middle of the file.
    end : int
        Where the intact frames end: the place to append.
    rest : bytes
        What follows them: nothing, a finishing tail, a frame cut short.
    tail_damaged : bool
        Whether ``rest`` is none of these (set by whoever knows the tail).
    """

    bodies: list[bytes]
    offsets: list[int]
    damaged: list[tuple[int, int]]
    end: int
    rest: bytes
    tail_damaged: bool = False


def scan_frames(data: bytes | mmap.mmap, offset: int) -> Scan:
    """Find every intact frame of ``data`` from ``offset`` on.

    Frames are self-delimiting and checksummed: past a damaged stretch, the
    scan resynchronises on the next intact frame, so that one flipped bit
    costs the frame it is in, not every frame after it.
    """
    bodies: list[bytes] = []
    offsets: list[int] = []
    damaged: list[tuple[int, int]] = []
    position = offset
    while True:
        end = _frame_end(data, position)
        if end is None:
            following = _next_frame(data, position + 1)
            if following is None:
                break
            damaged.append((position, following))
            position = following
            continue
        bodies.append(data[position + _HEAD.size : end])
        offsets.append(position)
        position = end
    return Scan(bodies, offsets, damaged, position, bytes(data[position:]))


def _frame_end(data: bytes | mmap.mmap, position: int) -> int | None:
    """Where the frame at ``position`` ends, if an intact frame is there."""
    if data[position : position + 1] != pickle.BINBYTES8:
        return None
    if len(data) - position < _HEAD.size:
        return None
    _, length, crc = _HEAD.unpack_from(data, position)
    end: int = position + LENGTH_HEAD.size + length
    if not 4 <= length <= len(data) - position - LENGTH_HEAD.size:
        return None
    if zlib.crc32(data[position + _HEAD.size : end]) != crc:
        return None
    return end


def _next_frame(data: bytes | mmap.mmap, position: int) -> int | None:
    while (found := data.find(pickle.BINBYTES8, position)) >= 0:
        if _frame_end(data, found) is not None:
            return found
        position = found + 1
    return None
