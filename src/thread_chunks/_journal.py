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
import re
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from filelock import FileLock, Timeout

from ._pickling import (
    FRAME_HEAD,
    LENGTH_HEAD,
    META,
    PLAIN_TYPES,
    Appender,
    Record,
    Scan,
    decode_record,
    dumps,
    plain_frames,
    scan_frames,
    write_at,
)

__all__ = [
    "CheckpointLock",
    "DamagedHeader",
    "Journal",
    "Summary",
    "keep_copy",
    "lock_path",
    "move_aside",
    "read_journal",
    "remove_leftovers",
    "resolve_path",
    "with_default_extension",
    "write_snapshot",
]

TAIL = pickle.TUPLE + pickle.REDUCE + pickle.STOP

LONGEST_SIBLING = 22
"""How many characters the longest file kept beside a checkpoint (a temporary
one: ``.NAME.<16 hex digits>.tmp``) adds to the checkpoint's name."""

BINARY = getattr(os, "O_BINARY", 0)
"""Open flag for binary files: no newline translation on Windows."""

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
    file: IO[bytes], start: bytes, same: Callable[[Any, Any], bool]
) -> tuple[Any, list[Record], Scan] | None:
    """Read a file written by :class:`Journal` or :func:`write_snapshot`.

    Returns the unpickled header, the decoded result frames in order, and the
    :class:`Scan` of the file (where the intact frames end, what is damaged).
    Returns ``None`` unless the file opens with ``start``; raises
    :class:`DamagedHeader` if the header is not intact. ``same`` compares the
    arguments in a finished file's tail with the header's.
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
    scan.tail_damaged = not _clean_ending(scan.rest, header, same)
    return header, records, scan


def _lead_intact(scan: Scan, start: int) -> bool:
    """Whether the summary comes right after the opening, the header after it."""
    if len(scan.bodies) < 2:
        return False
    summary_end = start + FRAME_HEAD.size + len(scan.bodies[0])
    return scan.offsets[:2] == [start, summary_end]


def _clean_ending(rest: bytes, header: Any, same: Callable[[Any, Any], bool]) -> bool:
    """Whether ``rest`` is nothing, a frame cut short, or the header's tail."""
    if not rest:
        return True
    if rest[:1] == pickle.BINBYTES8:  # a frame whose write a crash cut short
        if len(rest) < LENGTH_HEAD.size:
            return True
        _, length = LENGTH_HEAD.unpack_from(rest)
        return len(rest) < LENGTH_HEAD.size + int(length)
    if not rest.startswith(TAIL):
        return False
    try:
        arguments = pickle.loads(rest[len(TAIL) :])
    except Exception:
        return False
    return same(arguments, header.arguments())


def replace_atomically(path: str, write: Callable[[int], int]) -> int:
    """Write a temporary file with ``write(fd)``, fsync it, rename it over ``path``.

    The directory is fsynced too, so that after a crash at any instant ``path``
    is either the old file or the new one. Returns what ``write`` returned.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temp_path = _temporary_path(path)
    # Mode 0o666 less the umask, like any new file (mkstemp would make it 0o600).
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | BINARY, 0o666)
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


def _temporary_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")


def keep_copy(path: str, suffix: str) -> str:
    """Keep a copy of ``path`` as ``path + suffix``; ``path`` stays as it is.

    A hard link where the file system has them (no bytes copied), a copy
    otherwise; either way it replaces an older copy atomically. The caller
    must then replace ``path`` rather than change it in place, or the link
    would change too.
    """
    copy, temp_path = path + suffix, _temporary_path(path)
    try:
        os.link(path, temp_path)
    except OSError:
        shutil.copyfile(path, temp_path)
    os.replace(temp_path, copy)
    return copy


def remove_leftovers(path: str) -> None:
    """Delete temporary files that a run killed while replacing ``path`` left.

    Only names that no other checkpoint's files can have are removed:
    ``.NAME.`` then exactly 16 hex digits then ``.tmp`` (the temporary files
    of ``NAME.part2.pkl`` begin with ``.NAME.`` too). Call it holding the
    checkpoint's lock, so that no run of this checkpoint is writing one.
    """
    directory, name = os.path.split(path)
    pattern = re.compile(re.escape(f".{name}.") + "[0-9a-f]{16}" + re.escape(".tmp"))
    for entry in os.scandir(directory or "."):
        if pattern.fullmatch(entry.name):
            os.unlink(entry.path)


def file_mode() -> int:
    """The mode of a new file here: ``0o666`` less the process's umask.

    Read from ``/proc`` where there is one: setting the umask to read it back
    would change it for every thread for a moment. Elsewhere, the umask the
    process had when thread-chunks was imported.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o666 & ~_UMASK_AT_IMPORT


