"""The record a checkpoint keeps of a call that failed."""

from __future__ import annotations

import time
import traceback
from typing import NamedTuple

__all__ = ["CallFailure"]


class CallFailure(NamedTuple):
    """Why a call failed, as a checkpoint keeps it until the call succeeds.

    Attributes
    ----------
    exception_type : str
        The name of the exception's class, such as ``'ValueError'``.
    message : str
        ``str()`` of the exception.
    traceback : str
        The formatted traceback.
    attempts : int
        How many times the call was tried (``1 + retries``).
    time : float
        When it failed last, in seconds since the epoch.

    Examples
    --------
    >>> from thread_chunks import Checkpoint, chunk
    >>> def inverse(x):
    ...     return 1 / x
    >>> chunk(inverse, [[1], [0]], errors="return", path=tmp / "inv.pkl",
    ...       progress_bar=False)
    [1.0, ZeroDivisionError('division by zero')]
    >>> failure = Checkpoint.load(tmp / "inv.pkl").failures[1]
    >>> failure.exception_type, failure.message, failure.attempts
    ('ZeroDivisionError', 'division by zero', 1)
    """

    exception_type: str
    message: str
    traceback: str
    attempts: int
    time: float

    @classmethod
    def of(cls, exc: BaseException, attempts: int) -> CallFailure:
        """Describe ``exc``, raised after ``attempts`` tries."""
        text = "".join(traceback.format_exception(exc))
        return cls(type(exc).__name__, str(exc), text, attempts, time.time())
