"""Replacing a file atomically, and cleaning up after a replacement cut short.

Every function here blocks: callers use worker threads.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Callable

__all__ = [
    "BINARY",
    "LONGEST_SIBLING",
    "file_mode",
    "keep_copy",
    "remove_leftovers",
    "replace_atomically",
]

LONGEST_SIBLING = 22
"""How many characters the longest file kept beside a checkpoint (a temporary
one: ``.NAME.<16 hex digits>.tmp``) adds to the checkpoint's name."""

BINARY = getattr(os, "O_BINARY", 0)
"""Open flag for binary files: no newline translation on Windows."""


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
    """The mode of a new file here: ``0o666`` less the process's umask."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    umask = os.umask(0o022)  # no /proc: read it by setting it, then restore
    os.umask(umask)
    return 0o666 & ~umask
