"""The :class:`Checkpoint`: what a run has computed so far, as saved on disk."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from saveable_objects import SaveableObject

from ._equality import same_parameters
from ._journal import decode_frame, read_journal, write_snapshot

__all__ = ["Checkpoint", "CheckpointFailedWarning", "read_checkpoint"]


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


class Checkpoint(SaveableObject):  # type: ignore[misc]
    """The saved progress of one run of :func:`chunk` or :func:`achunk`.

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
        The largest parameter index whose call has started, ``-1`` for none.
    path : str or os.PathLike, optional
        Where to save the checkpoint. If given, it is saved at once.

    Attributes
    ----------
    func_name : str
    parameters : list
    output : list
        ``output[i]`` is ``func(*parameters[i])`` where completed, else ``None``.
    completed : list of bool
        ``completed[i]`` tells a result of ``None`` from a call not yet done.
    index : int
    done : int
        The number of completed calls.

    Examples
    --------
    Inspect the progress of a run, during it or after it:

    >>> from thread_chunks import chunk
    >>> results = chunk(divmod, [[7, 2], [9, 4]], path=tmp / "div.pkl",
    ...                 progress_bar=False)
    >>> checkpoint = Checkpoint.load(tmp / "div.pkl")
    >>> checkpoint.func_name, checkpoint.done, checkpoint.output
    ('divmod', 2, [(3, 1), (2, 1)])
    """

    __module__ = "thread_chunks"

    def __init__(
        self,
        func_name: str,
        parameters: Sequence[Sequence[Any]],
        output: Sequence[Any] | None = None,
        completed: Sequence[bool] | None = None,
        index: int = -1,
        path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.func_name = func_name
        self.parameters = list(parameters)
        n = len(self.parameters)
        self.output = [None] * n if output is None else list(output)
        self.completed = [False] * n if completed is None else list(completed)
        self.index = index
        super().__init__(None if path is None else os.fspath(path))

    @property
    def path(self) -> str | None:
        """The file this checkpoint saves to."""
        path: str | None = self._path
        return path

    @path.setter
    def path(self, value: str | os.PathLike[str] | None) -> None:
        self._path = None if value is None else self._updatepathroot(os.fspath(value))

    @property
    def done(self) -> int:
        """The number of completed calls."""
        return sum(self.completed)

    def matches(self, func_name: str, parameters: Sequence[Sequence[Any]]) -> bool:
        """Return whether this checkpoint belongs to ``func_name`` over ``parameters``.

        Examples
        --------
        >>> Checkpoint("f", [[1, 2]]).matches("f", [(1, 2)])
        True
        >>> Checkpoint("f", [[1, 2]]).matches("f", [[2, 1]])
        False
        """
        return self.func_name == func_name and same_parameters(
            self.parameters, parameters
        )

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        new_path: str | None = None,
        strict_typing: bool = True,
    ) -> Checkpoint:
        """Load the latest saved state from ``path``, including every appended result.

        Parameters
        ----------
        path : str or os.PathLike
            The checkpoint file.
        new_path : str, optional
            A path to give the loaded checkpoint instead of ``path``.
        strict_typing : bool, optional
            Raise ``TypeError`` if the file does not hold a ``Checkpoint``.

        Returns
        -------
        Checkpoint

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        pickle.UnpicklingError, EOFError, TypeError
            If the file is not a checkpoint.

        Notes
        -----
        Loading unpickles the file, which can run any code: load only
        checkpoints that you (or code you trust) wrote.

        Examples
        --------
        >>> Checkpoint("f", [[1]], path=tmp / "f.pkl").done
        0
        >>> Checkpoint.load(tmp / "f.pkl").output
        [None]
        """
        resolved = cls._updatepathroot(os.fspath(path))
        checkpoint, _ = read_checkpoint(resolved, cls, strict_typing)
        checkpoint.path = resolved if new_path is None else new_path
        return checkpoint

    @classmethod
    def _from_journal(cls, header: bytes, *records: bytes) -> Checkpoint:
        """Rebuild a checkpoint from the frames of its file; pickle calls this."""
        checkpoint: Checkpoint = decode_frame(header)
        for record in records:
            checkpoint.apply(*decode_frame(record))
        return checkpoint

    def apply(self, indices: Sequence[int], results: Sequence[Any], index: int) -> None:
        """Record ``results[k]`` as the output of call ``indices[k]``, for each k."""
        for i, result in zip(indices, results, strict=True):
            self.output[i] = result
            self.completed[i] = True
        self.index = max(self.index, index)

    def arguments(self) -> dict[str, Any]:
        """The arguments that identify this checkpoint, saved after the snapshot."""
        return {"func_name": self.func_name, "parameters": self.parameters}

    def _save(self, path: str, write_mode: str = "wb") -> None:
        write_snapshot(path, self, self.arguments())

    def update_save(self, path: str | None = None) -> bool:
        """Save atomically, the arguments included; same as :meth:`save`."""
        self.save(path)
        return True

    def __getstate__(self) -> dict[str, Any]:
        # Only completed results are stored, so a fresh checkpoint costs nothing
        # per call beyond its parameters.
        state = self.__dict__.copy()
        completed = state.pop("completed")
        output = state.pop("output")
        state["results"] = {i: output[i] for i, done in enumerate(completed) if done}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        results = state.pop("results")
        self.__dict__.update(state)
        n = len(self.parameters)
        self.output = [None] * n
        self.completed = [False] * n
        for i, result in results.items():
            self.output[i] = result
            self.completed[i] = True


def read_checkpoint(
    path: str, cls: type[Checkpoint] = Checkpoint, strict_typing: bool = True
) -> tuple[Checkpoint, int | None]:
    """Read the checkpoint file at ``path`` with every result saved in it.

    Returns the checkpoint and the offset where new records may be appended,
    or ``None`` for a file in another format (a plain pickle of a checkpoint).
    """
    with open(path, "rb") as file:
        journal = read_journal(file)
        if journal is None:
            file.seek(0)
            checkpoint: Checkpoint = cls._load(file, None, strict_typing)
            return checkpoint, None
    header, records, end = journal
    if strict_typing and not isinstance(header, cls):
        raise TypeError(
            f"{path!r} holds a {type(header).__name__}, not a {cls.__name__}"
        )
    for record in records:
        header.apply(*record)
    return header, end
