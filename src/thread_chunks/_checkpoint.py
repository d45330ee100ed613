"""The :class:`Checkpoint`: what a run has computed so far, as saved on disk.

``Checkpoint`` is a ``saveable_objects.SaveableObject``: it keeps that
package's contract (``save``, ``load``, ``update_save``, the path rules, a
file that ``pickle.load`` reads), but writes through the checkpoint file
format (``_journal``): atomically, every result in a frame of its own, so
that one unreadable result costs only itself. The failures of calls are kept
beside the results, as :class:`CallFailure` records.

Its data and rules are those of ``_store.CheckpointData``, in which a run
keeps its checkpoint: a run never imports this module, nor saveable-objects
(nor numpy, which saveable-objects imports).
"""

from __future__ import annotations

import inspect
import json
import os
import pickle
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from saveable_objects import SaveableObject

from ._identity import FunctionIdentity
from ._journal import (
    OPENING,
    Commit,
    loads_parameters,
    locate,
    new_key,
    parse_header,
    write_file,
)
from ._pickling import (
    INDEX,
    DamagedFrame,
    check_payload,
    decode_number,
    dumps,
    failure_key,
    is_failure_key,
    key_check,
)
from ._store import (
    CallFailure,
    CheckpointData,
    CheckpointFailedWarning,
    read_checkpoint,
)

__all__ = ["CallFailure", "Checkpoint", "CheckpointFailedWarning"]


class Checkpoint(CheckpointData, SaveableObject):  # type: ignore[misc]
    """The saved progress of one run of :func:`chunk` or :func:`achunk`.

    The arguments are those of thread-chunks 1.x, in the same order.

    Parameters
    ----------
    func_name : str
        The name of the function being run.
    parameters : sequence of sequences or of dicts
        The argument lists: call ``i`` is ``func(*parameters[i])``, or
        ``func(**parameters[i])`` for a dict of keyword arguments.
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
    __signature__: ClassVar[inspect.Signature]

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
        super().__init__(func_name, parameters, output, completed, index, done)
        SaveableObject.__init__(self, None if path is None else os.fspath(path))

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

    def arguments(self) -> dict[str, Any]:
        """The arguments that identify this checkpoint, saved after it.

        Examples
        --------
        >>> Checkpoint("f", [[1]]).arguments()
        {'func_name': 'f', 'parameters': [[1]]}
        """
        return {"func_name": self.func_name, "parameters": self.parameters}

    @property
    def path(self) -> str | None:
        """The file this checkpoint saves to.

        A path without an extension gets ``_Checkpoint.pkl``, as with every
        ``SaveableObject``.

        Examples
        --------
        >>> Checkpoint("f", [[1]]).path is None
        True
        """
        path: str | None = SaveableObject.path.fget(self)
        return path

    @path.setter
    def path(self, value: str | os.PathLike[str] | None) -> None:
        SaveableObject.path.fset(self, None if value is None else os.fspath(value))

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
        resolved = locate(path)
        checkpoint, _ = read_checkpoint(resolved, cls, strict_typing)
        checkpoint.path = resolved if new_path is None else new_path
        return checkpoint

    @classmethod
    def _from_file(cls, *payloads: bytes) -> Self:
        """Rebuild a checkpoint from the frames of its file; ``pickle`` calls this.

        Each frame is checked with the file's key before anything in it is
        unpickled.
        """
        _, header = check_payload(payloads[0], 0)
        summary, key = parse_header(header)
        seed = key_check(key)
        parameters = loads_parameters(check_payload(payloads[1], seed)[1])
        checkpoint = cls.of_file(summary, parameters)
        for payload in payloads[2:]:
            kind, body = check_payload(payload, seed)
            (i,) = INDEX.unpack_from(body) if kind in b"RFID" else (0,)
            if kind == b"R":
                checkpoint.apply({i: pickle.loads(body[INDEX.size :])})
            elif kind in b"ID":
                checkpoint.apply({i: decode_number(kind, body)})
            elif kind == b"F":
                record = json.loads(bytes(body[INDEX.size :]))
                checkpoint.failures[failure_key(i)] = CallFailure.of_record(record)
        return checkpoint

    @classmethod
    def _from_journal(cls, summary: bytes, header: bytes, *records: bytes) -> Self:
        """Rebuild a checkpoint of format 1 (development versions of 2.0).

        Only :meth:`load` and ``thread-chunks convert`` read such a file, never
        a run: the frames of that format carry no key.
        """
        checkpoint: Self = pickle.loads(_format_1_body(header))
        for record in records:
            body = _format_1_body(record)
            index, _ = struct.unpack_from("<qd", body)
            try:
                value = pickle.loads(body[16:])
            except Exception as exc:
                checkpoint.unreadable[index] = f"{type(exc).__name__}: {exc}"
                continue
            if is_failure_key(index):
                checkpoint.failures[failure_key(index)] = CallFailure(*value)
            else:
                checkpoint.apply({index: value})
        return checkpoint

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
        """The first bytes of every checkpoint file: they name its loader.

        Examples
        --------
        >>> Checkpoint.file_opening()[-1:] == b"("  # a pickle's MARK
        True
        """
        return OPENING

    def _save(self, path: str, write_mode: str = "wb") -> None:
        # The one method of saveable-objects' own that is overridden: its
        # ``save`` and the save after ``__init__`` (with path=) both call it.
        failures = [
            (failure_key(i), failure) for i, failure in sorted(self.failures.items())
        ]
        write_file(
            path,
            self.summary(),
            new_key(),
            () if self.function is None else self.function.bound,
            self.parameters,
            commit=Commit(self.done, dict(self.failures)),
            results=[*sorted(self.results.items()), *failures],
            finished=True,
            strict=True,
        )

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

    def __repr__(self) -> str:
        return (
            f"Checkpoint({self.func_name!r}, done={self.done} of "
            f"{len(self.parameters)}, path={self.path!r})"
        )


# saveable-objects' metaclass calls __init__ through __call__(*args, **kwargs),
# which is what inspect.signature(Checkpoint) would show: show __init__'s.
Checkpoint.__signature__ = inspect.Signature(
    list(inspect.signature(Checkpoint.__init__).parameters.values())[1:],
    return_annotation=None,
)


def _format_1_body(payload: bytes) -> memoryview:
    view = memoryview(payload)
    (crc,) = struct.unpack_from("<I", view)
    if zlib.crc32(view[4:]) != crc:
        raise DamagedFrame("checkpoint frame fails its checksum")
    return view[4:]
