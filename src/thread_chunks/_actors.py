"""Worker objects: each running call borrows one actor for its whole duration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["LabelledActor"]

L = TypeVar("L")


class LabelledActor:
    """A worker that runs one function call at a time and labels its result.

    :func:`chunk` and :func:`achunk` hand every call to one actor, and no other
    call uses that actor until the call returns. A subclass can therefore keep
    per-worker state that is not thread-safe (a model, a connection, a scratch
    buffer) without any locking.

    Parameters
    ----------
    func : callable
        The function this actor calls.

    Examples
    --------
    >>> actor = LabelledActor(pow)
    >>> actor.run("first", 2, 10)
    ('first', 1024)

    Per-worker state, created once per worker rather than once per call:

    >>> class Scaler(LabelledActor):
    ...     def __init__(self, factor):
    ...         super().__init__(self.scale)
    ...         self.factor = factor
    ...     def scale(self, x):
    ...         return self.factor * x
    >>> from thread_chunks import chunk
    >>> chunk(None, [[1], [2], [3]], actors=[Scaler(10), Scaler(10)],
    ...       chunk_size=2, progress_bar=False)
    [10, 20, 30]
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self._func = func

    def run(self, label: L, *args: Any) -> tuple[L, Any]:
        """Call the function with ``args`` and return ``(label, result)``.

        Parameters
        ----------
        label : object
            Returned unchanged beside the result, to tell calls apart.
        *args
            The positional arguments of the call.

        Returns
        -------
        tuple
            ``(label, func(*args))``.

        Examples
        --------
        >>> LabelledActor(max).run(7, 3, 5)
        (7, 5)
        """
        return label, self._func(*args)

    def set_func(self, func: Callable[..., Any]) -> None:
        """Replace the function this actor calls.

        Examples
        --------
        >>> actor = LabelledActor(min)
        >>> actor.set_func(max)
        >>> actor.run(0, 3, 5)
        (0, 5)
        """
        self._func = func

    def __repr__(self) -> str:
        name = getattr(self._func, "__qualname__", type(self._func).__qualname__)
        return f"{type(self).__qualname__}({name})"

    def get_func(self) -> Callable[..., Any]:
        """Return the function this actor calls.

        Examples
        --------
        >>> LabelledActor(abs).get_func() is abs
        True
        """
        return self._func
