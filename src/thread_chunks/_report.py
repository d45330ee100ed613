"""How far a checkpoint has got, read cheaply: :func:`progress`.

Only the header and the last commit's frame, at the end of the file, are
read, and nothing is unpickled: polling a checkpoint of gigabytes every second
while a run writes it costs little, and a crafted file runs no code. The file
is opened read-only and its lock is never taken, so reading never gets in the
way of a run.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ._journal import (
    Commit,
    DamagedHeader,
    OldFormat,
    locate,
    lock_path,
    read_contents,
    read_header,
    read_last_commit,
)
from ._pickling import key_check

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
        The first few failures: ``(index, exception type, message,
        arguments)``, the arguments as a short ``repr``.
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
    first_failures: tuple[tuple[int, str, str, str], ...]
    running: bool | None
    size_bytes: int
    last_write: datetime | None
    rate_per_s: float | None
    eta_s: float | None

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON data (times as ISO 8601 strings).

        Each of the first failures is an object: ``index``,
        ``exception_type``, ``message`` and ``arguments``.

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
        data["first_failures"] = [
            {
                "index": index,
                "exception_type": kind,
                "message": message,
                "arguments": arguments,
            }
            for index, kind, message, arguments in self.first_failures
        ]
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
    given = os.fspath(path)
    resolved = os.path.realpath(locate(given))
    if not stat.S_ISREG(os.stat(resolved).st_mode):  # a FIFO would block a read
        raise ValueError(f"{given!r} is not a regular file, so not a checkpoint")
    with open(resolved, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        try:
            summary, key, _ = read_header(file)
        except (OldFormat, DamagedHeader) as exc:
            raise ValueError(
                f"{given!r} is not a checkpoint this version reads ({exc})"
            ) from None
        info = read_last_commit(file, key_check(key))
        if info is None:  # a commit cut short by a crash: walk, unpickling nothing
            info = _walked(file)
    total = int(summary["total"])
    done = int(info["done"])
    running = _locked(resolved)
    rate = eta = None
    history = [(float(t), int(n)) for t, n in info.get("history", [])]
    recent = [(t, n) for t, n in history if t >= history[-1][0] - RATE_WINDOW]
    if running and len(recent) > 1 and recent[-1][0] > recent[0][0]:
        rate = (recent[-1][1] - recent[0][1]) / (recent[-1][0] - recent[0][0])
        eta = (total - done) / rate if rate else None
    at = info.get("time")
    last_write = None if at is None else datetime.fromtimestamp(at, UTC)
    return Progress(
        path=given,
        function=str(summary["function"]),
        done=done,
        total=total,
        failures=int(info["failures"]),
        first_failures=tuple(
            (
                int(f["index"]),
                str(f["exception_type"]),
                str(f["message"]),
                str(f.get("arguments", "")),
            )
            for f in info["first_failures"]
        ),
        running=running,
        size_bytes=size,
        last_write=last_write,
        rate_per_s=rate,
        eta_s=eta,
    )


def _walked(file: Any) -> dict[str, Any]:
    """What a commit would say, from every frame of the file (no result loaded)."""
    file.seek(0)
    contents = read_contents(file, load=False)
    commit = Commit(
        len(contents.results),
        {
            i: (record["exception_type"], record["message"])
            for i, record in contents.failures.items()
        },
    )
    last = contents.last_commit or {}
    commit.history = list(last.get("history", []))
    info = commit.info(float(last.get("time", 0.0)) or os.fstat(file.fileno()).st_mtime)
    return info


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