def _umask_at_import() -> int:
    umask = os.umask(0o022)  # at import, before any thread of ours makes files
    os.umask(umask)
    return umask


_UMASK_AT_IMPORT = _umask_at_import()


def lock_path(path: str) -> str:
    """The lock file of the checkpoint at ``path``: ``.NAME.lock`` beside it."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.lock")


class CheckpointLock:
    """The lock that keeps a second run from writing the checkpoint at ``path``.

    Taken at once or not at all: a second run fails before computing.
    """

    def __init__(self, path: str) -> None:
        self.path = lock_path(path)
        self._lock = self._take()
        self._file = os.stat(self.path)

    def still_ours(self) -> bool:
        """Whether the lock file at the path is still the one locked."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (self._file.st_dev, self._file.st_ino)

    def _take(self) -> FileLock:
        lock = FileLock(self.path, timeout=0, thread_local=False, mode=file_mode())
        try:
            lock.acquire()
        except Timeout:
            checkpoint = os.path.join(
                os.path.dirname(self.path), os.path.basename(self.path)[1:-5]
            )
            raise RuntimeError(
                f"checkpoint {checkpoint!r} is being written by another run, in "
                "this process or another; give each run a path of its own"
            ) from None
        return lock

    def take_again(self) -> None:
        """Lock a new lock file at the same path, if ours was deleted, gaplessly.

        The new lock is taken before the old one is released, so that no other
        run can take the path in between. Raises ``RuntimeError`` if another
        run holds the new one.
        """
        if self.still_ours():
            return
        old = self._lock
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._lock = self._take()
        self._file = os.stat(self.path)
        old.release()

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


def move_aside(path: str) -> str:
    """Rename an unreadable checkpoint to a free sibling name and return it."""
    for attempt in range(1000):
        target = path + (".unreadable" if attempt == 0 else f".unreadable-{attempt}")
        if not os.path.exists(target):
            os.rename(path, target)
            return target
    raise FileExistsError(f"too many unreadable copies of {path!r} already exist")


def with_default_extension(path: str) -> str:
    """``path``, or with ``_Checkpoint.pkl`` added if it has no extension.

    The rule of saveable-objects for a ``Checkpoint``: ``"run"`` becomes
    ``"run_Checkpoint.pkl"`` and ``"run_"`` becomes ``"run_Checkpoint.pkl"``.
    """
    root, extension = os.path.splitext(path)
    if extension:
        return path
    name = os.path.basename(root)
    return path + ("_" if name and not name.endswith("_") else "") + "Checkpoint.pkl"


def resolve_path(path: str) -> str:
    """Check ``path`` as a place for a checkpoint; return it with links resolved.

    A path without an extension gets ``_Checkpoint.pkl``, as saveable-objects
    does. Symbolic links are followed once, here: the lock and every write
    then use the file itself, and the link stays. Raises ``ValueError`` for a
    directory, a path below a file, or a name the file system cannot hold with
    the files kept beside it.
    """
    if os.path.isdir(path):
        raise ValueError(
            f"path {path!r} is a directory; pass a file name inside it, such "
            f"as {os.path.join(path, 'checkpoint.pkl')!r}"
        )
    given = with_default_extension(path)
    resolved = os.path.realpath(given)
    directory, name = os.path.split(resolved)
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"path {given!r} is below {existing!r}, which is a file, not a "
            "directory; choose a path in a directory"
        )
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(name) + LONGEST_SIBLING > name_max:
        raise ValueError(
            f"path's file name {name!r} has {len(name)} characters, and the "
            f"files kept beside a checkpoint add up to {LONGEST_SIBLING}: more "
            f"than the {name_max} this file system allows. Choose a name of at "
            f"most {name_max - LONGEST_SIBLING} characters"
        )
    return resolved
