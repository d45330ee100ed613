"""Opening a checkpoint file: lock it, then resume it, replace it or move it aside.

A file is unpickled only if it begins the way the files we write begin:
anything else at ``path`` (another program's pickle, a 1.x checkpoint,
garbage) is renamed out of the way unread, because unpickling runs code.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Sequence
from typing import Any

from filelock import FileLock, Timeout

from ._atomic import file_mode, keep_copy, remove_leftovers
from ._checkpoint import Checkpoint
from ._frames import Scan
from ._identity import FunctionIdentity
from ._journal import Journal
from ._saveable import read_checkpoint

__all__ = ["create_journal", "lock_checkpoint", "open_checkpoint_file"]

logger = logging.getLogger("thread_chunks")


def open_checkpoint_file(
    path: str, function: FunctionIdentity, parameters: Sequence[Sequence[Any]]
) -> tuple[Checkpoint, Journal | None, FileLock | None, list[str]]:
    """Lock ``path``, then resume the checkpoint there or start a new one.

    Returns the checkpoint, its journal open for appending, the lock (held)
    and the warnings to give the user. Blocks: run it in a worker thread.
    Takes the checkpoint's lock first, so that two runs (in this process or
    another) never write the same file: the second fails before computing.
    In a directory this process cannot write, a finished checkpoint of the
    same run is still read, with no journal and no lock: nothing to write.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        lock = lock_checkpoint(path)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        return _read_only(path, function, parameters, exc), None, None, []
    try:
        remove_leftovers(path)
        checkpoint, journal, messages = _resume_or_create(path, function, parameters)
        journal.prepare_tail(checkpoint.arguments())
    except BaseException:
        lock.release()
        raise
    return checkpoint, journal, lock, messages


def lock_checkpoint(path: str) -> FileLock:
    """Take the lock of the checkpoint at ``path``; fail at once if it is taken."""
    lock = FileLock(_lock_path(path), timeout=0, thread_local=False, mode=file_mode())
    try:
        lock.acquire()
    except Timeout:
        raise RuntimeError(
            f"checkpoint {path!r} is being written by another run, in this process "
            "or another; give each run a path of its own"
        ) from None
    return lock


def _read_only(
    path: str,
    function: FunctionIdentity,
    parameters: Sequence[Sequence[Any]],
    error: OSError,
) -> Checkpoint:
    """The finished checkpoint at ``path`` in a read-only directory, or ``error``."""
    if os.path.exists(path) and _written_by_us(path):
        old, _ = read_checkpoint(path, Checkpoint)
        finished = old.done == len(parameters) and not old.unreadable
        if finished and old.matches(function, parameters):
            logger.info("read finished checkpoint %r (read-only directory)", path)
            return old
    error.add_note(
        f"the checkpoint {path!r} cannot be written there; a finished checkpoint "
        "of the same run could be read, but this run has calls to compute: "
        "pass a path= in a directory you can write"
    )
    raise error


