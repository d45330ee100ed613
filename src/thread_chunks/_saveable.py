"""Everything that makes a checkpoint a ``saveable_objects.SaveableObject``.

``saveable-objects`` saves an object by pickling it over the old file and
appends the pickled arguments after it. :class:`SaveableCheckpoint` keeps that
contract (``save``, ``load``, ``update_save``, the path rules, a file that
``pickle.load`` reads), but writes through the journal format: atomically,
every result in a pickle of its own, so that one unreadable result costs only
itself.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping
from typing import Any, Self, TypeVar

from saveable_objects import SaveableObject

from ._failure import CallFailure
from ._frames import Record, Scan, decode_frame, decode_record, opening
from ._identity import FunctionIdentity
from ._journal import read_journal, write_snapshot
from ._pickling import dumps

__all__ = ["SaveableCheckpoint", "read_checkpoint"]

C = TypeVar("C", bound="SaveableCheckpoint")


class SaveableCheckpoint(SaveableObject):  # type: ignore[misc]
    """The ``saveable_objects`` side of :class:`~thread_chunks.Checkpoint`."""

    results: dict[int, Any]
    failures: dict[int, Any]
    func_name: str
    parameters: list[Any]
    function: FunctionIdentity | None
    unreadable: dict[int, str]
    """The calls whose saved result could not be loaded: index to the error."""

    def apply(self, results: Mapping[int, Any]) -> None:
        raise NotImplementedError

    def arguments(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def path(self) -> str | None:
        """The file this checkpoint saves to."""
        path: str | None = self._path
        return path

    @path.setter
    def path(self, value: str | os.PathLike[str] | None) -> None:
        self._path = None if value is None else self._updatepathroot(os.fspath(value))

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        new_path: str | None = None,
        strict_typing: bool = True,
    ) -> Self:
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
        >>> from thread_chunks import Checkpoint
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
    def _from_journal(cls, summary: bytes, header: bytes, *records: bytes) -> Self:
        """Rebuild a checkpoint from the frames of its file; pickle calls this."""
        checkpoint: Self = pickle.loads(decode_frame(header))
        for record in records:
            checkpoint.apply_record(decode_record(decode_frame(record)))
        return checkpoint

    def apply_record(self, record: Record) -> None:
        """Add the result of one journal frame, or note why it cannot be loaded."""
        index, _, result, error = record
        if index < 0:  # a failure of call -index - 1, as plain data
            if error is None:
                self.failures[-index - 1] = CallFailure(*result)
        elif error is None:
            self.apply({index: result})
        else:
            self.unreadable[index] = error

    def _loaded(self, blobs: Mapping[int, bytes]) -> dict[int, Any]:
        results = {}
        for i, blob in blobs.items():
            try:
                results[i] = pickle.loads(blob)
            except Exception as exc:
                self.unreadable[i] = f"{type(exc).__name__}: {exc}"
        return results

    @classmethod
    def file_opening(cls) -> bytes:
        """The first bytes of a file of this class: they name its loader."""
        return opening(cls.__module__, f"{cls.__qualname__}._from_journal")

    def _save(self, path: str, write_mode: str = "wb") -> None:
        write_snapshot(
            path, self.file_opening(), self.summary(), self, self.arguments()
        )

    def summary(self) -> dict[str, Any]:
        """What the first frame of the file says: readable without the rest."""
        return {"function": self.func_name, "total": len(self.parameters)}

    def update_save(self, path: str | None = None) -> bool:
        """Save atomically, the arguments included; the same as :meth:`save`.

        Examples
        --------
        >>> from thread_chunks import Checkpoint
        >>> checkpoint = Checkpoint("f", [[1]])
        >>> checkpoint.update_save(tmp / "f.pkl")
        True
        """
        self.save(path)
        return True

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("unreadable", None)
        state["results"] = {i: dumps(r) for i, r in self.results.items()}
        if self.function is not None:
            state["function"] = self.function.to_state()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.unreadable = {}
        if "results" not in state:  # a checkpoint pickled by thread-chunks 1.x
            output, completed = state.pop("output"), state.pop("completed")
            state.pop("done", None)  # derived from the results now
            results = {i: output[i] for i, done in enumerate(completed) if done}
            self.__dict__.update(state, results=results, function=None, failures={})
            return
        blobs = state.pop("results")
        function = state.pop("function", None)
        self.__dict__.update(state)
        self.function = (
            None if function is None else FunctionIdentity.from_state(function)
        )
        self.results = self._loaded(blobs)


def read_checkpoint(
    path: str, cls: type[C], strict_typing: bool = True
) -> tuple[C, Scan | None]:
    """Read the checkpoint file at ``path`` with every result saved in it.

    Returns the checkpoint and the :class:`Scan` of the file (where new frames
    go, what is damaged), or ``None`` for a file in another format (a plain
    pickle of a checkpoint).
    """
    with open(path, "rb") as file:
        journal = read_journal(file, cls.file_opening())
        if journal is None:
            file.seek(0)
            checkpoint: C = cls._load(file, None, strict_typing)
            return checkpoint, None
    header, records, scan = journal
    if strict_typing and not isinstance(header, cls):
        raise TypeError(
            f"{path!r} holds a {type(header).__name__}, not a {cls.__name__}"
        )
    for record in records:
        header.apply_record(record)
    return header, scan
