"""The checkpoint file: one pickle stream that grows by appended records.

A finished file is a single ordinary pickle, so ``pickle.load`` and
``saveable_objects.SaveableObject.load`` read it, followed by the pickle of the
arguments it was made from, as ``saveable_objects`` writes them::

    PROTO 5, GLOBAL thread_chunks.Checkpoint._from_journal, MARK
    BINBYTES8 <crc32 | pickled Checkpoint>          the header, written once
    BINBYTES8 <crc32 | pickled (indices, results)>  one record per write ...
    TUPLE, REDUCE, STOP                             the tail, when finished
    <pickled arguments>

Unpickling calls ``Checkpoint._from_journal(header, *records)``, which replays
the records. While a run goes on the tail is missing and records are only ever
appended and fsynced: the bytes already written never change, so results cost
what they weigh once. A record cut short by a crash fails its length or its
checksum and :func:`read_journal` ignores it. A finished file is reopened by
cutting off its tail. Every function here blocks: callers use worker threads.
"""

from __future__ import annotations

import glob
import os
import pickle
import secrets
import struct
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import IO, Any

import cloudpickle

__all__ = [
    "Journal",
    "decode_frame",
    "read_journal",
    "remove_leftovers",
    "write_snapshot",
]

_PROTOCOL = 5
PREFIX = (
    b"\x80\x05"  # PROTO 5
    + b"\x8c\x0dthread_chunks"  # SHORT_BINUNICODE
    + b"\x8c\x18Checkpoint._from_journal"  # SHORT_BINUNICODE
    + b"\x93"  # STACK_GLOBAL
    + b"("  # MARK
)
TAIL = b"tR."  # TUPLE, REDUCE, STOP
_BINBYTES8 = 0x8E
_FRAME_HEAD = struct.Struct("<BQI")  # BINBYTES8, payload length, crc32 of the pickle


class _FrameWriter:
    """A file-like sink that pickles straight to disk as one frame.

    The frame's head (length and checksum) is written last, over the space
    reserved for it, so a frame is never valid before all its bytes are there.
    """

    def __init__(self, fd: int, offset: int) -> None:
        self.fd = fd
        self.start = offset
        self.offset = offset + _FRAME_HEAD.size
        self.crc = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.offset = _pwrite_all(self.fd, view, self.offset)
        return len(view)

    def seal(self) -> int:
        length = self.offset - self.start - _FRAME_HEAD.size + 4
        _pwrite_all(self.fd, _FRAME_HEAD.pack(_BINBYTES8, length, self.crc), self.start)
        return self.offset


def _pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> int:
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
    cloudpickle.CloudPickler(frame, protocol=_PROTOCOL).dump(obj)
    return frame.seal()


def decode_frame(payload: bytes | memoryview) -> Any:
    """Unpickle the payload of a frame (checksum, then pickle), checking it."""
    (crc,) = struct.unpack_from("<I", payload)
    body = memoryview(payload)[4:]
    if zlib.crc32(body) != crc:
        raise pickle.UnpicklingError("checkpoint record fails its checksum")
    return pickle.loads(body)


