"""The checkpoint file format: a snapshot, then appended records of new results.

A file holds, back to back:

1. a cloudpickle of the :class:`~thread_chunks.Checkpoint` (the snapshot),
2. a pickle of the arguments it was made from, as ``saveable_objects`` writes,
3. zero or more records, each ``MAGIC | length | crc32 | payload`` where the
   payload pickles ``(indices, results, index)``.

Snapshots are only ever written whole, to a temporary file that replaces the old
one atomically. Records are only ever appended and fsynced; a record cut short
by a crash fails its length or checksum and is ignored with everything after it.
Every function here blocks: callers run them in a worker thread.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import tempfile
import zlib
from collections.abc import Sequence
from typing import IO, Any, Protocol

import cloudpickle

__all__ = ["JournalWriter", "move_aside", "replay", "write_snapshot"]

MAGIC = b"TCJ\x01"
_FRAME = struct.Struct("<4sQI")
_PROTOCOL = pickle.HIGHEST_PROTOCOL


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


# Temporary files are created private; the checkpoint gets the usual mode.
_FILE_MODE = 0o666 & ~_current_umask()


class Progress(Protocol):
    """What a record updates: the fields of a :class:`~thread_chunks.Checkpoint`."""

    output: list[Any]
    completed: list[bool]
    index: int


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` as checkpoints do (cloudpickle, highest protocol)."""
    return cloudpickle.dumps(obj, protocol=_PROTOCOL)  # type: ignore[no-any-return]


def write_snapshot(path: str, snapshot: object, arguments: dict[str, Any]) -> int:
    """Atomically replace ``path`` with ``snapshot`` and ``arguments``.

    Writes a temporary file in the same directory, fsyncs it, renames it over
    ``path`` and fsyncs the directory, so that ``path`` holds either the old or
    the new file after a crash at any instant. Returns the new file's size.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    fd, temp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory
    )
    try:
        os.fchmod(fd, _FILE_MODE)
        with os.fdopen(fd, "wb") as file:
            cloudpickle.dump(snapshot, file, protocol=_PROTOCOL)
            pickle.dump(arguments, file, protocol=_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
            size = file.tell()
        os.replace(temp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_path)
        raise
    _fsync_directory(directory)
    return size


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replay(file: IO[bytes], progress: Progress) -> int:
    """Apply the records that follow the snapshot in ``file`` to ``progress``.

    Stops quietly at the first record that is incomplete or corrupt (the tail
    of a write cut short by a crash). Returns the offset where valid data ends.
    """
    end = file.tell()
    total = len(progress.output)
    while True:
        frame = file.read(_FRAME.size)
        if len(frame) < _FRAME.size:
            return end
        magic, length, checksum = _FRAME.unpack(frame)
        if magic != MAGIC:
            return end
        payload = file.read(length)
        if len(payload) < length or zlib.crc32(payload) != checksum:
            return end
        try:
            indices, results, index = pickle.loads(payload)
        except Exception:
            return end
        if not all(0 <= i < total for i in indices):
            return end
        for i, result in zip(indices, results, strict=True):
            progress.output[i] = result
            progress.completed[i] = True
        progress.index = max(progress.index, index)
        end = file.tell()


class JournalWriter:
    """Appends records to a checkpoint file, one fsync per record.

    Parameters
    ----------
    path : str
        The checkpoint file, which must already hold a snapshot.
    end : int
        Where its valid data ends; anything after (a torn record) is cut off.
    """

    def __init__(self, path: str, end: int) -> None:
        self._fd = os.open(path, os.O_RDWR)
        self._end = end
        os.ftruncate(self._fd, end)

    def append(
        self, indices: Sequence[int], results: Sequence[Any], index: int
    ) -> list[int]:
        """Write one record of results and fsync it.

        Returns the indices whose results could not be pickled: those are left
        out of the record. On an ``OSError`` the file is cut back to its last
        complete record before the error propagates.
        """
        unpicklable: list[int] = []
        try:
            payload = dumps((indices, results, index))
        except Exception:
            kept_indices, kept_results = [], []
            for i, result in zip(indices, results, strict=True):
                try:
                    dumps(result)
                except Exception:
                    unpicklable.append(i)
                else:
                    kept_indices.append(i)
                    kept_results.append(result)
            payload = dumps((kept_indices, kept_results, index))
        frame = _FRAME.pack(MAGIC, len(payload), zlib.crc32(payload))
        try:
            offset = self._write_at(self._end, frame)
            self._write_at(offset, payload)
            os.fsync(self._fd)
        except OSError:
            os.ftruncate(self._fd, self._end)
            raise
        self._end += len(frame) + len(payload)
        return unpicklable

    def _write_at(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._fd, view, offset)
            offset += written
            view = view[written:]
        return offset

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


def move_aside(path: str) -> str:
    """Rename an unreadable checkpoint to a free sibling name and return it."""
    for attempt in range(1000):
        suffix = ".unreadable" if attempt == 0 else f".unreadable-{attempt}"
        target = path + suffix
        if not os.path.exists(target):
            os.rename(path, target)
            return target
    raise FileExistsError(f"too many unreadable copies of {path!r} already exist")