def _lock_path(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.lock")


def _resume_or_create(
    path: str, function: FunctionIdentity, parameters: Sequence[Sequence[Any]]
) -> tuple[Checkpoint, Journal, list[str]]:
    messages: list[str] = []
    if os.path.exists(path) and not _written_by_us(path):
        # Unpickling runs code from the file: only our own files are read.
        aside = _move_aside(path)
        logger.warning("moved unreadable checkpoint %r to %r", path, aside)
        messages.append(_foreign_file_message(path, aside))
    elif os.path.exists(path):
        try:
            old, scan = read_checkpoint(path, Checkpoint)
        except OSError:
            raise
        except Exception as exc:  # a damaged header, a class that is gone
            aside = _move_aside(path)
            logger.warning("moved unreadable checkpoint %r to %r", path, aside)
            messages.append(
                f"checkpoint {path!r} cannot be read ({type(exc).__name__}: {exc}); "
                f"moved it to {aside!r} and starting afresh"
            )
        else:
            if old.matches(function, parameters):
                journal = _resume(path, old, scan, function, messages)
                return old, journal, messages
            if old.function is not None and old.function.bound_error is not None:
                logger.warning(
                    "what was bound to %s in checkpoint %r cannot be loaded (%s), "
                    "so the run it belongs to cannot be recognised",
                    old.func_name,
                    path,
                    old.function.bound_error,
                )
            previous = keep_copy(path, ".previous")  # one generation is kept
            logger.warning(
                "checkpoint %r was made for another function or other parameters: "
                "replacing it, which drops its %d saved results (kept in %r until "
                "the next replacement), and computing every call",
                path,
                old.done,
                previous,
            )
    checkpoint = Checkpoint(function.name, parameters)
    checkpoint.function = function
    checkpoint.path = path
    try:
        return checkpoint, create_journal(path, checkpoint), messages
    except OSError:
        raise
    except Exception as exc:  # the parameters cannot be pickled
        raise TypeError(
            f"path={path!r} saves the parameters (and what is bound to func: a "
            "partial's arguments, a method's object) beside the results, to "
            f"recognise the run later, but they cannot be pickled ({exc}); pass "
            "picklable ones, or leave out path="
        ) from exc


def _resume(
    path: str,
    old: Checkpoint,
    scan: Scan | None,
    function: FunctionIdentity,
    messages: list[str],
) -> Journal:
    """Continue the checkpoint ``old``, read from ``path``; say what is amiss."""
    logger.info(
        "resuming from checkpoint %r: %d of %d calls already done",
        path,
        old.done,
        len(old.parameters),
    )
    if old.function is not None and old.function.code != function.code:
        logger.warning(
            "the code of %s changed since checkpoint %r was written; its saved "
            "results are kept, since the function's name and the parameters are "
            "the same: to compute every call again, delete the file or pass "
            "another path=",
            function.name,
            path,
        )
    if old.unreadable:
        i, error = next(iter(old.unreadable.items()))
        messages.append(
            f"{len(old.unreadable)} saved results in {path!r} cannot be loaded "
            f"(call {i}: {error}); computing them again"
        )
    old.path = path
    assert scan is not None  # a journal, since it opens like one
    if scan.damaged:
        copy = keep_copy(path, ".damaged")
        lost = sum(end - start for start, end in scan.damaged)
        messages.append(
            f"checkpoint {path!r} is damaged: {lost} bytes in {len(scan.damaged)} "
            f"place(s) cannot be read. Kept a copy as {copy!r}, recovered the "
            f"{old.done} results around the damage, and computing again the "
            "calls whose results were there"
        )
        return create_journal(path, old)  # a clean file, with every recovered result
    if scan.tail_damaged:
        copy = keep_copy(path, ".damaged")
        messages.append(
            f"the end of checkpoint {path!r} is damaged or was cut short, after "
            f"its last result: no result was lost; kept a copy as {copy!r}"
        )
        return create_journal(path, old)  # a new file: the copy stays as it is
    return Journal.reopen(path, scan.end)


def _written_by_us(path: str) -> bool:
    """Whether the file at ``path`` opens like the checkpoints we write."""
    opening = Checkpoint.file_opening()
    with open(path, "rb") as file:
        return file.read(len(opening)) == opening


def _foreign_file_message(path: str, aside: str) -> str:
    with open(aside, "rb") as file:
        start = file.read(256)
    if b"Checkpoint._from_journal" in start:  # ours, with damaged first bytes
        return (
            f"checkpoint {path!r} is damaged in its first bytes, which say what "
            f"the file is: moved it to {aside!r} without loading it and starting "
            "afresh"
        )
    if b"thread_chunks" in start and b"Checkpoint" in start:
        return (
            f"checkpoint {path!r} was written by thread-chunks 1.x (or is a plain "
            f"pickle of a Checkpoint): moved it to {aside!r} without loading it, "
            "since loading a pickle runs code from it, and starting afresh. If "
            f"you trust it, convert it with Checkpoint.load({aside!r}).save("
            f"{path!r}) before running again, and the run resumes from it"
        )
    return (
        f"checkpoint {path!r} is not a thread-chunks checkpoint: moved it to "
        f"{aside!r} without loading it and starting afresh"
    )


def create_journal(path: str, checkpoint: Checkpoint) -> Journal:
    """Replace ``path`` atomically by a new journal whose header is ``checkpoint``."""
    return Journal.create(
        path, Checkpoint.file_opening(), checkpoint.summary(), checkpoint
    )


def _move_aside(path: str) -> str:
    """Rename an unreadable checkpoint to a free sibling name and return it."""
    for attempt in range(1000):
        target = path + (".unreadable" if attempt == 0 else f".unreadable-{attempt}")
        if not os.path.exists(target):
            os.rename(path, target)
            return target
    raise FileExistsError(f"too many unreadable copies of {path!r} already exist")