class Journal:
    """An open checkpoint file that records are appended to.

    Use :meth:`create` for a new file or :meth:`reopen` to continue one.
    """

    def __init__(self, path: str, fd: int, end: int) -> None:
        self.path = path
        self._fd = fd
        self._end = end

    @classmethod
    def create(cls, path: str, header: object) -> Journal:
        """Atomically replace ``path`` by a new journal holding ``header``."""
        end = _replace_atomically(
            path, lambda fd: _write_frame(fd, _prefix(fd), header)
        )
        return cls(path, os.open(path, os.O_RDWR), end)  # synced already

    @classmethod
    def reopen(cls, path: str, end: int) -> Journal:
        """Open ``path`` for appending after ``end``, cutting off what follows."""
        fd = os.open(path, os.O_RDWR)
        try:
            os.ftruncate(fd, end)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, end)

    def append(
        self, indices: Sequence[int], results: Sequence[Any], index: int
    ) -> list[int]:
        """Append one record of results and fsync it.

        Returns the indices whose results cannot be pickled: they are left out.
        On ``OSError`` the file is cut back to its last record, then it raises.
        """
        try:
            end = _write_frame(self._fd, self._end, (indices, results, index))
            unpicklable: list[int] = []
        except OSError:
            os.ftruncate(self._fd, self._end)
            raise
        except Exception:
            os.ftruncate(self._fd, self._end)
            pairs = list(zip(indices, results, strict=True))
            unpicklable = [i for i, result in pairs if not _picklable(result)]
            skip = set(unpicklable)
            kept = [(i, result) for i, result in pairs if i not in skip]
            record = ([i for i, _ in kept], [result for _, result in kept], index)
            try:
                end = _write_frame(self._fd, self._end, record)
            except BaseException:
                os.ftruncate(self._fd, self._end)
                raise
        try:
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._end)
            raise
        self._end = end
        return unpicklable

    def finish(self, arguments: dict[str, Any]) -> None:
        """Write the tail and the arguments, fsync and close: a plain pickle now."""
        try:
            data = TAIL + pickle.dumps(arguments, protocol=_PROTOCOL)
            _pwrite_all(self._fd, data, self._end)
            os.fsync(self._fd)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file, leaving it as it is (readable, not finished)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _picklable(obj: object) -> bool:
    try:
        cloudpickle.dumps(obj, protocol=_PROTOCOL)
    except Exception:
        return False
    return True


def _prefix(fd: int) -> int:
    return _pwrite_all(fd, PREFIX, 0)


def write_snapshot(path: str, header: object, arguments: dict[str, Any]) -> None:
    """Atomically replace ``path`` by a finished file holding ``header`` alone."""

    def write(fd: int) -> int:
        end = _write_frame(fd, _prefix(fd), header)
        return _pwrite_all(fd, TAIL + pickle.dumps(arguments, protocol=_PROTOCOL), end)

    _replace_atomically(path, write)


def _replace_atomically(path: str, write: Callable[[int], int]) -> int:
    """Write a temporary file with ``write(fd)``, fsync it, rename it over ``path``.

    The directory is fsynced too, so that after a crash at any instant ``path``
    is either the old file or the new one. Returns what ``write`` returned.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temp_path = f"{_temporary_prefix(path)}{secrets.token_hex(8)}.tmp"
    # Mode 0o666 less the umask, like any new file (mkstemp would make it 0o600).
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(temp_path, flags, 0o666)
    try:
        end = write(fd)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp_path, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(temp_path)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return end


def _temporary_prefix(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.")


def remove_leftovers(path: str) -> None:
    """Delete temporary files that a run killed while replacing ``path`` left."""
    for leftover in glob.glob(glob.escape(_temporary_prefix(path)) + "*.tmp"):
        os.unlink(leftover)


def read_journal(file: IO[bytes]) -> tuple[Any, list[Any], int] | None:
    """Read a checkpoint file written by :class:`Journal` or :func:`write_snapshot`.

    Returns ``(header, records, end)``: the unpickled header, the unpickled
    records in order, and where the valid records end (where to append next,
    cutting off the tail of a finished file). Stops quietly at a record that is
    incomplete or corrupt. Returns ``None`` if the file is not in this format.
    """
    if file.read(len(PREFIX)) != PREFIX:
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
    crash interrupted), leaving the file positioned at its start. A frame that
    is intact but cannot be unpickled raises: that file is not ours to cut.
    """
    size = os.fstat(file.fileno()).st_size
    while True:
        start = file.tell()
        head = file.read(_FRAME_HEAD.size)
        if len(head) < _FRAME_HEAD.size or head[0] != _BINBYTES8:
            break
        _, length, crc = _FRAME_HEAD.unpack(head)
        if not 4 <= length <= size - start - _FRAME_HEAD.size + 4:
            break  # a length the file cannot hold: damaged
        body = file.read(length - 4)
        if zlib.crc32(body) != crc:
            break
        yield pickle.loads(body)
    file.seek(start)
