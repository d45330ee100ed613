"""Turning task-group exception groups back into the exception a user expects."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["unwrapped_exception_groups"]


@contextmanager
def unwrapped_exception_groups() -> Iterator[None]:
    """Re-raise a group holding a single exception as that exception.

    So that ``except KeyboardInterrupt`` or ``except ValueError`` works for
    callers on every backend, where task groups would wrap it.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if type(group) not in (BaseExceptionGroup, ExceptionGroup):
            raise  # a group of our own making, such as errors="defer"'s
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc from exc.__cause__
