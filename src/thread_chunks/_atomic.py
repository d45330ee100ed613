"""Replacing a file atomically, and cleaning up after a replacement cut short.

Every function here blocks: callers use worker threads.
"""

from __future__ import annotations

import glob
import os
import secrets
from collections.abc import Callable

__all__ = ["BINARY", "remove_leftovers", "replace_atomically"]

BINARY = getattr(os, "O_BINARY", 0)
"""Open flag for binary files: no newline translation on Windows."""


def replace_atomically(path: str, write: Callable[[int], int]) -> int:
    """Write a temporary file with ``write(fd)``, fsync it, rename it over ``path``.

    The directory is fsynced too, so that after a crash at any instant ``path``
    is either the old file or the new one. Returns what ``write`` returned.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temp_path = f"{_temporary_prefix(path)}{secrets.token_hex(8)}.tmp"
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


def _temporary_prefix(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.")


def remove_leftovers(path: str) -> None:
    """Delete temporary files that a run killed while replacing ``path`` left."""
    for leftover in glob.glob(glob.escape(_temporary_prefix(path)) + "*.tmp"):
        os.unlink(leftover)
