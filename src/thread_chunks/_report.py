"""How far a checkpoint has got, read cheaply: :func:`progress`.

Only the summary frame and each frame's head and index are read, never a
result: polling a checkpoint of gigabytes every second while a run writes it
costs little. The file is opened read-only and its lock is never taken, so
reading never gets in the way of a run.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._checkpoint import Checkpoint
from ._journal import lock_path
from ._pickling import FRAME_HEAD, LENGTH_HEAD, META, failure_key, is_failure_key

__all__ = ["Progress", "progress"]

RATE_WINDOW = 60.0
"""Seconds of the most recent writes from which the rate is measured."""


@dataclass(frozen=True)
class Progress:
    """How far the run of a checkpoint has got, as :func:`progress` reads it.

    Attributes
    ----------
    path : str
    function : str
        The name of the function the checkpoint belongs to.
    done : int
        How many calls have completed.
    total : int
        How many calls the run has.
    failures : int
        How many calls failed and have not succeeded since.
    first_failures : tuple
        The first few failures: ``(index, exception type, message)``.
    running : bool or None
        Whether a run holds the checkpoint's lock now (``None``: unknown).
    size_bytes : int
    last_write : datetime.datetime or None
        When a result or a failure was last written (UTC).
    rate_per_s : float or None
        Calls completed per second lately, while a run goes on.
    eta_s : float or None
        Seconds until every call is done at that rate.

    Examples
    --------
    >>> from thread_chunks import chunk, progress
    >>> _ = chunk(abs, [[-1], [-2]], path=tmp / "p.pkl", progress_bar=False)
    >>> report = progress(tmp / "p.pkl")
    >>> report.function, report.done, report.total, report.running
    ('abs', 2, 2, False)
    """

    path: str
    function: str
    done: int
    total: int
    failures: int
    first_failures: tuple[tuple[int, str, str], ...]
    running: bool | None
    size_bytes: int
    last_write: datetime | None
    rate_per_s: float | None
    eta_s: float | None

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON data (times as ISO 8601 strings).

        Examples
        --------
        >>> from thread_chunks import chunk, progress
        >>> _ = chunk(abs, [[-1]], path=tmp / "j.pkl", progress_bar=False)
        >>> sorted(progress(tmp / "j.pkl").as_json())[:4]
        ['done', 'eta_s', 'failures', 'first_failures']
        """
        data = {name: getattr(self, name) for name in self.__dataclass_fields__}
        data["last_write"] = (
            None if self.last_write is None else self.last_write.isoformat()
        )
        data["first_failures"] = [list(failure) for failure in self.first_failures]
        return data


def progress(path: str | os.PathLike[str]) -> Progress:
    """Read how far the checkpoint at ``path`` has got, without loading results.

    Parameters
    ----------
    path : str or os.PathLike
        A checkpoint file, finished or being written.

    Returns
    -------
    Progress

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    ValueError
        If the file is not a checkpoint written by thread-chunks 2.

    Examples
    --------
    >>> from thread_chunks import chunk, progress
    >>> _ = chunk(divmod, [[7, 2], [9, 4]], path=tmp / "d.pkl", progress_bar=False)
    >>> progress(tmp / "d.pkl").done
    2
    """
    resolved = os.path.realpath(os.fspath(path))
    opening = Checkpoint.file_opening()
    with open(resolved, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        if file.read(len(opening)) != opening:
            raise ValueError(f"{os.fspath(path)!r} is not a thread-chunks checkpoint")
        summary_frame = _next_frame(file, size)
        if summary_frame is None:
            raise ValueError(f"{os.fspath(path)!r} ends inside its header")
        summary = pickle.loads(summary_frame[4:])
        _next_frame(file, size)  # the header, skipped
        done, failures, times = _walk(file, size)
    rate = eta = None
    running = _locked(resolved)
    total = int(summary["total"])
    if running and len(times) > 1:
        recent = [t for t in times if t >= times[-1] - RATE_WINDOW]
        span = recent[-1] - recent[0]
        if span > 0:
            rate = (len(recent) - 1) / span
            eta = (total - len(done)) / rate if rate else None
    failed = {i: failure for i, failure in failures.items() if i not in done}
    return Progress(
        path=os.fspath(path),
        function=str(summary["function"]),
        done=len(done),
        total=total,
        failures=len(failed),
        first_failures=tuple(
            (i, failed[i][0], failed[i][1]) for i in sorted(failed)[:5]
        ),
        running=running,
        size_bytes=size,
        last_write=None if not times else datetime.fromtimestamp(max(times), UTC),
        rate_per_s=rate,
        eta_s=eta,
    )


def _next_frame(file: Any, size: int) -> bytes | None:
    """Read the payload of the frame here (unchecked), or ``None`` at the end."""
    start = file.tell()
    head = file.read(LENGTH_HEAD.size)
    if len(head) < LENGTH_HEAD.size or head[:1] != pickle.BINBYTES8:
        return None
    _, length = LENGTH_HEAD.unpack(head)
    if start + LENGTH_HEAD.size + length > size:
        return None
    payload: bytes = file.read(length)
    return payload


def _walk(
    file: Any, size: int
) -> tuple[set[int], dict[int, tuple[str, str]], list[float]]:
    """Read the index and time of every result frame, skipping the results."""
    done: set[int] = set()
    failures: dict[int, tuple[str, str]] = {}
    times: list[float] = []
    while True:
        start = file.tell()
        head = file.read(FRAME_HEAD.size + META.size)
        if len(head) < FRAME_HEAD.size + META.size or head[:1] != pickle.BINBYTES8:
            break
        _, length = LENGTH_HEAD.unpack_from(head)
        end = start + LENGTH_HEAD.size + length
        if end > size:
            break  # a write still under way
        index, written_at = META.unpack_from(head, FRAME_HEAD.size)
        times.append(written_at)
        if not is_failure_key(index):
            done.add(index)
            failures.pop(index, None)
        else:  # a failure: plain data, small
            body = file.read(end - file.tell())
            exception_type, message, *_ = pickle.loads(body)
            failures[failure_key(index)] = (exception_type, message)
        file.seek(end)
    return done, failures, sorted(times)


def _locked(path: str) -> bool | None:
    """Whether a run holds the lock of the checkpoint at ``path``, never taking it.

    Read from ``/proc/locks`` on Linux; ``None`` elsewhere.
    """
    try:
        lock = os.stat(lock_path(path))
    except FileNotFoundError:
        return False
    try:
        with open("/proc/locks") as locks:
            table = locks.read()
    except OSError:
        return None
    device = f"{os.major(lock.st_dev):02x}:{os.minor(lock.st_dev):02x}:{lock.st_ino}"
    return any(device in line.split() for line in table.splitlines())
