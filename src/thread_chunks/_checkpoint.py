"""The :class:`Checkpoint`: what a run has computed so far, as saved on disk."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._equality import same_parameters
from ._failure import CallFailure
from ._identity import FunctionIdentity, identify
from ._saveable import SaveableCheckpoint

__all__ = ["Checkpoint", "CheckpointFailedWarning"]


class CheckpointFailedWarning(Warning):
    """A checkpoint could not be read or written; the computation goes on.

    Results are never lost because of this warning: they are still returned.
    What it means is that a rerun may have to compute some of them again.

    Examples
    --------
    Stop a run whose checkpoint cannot be saved, instead of carrying on:

    >>> import warnings
    >>> from thread_chunks import chunk
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("error", CheckpointFailedWarning)
    ...     chunk(abs, [[-1]], path=tmp / "strict.pkl", progress_bar=False)
    [1]
    """

    __module__ = "thread_chunks"


class Checkpoint(SaveableCheckpoint):
    """The saved progress of one run of :func:`chunk` or :func:`achunk`.

    The arguments are those of thread-chunks 1.x, in the same order.

    Parameters
    ----------
    func_name : str
        The name of the function being run.
    parameters : sequence of sequences
        The argument lists: call ``i`` is ``func(*parameters[i])``.
    output : list, optional
        The results so far, ``None`` where not completed. Defaults to all ``None``.
    completed : list of bool, optional
        Which calls have completed. Defaults to all ``False``.
    index : int, optional
        How far the run has got: one more than the largest completed index.
        Defaults to that value.
    done : int, optional
        The number of completed calls; if given, it must agree with ``completed``.
    path : str or os.PathLike, optional
        Where to save the checkpoint. If given, it is saved at once.

    Attributes
    ----------
    func_name : str
    parameters : list
    results : dict
        The completed results by call index: the one source of truth, from
        which ``output``, ``completed`` and ``done`` are derived.
    index : int
        ``len(parameters)`` after a complete run, as in thread-chunks 1.x.
    unreadable : dict
        The calls whose saved result could not be loaded, with the error: they
        count as not done, and a rerun computes them again.
    failures : dict
        The calls that failed, each with its :class:`CallFailure`, kept until
        the call succeeds.

    Raises
    ------
    ValueError
        If ``output`` or ``completed`` has not one entry per argument list, or
        ``done`` disagrees with ``completed``.

    Examples
    --------
    Inspect the progress of a run, during it or after it:

    >>> from thread_chunks import chunk
    >>> results = chunk(divmod, [[7, 2], [9, 4]], path=tmp / "div.pkl",
    ...                 progress_bar=False)
    >>> checkpoint = Checkpoint.load(tmp / "div.pkl")
    >>> checkpoint
    Checkpoint('divmod', done=2 of 2, path='.../div.pkl')
    >>> checkpoint.output, checkpoint.index
    ([(3, 1), (2, 1)], 2)
    """

    __module__ = "thread_chunks"

    def __init__(
        self,
        func_name: str,
        parameters: Sequence[Sequence[Any]],
        output: Sequence[Any] | None = None,
        completed: Sequence[bool] | None = None,
        index: int | None = None,
        done: int | None = None,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.func_name = func_name
        self.parameters = list(parameters)
        n = len(self.parameters)
        output = [None] * n if output is None else list(output)
        completed = [False] * n if completed is None else list(completed)
        for name, values in (("output", output), ("completed", completed)):
            if len(values) != n:
                raise ValueError(
                    f"{name} must have one entry per argument list: got "
                    f"{len(values)} for {n} parameters"
                )
        if done is not None and done != sum(map(bool, completed)):
            raise ValueError(
                f"done={done} disagrees with completed, which has "
                f"{sum(map(bool, completed))} calls done; leave out done"
            )
        self.results: dict[int, Any] = {i: output[i] for i in range(n) if completed[i]}
        self.index = max(self.results, default=-1) + 1 if index is None else index
        self.unreadable: dict[int, str] = {}
        self.failures: dict[int, CallFailure] = {}
        self.function: FunctionIdentity | None = None
        super().__init__(None if path is None else os.fspath(path))

    @property
    def output(self) -> list[Any]:
        """``output[i]`` is ``func(*parameters[i])`` where completed, else ``None``."""
        results = self.results
        return [results.get(i) for i in range(len(self.parameters))]

    @property
    def completed(self) -> list[bool]:
        """``completed[i]`` tells a result of ``None`` from a call not yet done."""
        results = self.results
        return [i in results for i in range(len(self.parameters))]

    @property
    def done(self) -> int:
        """The number of completed calls."""
        return len(self.results)

    def matches(
        self,
        func: str | Callable[..., Any] | FunctionIdentity,
        parameters: Sequence[Sequence[Any]],
    ) -> bool:
        """Return whether this checkpoint belongs to ``func`` over ``parameters``.

        ``func`` is a function, or only its name (as thread-chunks 1.x did).
        A checkpoint written by a run records where its function is defined
        and what is bound to it (a partial's arguments, a method's object):
        a function is then the same only if all of that is. Parameters are
        compared strictly, by value; see the Checkpointing guide.

        Examples
        --------
        >>> Checkpoint("f", [[1, 2]]).matches("f", [(1, 2)])
        True
        >>> Checkpoint("f", [[1, 2]]).matches("f", [[2, 1]])
        False
        >>> Checkpoint("f", [[0.0]]).matches("f", [[-0.0]])
        False
        """
        if isinstance(func, str):
            same_function = func == self.func_name
        else:
            if not isinstance(func, FunctionIdentity):
                func = identify(func)
            if self.function is None:  # made by hand, or by 1.x: the name only
                same_function = func.name == self.func_name
            else:
                same_function = self.function.same_function(func)
        return same_function and same_parameters(self.parameters, parameters)

    def apply(self, results: Mapping[int, Any]) -> None:
        """Record each ``results[i]`` as the output of call ``i``.

        Examples
        --------
        >>> checkpoint = Checkpoint("f", [[1], [2], [3]])
        >>> checkpoint.apply({1: "b"})
        >>> checkpoint.output, checkpoint.index
        ([None, 'b', None], 2)
        """
        self.results.update(results)
        if self.failures:
            for i in results:
                self.failures.pop(i, None)
        if results:
            self.index = max(self.index, max(results) + 1)

    def arguments(self) -> dict[str, Any]:
        """The arguments that identify this checkpoint, saved after it.

        Examples
        --------
        >>> Checkpoint("f", [[1]]).arguments()
        {'func_name': 'f', 'parameters': [[1]]}
        """
        return {"func_name": self.func_name, "parameters": self.parameters}

    def __repr__(self) -> str:
        return (
            f"Checkpoint({self.func_name!r}, done={self.done} of "
            f"{len(self.parameters)}, path={self.path!r})"
        )
