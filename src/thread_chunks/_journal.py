"""The checkpoint file: its layout, how it is written and read, and its files.

A checkpoint file is one pickle stream of frames (see ``_pickling``), so that
``pickle.load`` and ``saveable_objects`` read a finished one::

    PROTO 5, GLOBAL thread_chunks.Checkpoint._from_file, MARK
    frame H    format, the file's random key, a JSON summary    written once*
    frame P    the parameters (and what is bound to func)       written once
    frames     G and R (results), F (failures), then C          one group a commit
    TUPLE, REDUCE, STOP                                         when finished

(*The header of a new file is written again, at the same length, if its
parameters need the pickle memo after all: before the file is renamed into
place, so that no reader sees the first one.)

A reader walks it by lengths: every frame is found where the structure puts
it, and the parameters are one frame whose inside is never searched. Only
after damage does a reader search for the next frame, and it accepts only a
frame whose check holds with this file's key, found outside every intact
frame: no parameter or result can forge a frame, and no frame of another file
is taken. Each commit ends with a ``C`` frame that says how far the file has
got, readable from the end of the file without walking it.

A file is only ever appended to. A finished file, or one with damage or a
frame cut short, is continued by writing a new file (the intact frames copied,
not decoded) and renaming it over the old one: no reader ever sees a file
shortened under it. Nothing is memory-mapped. Every function here blocks:
callers use worker threads.
"""

from __future__ import annotations

import os
import pickle
import re
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain, compress, repeat
from operator import itemgetter
from typing import IO, TYPE_CHECKING, Any

from ._pickling import (
    HEAD,
    INDEX,
    NUMBER_KINDS,
    PLAIN_TYPES,
    DamagedFrame,
    FrameWriter,
    RowsOutput,
    check_payload,
    decode_group,
    decode_number,
    decode_numbers,
    dump,
    dumps,
    failure_key,
    frame,
    group_size,
    is_failure_key,
    key_check,
    number_check,
    number_group,
    numbers_size,
    plain_group,
    plain_rows_in,
    result_seed,
    write_at,
)

if TYPE_CHECKING:
    from filelock import FileLock

__all__ = [
    "FORMAT",
    "CheckpointLock",
    "Contents",
    "DamagedHeader",
    "Journal",
    "OldFormat",
    "Run",
    "Runs",
    "Summary",
    "columns",
    "keep_copy",
    "locate",
    "lock_path",
    "move_aside",
    "opening",
    "read_contents",
    "read_header",
    "read_last_commit",
    "remove_leftovers",
    "resolve_path",
    "same_pickle",
    "with_default_extension",
    "write_file",
]

FORMAT = 2
"""The version of the file format, in every file's header. Version 1 was the
format of thread-chunks 2.0's development versions, without keys."""

MAGIC = b"thread-chunks checkpoint\n"
_KEY = struct.Struct("<H16s")  # the format's version, the file's key
TAIL = pickle.TUPLE + pickle.REDUCE + pickle.STOP
_COMMIT_SIZE = struct.Struct("<I")  # ends a C frame's body: the frame's size
_HISTORY = 20  # commits kept in each C frame, for the rate
_BELOW_2_32 = 0xFFFFFFFF

LONGEST_SIBLING = 22
"""How many characters the longest file kept beside a checkpoint (a temporary
one: ``.NAME.<16 hex digits>.tmp``) adds to the checkpoint's name."""

BINARY = getattr(os, "O_BINARY", 0)
"""Open flag for binary files: no newline translation on Windows."""

Summary = dict[str, Any]
"""The header's JSON: the format, the function (module, name, fingerprint of
its code) and the number of calls."""


def opening(module: str, qualname: str) -> bytes:
    """The bytes that open a file: a call of ``module.qualname`` on the frames."""
    module_bytes, name = module.encode(), qualname.encode()
    return (
        pickle.PROTO + bytes([5])
        + pickle.SHORT_BINUNICODE + bytes([len(module_bytes)]) + module_bytes
        + pickle.SHORT_BINUNICODE + bytes([len(name)]) + name
        + pickle.STACK_GLOBAL
        + pickle.MARK
    )  # fmt: skip


OPENING = opening("thread_chunks", "Checkpoint._from_file")
"""The first bytes of every checkpoint file of this format."""
OPENING_1 = opening("thread_chunks", "Checkpoint._from_journal")
"""The first bytes of a file of format 1 (development versions of 2.0)."""


class DamagedHeader(pickle.UnpicklingError):
    """The header or the parameters of a checkpoint, which say which run it
    belongs to, are damaged or missing."""


class OldFormat(ValueError):
    """A checkpoint in a format this version does not read as it is."""


_BOUND = struct.Struct("<Q")  # the length of the bound values' pickle
_IN_MEMORY = 64 << 20  # parameters' pickles up to this size are read whole


def write_parameters(
    out: Any,
    bound: Any,
    parameters: Any,
    fast: bool,
    memo: bool | None = None,
    limited: bool = False,
) -> None:
    """Write the body of the ``P`` frame to ``out``: what identifies the calls.

    The pickle of what is bound to the function (a partial's arguments, a
    method's object), after its length, then the parameters' pickle, streamed.
    Writing it and comparing it with a file (:func:`same_pickle`) go through
    here, so equal values give equal bytes. ``fast`` and ``memo``: see
    ``_pickling.dump``. ``limited``: rows pickled without the memo are given
    up once they outgrow plain values (see ``_pickling.RowsOutput``).
    """
    bound_pickle = dumps(bound)
    out.write(_BOUND.pack(len(bound_pickle)))
    out.write(bound_pickle)
    dump(parameters, RowsOutput(out, parameters) if limited else out, fast, memo)


def _write_parameters_frame(
    writer: FrameWriter, bound: Any, parameters: Any, plain_rows: bool
) -> bool:
    """Write a new file's ``P`` frame; return whether it took the pickle memo.

    Rows that are all lists and tuples, the first of them holding plain
    values, are pickled without the memo, which costs a quarter of the time,
    unless that pickle fails (a cycle, say) or outgrows what plain values take
    (``_pickling.RowsOutput``): then, and for any other rows, with the memo.
    There is no pass over what the rows hold before.
    """
    if plain_rows and (not parameters or set(map(type, parameters[0])) <= PLAIN_TYPES):
        try:
            writer.streamed_fast(
                b"P",
                lambda out, fast: write_parameters(
                    out, bound, parameters, fast, memo=False, limited=True
                ),
            )
            return False
        except Exception:
            if writer.io_error:
                raise
    writer.streamed_fast(
        b"P", lambda out, fast: write_parameters(out, bound, parameters, fast, True)
    )
    return True


def _write_start(
    fd: int,
    summary: Summary,
    key: bytes,
    bound: Any,
    parameters: Any,
    plain_rows: bool,
) -> int:
    """Write a new file's opening, header and parameters; return where they end.

    The header says whether the parameters took the pickle memo (see
    :func:`_write_parameters_frame`), so that a resume pickles them the same
    way to compare them. It is written before them, saying what is tried
    first, and again at the same length if they took the memo after all;
    the bytes of a pickle given up are cut off.
    ``plain_rows``: the rows are known to be all lists and tuples.
    """
    plain_rows = plain_rows or plain_rows_in(parameters)
    header = header_frame({**summary, "memo": not plain_rows}, key)
    writer = FrameWriter(fd, write_at(fd, OPENING + header, 0), key_check(key))
    memo = _write_parameters_frame(writer, bound, parameters, plain_rows)
    writer.flush()
    if os.fstat(fd).st_size > writer.offset:
        os.ftruncate(fd, writer.offset)  # what remains of a pickle given up
    if memo and plain_rows:
        again = header_frame({**summary, "memo": True}, key, len(header))
        assert len(again) == len(header)
        write_at(fd, OPENING + again, 0)
    return writer.offset


def memo_of(summary: Mapping[str, Any]) -> bool | None:
    """Whether the file's parameters took the pickle memo, if it says."""
    memo = summary.get("memo")
    return memo if isinstance(memo, bool) else None


def loads_parameters(body: bytes | memoryview) -> tuple[Any, Any, str | None]:
    """``(bound, parameters, error)`` from a checked ``P`` body in memory.

    ``error`` says why the bound values could not be loaded (their class is
    gone, say): the parameters still load, and such a run matches no other.
    """
    view = memoryview(body)
    (length,) = _BOUND.unpack_from(view)
    bound, error = _load_bound(view[_BOUND.size : _BOUND.size + length])
    return bound, pickle.loads(view[_BOUND.size + length :]), error


def _load_bound(data: bytes | memoryview) -> tuple[Any, str | None]:
    try:
        return pickle.loads(data), None
    except Exception as exc:
        return (), f"{type(exc).__name__}: {exc}"


def parse_header(body: bytes | memoryview) -> tuple[Summary, bytes]:
    """The summary and the key in a checked ``H`` body."""
    import json  # here and below: only where a checkpoint file is read or written

    view = memoryview(body)
    if bytes(view[: len(MAGIC)]) != MAGIC:
        raise DamagedHeader("the checkpoint's header is not one")
    version, key = _KEY.unpack_from(view, len(MAGIC))
    if version != FORMAT:
        raise OldFormat(f"format {version}")
    return json.loads(bytes(view[len(MAGIC) + _KEY.size :])), key


def header_frame(summary: Summary, key: bytes, size: int = 0) -> bytes:
    """The ``H`` frame: checked from 0, since the key is inside it.

    ``size``: its size, if more than it needs; the JSON is padded with spaces.
    """
    import json

    body = MAGIC + _KEY.pack(FORMAT, key) + json.dumps(summary).encode()
    body += b" " * (size - HEAD.size - len(body))
    return frame(b"H", body, 0)


def commit_frame(seed: int, info: Mapping[str, Any]) -> bytes:
    """A ``C`` frame holding ``info``, its own size last (to be found from the end)."""
    import json

    text = json.dumps(info, separators=(",", ":")).encode()
    size = HEAD.size + len(text) + _COMMIT_SIZE.size
    return frame(b"C", text + _COMMIT_SIZE.pack(size), seed)


@dataclass
class Commit:
    """What a writer knows at a commit: how far the run has got."""

    done: int
    failures: Mapping[int, Any]
    """The failures of calls not done since, by index (``CallFailure`` s)."""
    history: list[list[float]] = field(default_factory=list)
    """``[time, done]`` of the last commits, for the rate."""
    describe: Callable[[int], str] | None = None
    """A short ``repr`` of the arguments of call ``i``, for its failure."""

    def info(self, now: float) -> dict[str, Any]:
        self.history = [*self.history[-(_HISTORY - 1) :], [now, self.done]]
        first = sorted(self.failures)[:5]
        return {
            "done": self.done,
            "failures": len(self.failures),
            "first_failures": [
                {
                    "index": i,
                    "exception_type": self.failures[i][0],
                    "message": self.failures[i][1],
                    "arguments": "" if self.describe is None else self.describe(i),
                }
                for i in first
            ],
            "time": now,
            "history": self.history,
        }


def failure_json(failure: Sequence[Any]) -> bytes:
    """A failure record as the ``F`` frame keeps it: JSON, never a pickle."""
    import json

    exception_type, message, traceback, attempts, at, *arguments = failure
    record = {
        "exception_type": exception_type,
        "message": message,
        "traceback": traceback,
        "attempts": attempts,
        "time": at,
    }
    if arguments:
        record["arguments"] = arguments[0]
    return json.dumps(record).encode()


Run = tuple[Sequence[int], Sequence[Any]]
"""The results of calls queued or written together: ``(indices, results)``."""
Runs = Sequence[Run]


def columns(runs: Runs) -> tuple[Iterator[int], Iterator[Any]]:
    """The indices of ``runs``, and their results, each as one stream."""
    indices = chain.from_iterable(map(itemgetter(0), runs))
    return indices, chain.from_iterable(map(itemgetter(1), runs))


def groups(runs: Runs, size: int = 0) -> Iterator[tuple[Sequence[int], list[Any], int]]:
    """The results of ``runs`` in groups of at most ``size`` (:data:`GROUP_SIZE`).

    Each group comes as its indices, its results and its largest index. The
    results of a run are taken whole where they fit (``list.extend`` copies
    them in C). A group whose indices are ranges of step 1 that follow one
    another, as most groups' are, has them as one ``range``, with no ``int``
    made for each.
    """
    size = size or GROUP_SIZE
    parts: list[Sequence[int]] = []
    results: list[Any] = []
    for run_indices, run_results in runs:
        start, count = 0, len(run_indices)
        while start < count:
            stop = min(count, start + size - len(results))
            if start == 0 and stop == count:
                parts.append(run_indices)
                results += run_results
            else:
                parts.append(run_indices[start:stop])
                results += run_results[start:stop]
            start = stop
            if len(results) == size:
                yield _group_of(parts, results)
                parts, results = [], []
    if parts:
        yield _group_of(parts, results)


def _group_of(
    parts: Sequence[Sequence[int]], results: list[Any]
) -> tuple[Sequence[int], list[Any], int]:
    """A group of ``groups``: its indices in ``parts`` joined, ``results``, the
    largest index."""
    first = parts[0]
    if type(first) is range and first.step == 1:
        stop = first.stop
        for part in parts[1:]:
            if type(part) is not range or part.step != 1 or part.start != stop:
                break
            stop = part.stop
        else:  # one run of indices after another
            return range(first.start, stop), results, stop - 1
    tops = [
        part[-1] if type(part) is range and part.step > 0 else max(part)
        for part in parts
    ]
    return list(chain.from_iterable(parts)), results, max(tops)


GROUP_SIZE = 4096
"""Results in one group at most: its columns stay in the CPU's cache while
they are woven into frames (twice as fast as 200,000 at once), and a float or
a string among many integers changes the encoding of its group only."""


def _types_of(results: Sequence[Any]) -> set[type]:
    """The types of ``results``, at C speed: counted if they are all of one."""
    kinds = list(map(type, results))
    if kinds and kinds.count(kinds[0]) == len(kinds):
        return {kinds[0]}  # the usual case: fewer steps than a set of them all
    return set(kinds)


class Journal:
    """An open checkpoint file that commits are appended to.

    Use :func:`write_file` to create one, or :meth:`append_to` to continue a
    file that ends cleanly.
    """

    def __init__(
        self, path: str, fd: int, end: int, key: bytes, commit: Commit
    ) -> None:
        self.path = path
        self._fd = fd
        self._end = end
        self.key = key
        self._seed = key_check(key)
        self.commit = commit

    @classmethod
    def append_to(cls, path: str, end: int, key: bytes, commit: Commit) -> Journal:
        """Open ``path``, which ends cleanly at ``end``, to append to it."""
        return cls(path, os.open(path, os.O_RDWR | BINARY), end, key, commit)

    def append(
        self,
        pairs: Sequence[tuple[int, Any]],
        before_commit: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """Append one commit: a frame per result or failure, then a ``C`` frame.

        ``pairs`` are ``(index, result)``, or ``(failure_key(i), failure)``.
        ``before_commit(unpicklable)`` may update :attr:`commit` before its
        frame is written. Fsyncs once. Returns the indices of the results that
        cannot be pickled, whatever their pickling raised: they are left out.
        Only a failed write or sync raises (``OSError``), and the file is then
        cut back to where this commit began (bytes no reader counts yet).
        """
        indices = list(map(itemgetter(0), pairs))
        return self.append_columns(
            indices, list(map(itemgetter(1), pairs)), before_commit
        )

    def append_columns(
        self,
        indices: Sequence[int],
        results: Sequence[Any],
        before_commit: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """:meth:`append` the results ``results`` of the calls ``indices``."""
        return self.append_runs([(indices, results)], before_commit)

    def append_runs(
        self,
        runs: Runs,
        before_commit: Callable[[list[int]], None] | None = None,
    ) -> list[int]:
        """:meth:`append` the results of ``runs``: ``(indices, results)`` each."""
        for indices, results in runs:
            if len(indices) != len(results):
                raise ValueError(
                    f"a run of {len(indices)} indices has {len(results)} results"
                )
        writer = FrameWriter(self._fd, self._end, self._seed)
        unpicklable: list[int] = []
        try:
            unpicklable = self._write_groups(writer, runs)
            if before_commit is not None:
                before_commit(unpicklable)
            writer.raw(commit_frame(self._seed, self.commit.info(time.time())))
            writer.flush()
            if os.fstat(self._fd).st_size > writer.offset:
                os.ftruncate(self._fd, writer.offset)  # a rewound frame's bytes
            os.fsync(self._fd)
        except BaseException:
            os.ftruncate(self._fd, self._end)
            raise
        self._end = writer.offset
        return unpicklable

    def _write_groups(self, writer: FrameWriter, runs: Runs) -> list[int]:
        """Write the frames of the results of ``runs`` (failures: negative keys).

        A group of at most :data:`GROUP_SIZE` at a time, read from the runs as
        it goes: no flat copy of them all, and each group is framed while its
        results are in the CPU's cache. Returns the indices of the results
        that cannot be pickled: they are left out.
        """
        unpicklable: list[int] = []
        for indices, results, largest in groups(runs):
            unpicklable += self._group(writer, indices, results, largest)
        return unpicklable

    def _group(
        self,
        writer: FrameWriter,
        indices: Sequence[int],
        results: Sequence[Any],
        largest: int,
    ) -> list[int]:
        """Write the frames of one group of results (``largest``: its top index)."""
        types = _types_of(results)
        # Failures are tuples: only then look for their negative keys.
        if any(issubclass(t, tuple) for t in types) and min(indices) < 0:
            for k, failure in zip(indices, results, strict=True):
                if is_failure_key(k):
                    body = INDEX.pack(k) + failure_json(failure)
                    writer.raw(frame(b"F", body, self._seed))
            kept = [not is_failure_key(k) for k in indices]
            indices = list(compress(indices, kept))
            results = list(compress(results, kept))
            if not indices:
                return []
            types = set(map(type, results))
        if types <= PLAIN_TYPES and largest <= _BELOW_2_32:
            number = NUMBER_KINDS.get(next(iter(types))) if len(types) == 1 else None
            if number is not None:
                try:  # numbers: 8 bytes each, no pickle
                    writer.raw(number_group(indices, results, number[0], self._seed))
                    return []
                except OverflowError:
                    pass  # an int beyond 64 bits: pickled
            writer.raw(plain_group(indices, results, self._seed))  # C loops only
            return []
        unpicklable: list[int] = []
        for i, result in zip(indices, results, strict=True):
            try:
                writer.result(i, result)
            except Exception:
                if writer.io_error:
                    raise
                unpicklable.append(i)  # the frame took itself back
        return unpicklable

    def deleted(self) -> bool:
        """Whether the file was deleted (its directory too, maybe) since opened."""
        return os.fstat(self._fd).st_nlink == 0

    def finish(self) -> None:
        """Write the last commit and the tail, fsync and close: a plain pickle now."""
        try:
            data = commit_frame(self._seed, self.commit.info(time.time())) + TAIL
            write_at(self._fd, data, self._end)
            os.fsync(self._fd)
        finally:
            self.close()

    def close(self) -> None:
        """Close the file, leaving it as it is (readable, not finished)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def write_file(
    path: str,
    summary: Summary,
    key: bytes,
    bound: Any,
    parameters: Any,
    copy: Callable[[int, int], int] | None = None,
    commit: Commit | None = None,
    then_copy: Callable[[int, int], int] | None = None,
    results: Sequence[tuple[int, Any]] = (),
    finished: bool = False,
    strict: bool = False,
    plain_rows: bool = False,
) -> Journal | None:
    """Atomically replace ``path`` by a new file: header, parameters, results.

    ``bound`` and ``parameters`` are pickled straight to the file, never whole
    in memory, unless ``copy(fd, offset)`` is given: it copies the frames of
    an earlier file (the parameters' frame first) and returns where they end.
    Then ``results`` (as :meth:`Journal.append` takes them) and a commit;
    ``strict``: a result that cannot be pickled raises ``TypeError``, and the
    file at ``path`` stays as it was (else it is left out). ``plain_rows``: the
    rows are known to be all lists and tuples (else that is checked).
    Returns the file open for appending, or ``None`` if ``finished``.
    """
    key_seed = key_check(key)
    commit = commit or Commit(0, {})

    def write(fd: int) -> int:
        if copy is not None:
            end = copy(fd, write_at(fd, OPENING + header_frame(summary, key), 0))
        else:
            end = _write_start(fd, summary, key, bound, parameters, plain_rows)
        if then_copy is not None:  # frames of an earlier file, after these
            end = then_copy(fd, end)
        journal = Journal(path, fd, end, key, commit)
        if results:
            journal._end = end
            writer = FrameWriter(fd, end, key_seed)
            run = (list(map(itemgetter(0), results)), list(map(itemgetter(1), results)))
            unpicklable = journal._write_groups(writer, [run])
            if unpicklable and strict:
                raise TypeError(
                    f"the result of call {unpicklable[0]} cannot be pickled, so "
                    f"the checkpoint cannot be saved to {path!r} whole"
                )
            writer.flush()
            end = writer.offset
            if os.fstat(fd).st_size > end:
                os.ftruncate(fd, end)  # a rewound frame's bytes
        data = commit_frame(key_seed, commit.info(time.time()))
        return write_at(fd, data + TAIL if finished else data, end)

    end = replace_atomically(path, write)
    if finished:
        return None
    return Journal.append_to(path, end, key, commit)


def new_key() -> bytes:
    """A file's random key: 16 bytes."""
    import secrets  # with hmac and hashlib: only for a run with a path

    return secrets.token_bytes(16)


# ---- reading


@dataclass
class Contents:
    """What :func:`read_contents` found in a checkpoint file."""

    summary: Summary
    key: bytes
    parameters_at: tuple[int, int]
    """Where the parameters' pickle is, and how long it is."""
    results: dict[int, Any] = field(default_factory=dict)
    unreadable: dict[int, str] = field(default_factory=dict)
    failures: dict[int, dict[str, Any]] = field(default_factory=dict)
    intact: list[tuple[int, int]] = field(default_factory=list)
    """The byte ranges of intact frames after the parameters, merged."""
    damaged: list[tuple[int, int]] = field(default_factory=list)
    """Byte ranges that are not intact frames, but lie before one."""
    end: int = 0
    """Where the intact frames end."""
    finished: bool = False
    cut_short: bool = False
    """Whether what follows the last intact frame is a frame a crash cut short."""
    tail_damaged: bool = False
    """Whether it is something else: damage at the end of the file."""
    last_commit: dict[str, Any] | None = None
    columns: list[tuple[range | list[int], list[Any]]] = field(default_factory=list)
    """Results of groups of numbers, ``(indices, numbers)``, not yet in
    :attr:`results` (see :meth:`settle`): later in the file than all of them."""

    def settle(self) -> None:
        """Put the results of :attr:`columns` in :attr:`results`."""
        for indices, numbers in self.columns:
            self.results.update(zip(indices, numbers, strict=True))
        self.columns.clear()

    def outputs(self, n: int) -> list[Any] | None:
        """The result of each of ``n`` calls in order, if every one has one.

        Built straight from the columns of numbers, with no dictionary of
        them: a run of consecutive calls is copied as one slice. ``None`` if
        a call has no result. Raises :class:`DamagedHeader` for a result
        beyond the ``n`` calls.
        """
        pieces = [(list(self.results), list(self.results.values())), *self.columns]
        if sum(len(indices) for indices, _ in pieces) < n:
            return None
        outputs: list[Any] = [None] * n
        found = bytearray(n)  # 1 for each call with a result
        for indices, results in pieces:
            if not indices:
                continue
            if type(indices) is range:  # the usual case: one slice
                if indices.stop > n:
                    raise DamagedHeader(f"results for calls beyond the {n} of the run")
                outputs[indices.start : indices.stop] = results
                found[indices.start : indices.stop] = b"\x01" * len(indices)
                continue
            if not 0 <= min(indices) <= max(indices) < n:
                raise DamagedHeader(f"results for calls beyond the {n} of the run")
            deque(map(outputs.__setitem__, indices, results), maxlen=0)
            deque(map(found.__setitem__, indices, repeat(1)), maxlen=0)
        return None if 0 in found else outputs

    @property
    def clean(self) -> bool:
        """Whether the file can be appended to as it is."""
        troubles = (self.finished, self.cut_short, self.tail_damaged, self.damaged)
        return not any(troubles)


def read_contents(file: IO[bytes], load: bool = True, settled: bool = True) -> Contents:
    """Read a checkpoint file of this format from the start, by its structure.

    ``load=False`` checks every frame but unpickles nothing: the results are
    all ``None``, and the parameters are not checked. ``settled=False``
    leaves the results of groups of numbers in :attr:`Contents.columns`.
    Raises :class:`OldFormat` for a file of another format,
    :class:`DamagedHeader` if the header or the parameters are not intact.
    """
    size = os.fstat(file.fileno()).st_size
    summary, key, position = read_header(file)
    seed = key_check(key)
    parameters = _read_head(file, position, size)
    if parameters is None or parameters[0] != b"P":
        raise DamagedHeader(
            "the header of the checkpoint (its parameters, which say which run it "
            "belongs to) is damaged or missing"
        )
    body_at, frame_end = position + HEAD.size, parameters[1]
    if load and not _check_streamed(
        file, body_at, frame_end, parameters[2], b"P", seed
    ):
        raise DamagedHeader(
            "the header of the checkpoint (its parameters, which say which run it "
            "belongs to) fails its checksum: the file is damaged there"
        )
    contents = Contents(summary, key, (body_at, frame_end - body_at))
    _walk(file, contents, frame_end, size, seed, load)
    if settled:
        contents.settle()
    return contents


def read_header(file: IO[bytes]) -> tuple[Summary, bytes, int]:
    """The summary, the key, and where the header ends, of a file of this format.

    Raises :class:`OldFormat` or :class:`DamagedHeader` as
    :func:`read_contents` does. Unpickles nothing.
    """
    start = file.read(max(len(OPENING), len(OPENING_1)))
    if start.startswith(OPENING_1):
        raise OldFormat("format 1")
    if not start.startswith(OPENING):
        raise OldFormat("not a checkpoint of this format")
    file.seek(len(OPENING))
    head = file.read(9)
    if len(head) < 9 or head[:1] != pickle.BINBYTES8:
        raise DamagedHeader("the checkpoint file ends inside its header")
    (length,) = struct.unpack_from("<Q", head, 1)
    if length > 1 << 20:
        raise DamagedHeader("the checkpoint's header is not one")
    payload = file.read(length)
    try:
        kind, body = check_payload(payload, 0)
    except DamagedFrame:
        raise DamagedHeader(
            "the header of the checkpoint, which says which run it belongs to, "
            "fails its checksum: the file is damaged there"
        ) from None
    if kind != b"H":
        raise DamagedHeader("the checkpoint's header is not one")
    summary, key = parse_header(body)
    return summary, key, len(OPENING) + 9 + len(payload)


def _read_head(
    file: IO[bytes], position: int, size: int
) -> tuple[bytes, int, int] | None:
    """The kind, end and check of the frame at ``position``, if it fits the file."""
    file.seek(position)
    head = file.read(HEAD.size)
    if len(head) < HEAD.size or head[:1] != pickle.BINBYTES8:
        return None
    _, length, check, kind = HEAD.unpack(head)
    end: int = position + 9 + length
    if length < HEAD.size - 9 or end > size:
        return None
    return kind, end, check


def _check_streamed(
    file: IO[bytes], start: int, end: int, check: int, kind: bytes, seed: int
) -> bool:
    """Whether the body from ``start`` to ``end`` passes ``check``, read in pieces."""
    file.seek(start)
    crc, left = zlib.crc32(kind, seed), end - start
    while left:
        piece = file.read(min(left, 1 << 20))
        if not piece:
            return False
        crc = zlib.crc32(piece, crc)
        left -= len(piece)
    return crc == check


def _walk(
    file: IO[bytes],
    contents: Contents,
    position: int,
    size: int,
    seed: int,
    load: bool = True,
) -> None:
    """Read every frame from ``position`` on into ``contents``."""
    import json

    while position < size:
        if position + len(TAIL) == size:
            file.seek(position)
            if file.read(len(TAIL)) == TAIL:
                contents.finished = True
                break
        found = _frame_at(file, position, size, seed)
        if found is None:
            following = _next_frame(file, position + 1, size, seed)
            if following is None:
                # A frame a crash cut short runs past the end; a file that
                # ends as a finished one does was damaged instead.
                head = _read_head(file, position, 1 << 62)
                file.seek(size - len(TAIL))
                ends_finished = file.read(len(TAIL)) == TAIL
                cut_short = head is not None and head[1] > size
                contents.cut_short = cut_short and not ends_finished
                contents.tail_damaged = not contents.cut_short
                break
            contents.damaged.append((position, following))
            position = following
            continue
        kind, body, end = found
        _intact(contents, position, end)
        if contents.columns and kind in b"GIDR":  # results in file order
            contents.settle()
        if kind in b"GN":
            group_end = _read_group(file, contents, kind, body, end, size, load)
            if group_end is not None:
                _intact(contents, end, group_end)
                end = group_end
        elif kind in b"ID":
            (i,) = INDEX.unpack_from(body)
            contents.results[i] = decode_number(kind, body) if load else None
            contents.unreadable.pop(i, None)
        elif kind == b"R":
            (i,) = INDEX.unpack_from(body)
            try:
                contents.results[i] = pickle.loads(body[INDEX.size :]) if load else None
            except Exception as exc:
                contents.unreadable[i] = f"{type(exc).__name__}: {exc}"
            else:
                contents.unreadable.pop(i, None)
                contents.failures.pop(i, None)
        elif kind == b"F":
            (k,) = INDEX.unpack_from(body)
            contents.failures[failure_key(k)] = json.loads(bytes(body[INDEX.size :]))
        elif kind == b"C":
            contents.last_commit = json.loads(bytes(body[: -_COMMIT_SIZE.size]))
        position = end
    contents.end = position
    if contents.failures:
        contents.settle()
        for i in contents.results:  # a call that failed once, then succeeded
            contents.failures.pop(i, None)


def _intact(contents: Contents, start: int, end: int) -> None:
    if contents.intact and contents.intact[-1][1] == start:
        contents.intact[-1] = (contents.intact[-1][0], end)
    else:
        contents.intact.append((start, end))
    contents.end = end


def _frame_at(
    file: IO[bytes], position: int, size: int, seed: int
) -> tuple[bytes, memoryview, int] | None:
    """The kind, body and end of the intact frame at ``position``, or ``None``.

    Its check must hold with this file's key: nothing else counts as a frame.
    """
    head = _read_head(file, position, size)
    if head is None or len(head[0]) != 1 or head[0] not in b"GRFCNID":
        return None
    kind, end, check = head
    if end - position > 1 << 31 and kind not in b"RG":
        return None
    body = memoryview(file.read(end - position - HEAD.size))
    if kind in b"RID":
        if len(body) < INDEX.size or (kind != b"R" and len(body) != 16):
            return None
        (index,) = INDEX.unpack_from(body)
        if kind == b"R":
            computed = zlib.crc32(body[INDEX.size :], result_seed(seed, index, kind))
        else:
            computed = number_check(seed, kind, index, bytes(body[INDEX.size :]))
    else:
        computed = zlib.crc32(body, zlib.crc32(kind, seed))
    return (kind, body, end) if computed == check else None


def _read_group(
    file: IO[bytes],
    contents: Contents,
    kind: bytes,
    table: memoryview,
    start: int,
    size: int,
    load: bool,
) -> int | None:
    """Read the results a ``G`` or ``N`` frame lists at C speed; return their end.

    ``None`` if their bytes are not intact: they are then read one by one.
    """
    numbers = kind == b"N"
    end = start + (numbers_size(table) if numbers else group_size(table))
    if end > size:
        return None
    file.seek(start)
    region = file.read(end - start)
    if numbers:
        decoded = decode_numbers(region, table)
    else:
        decoded = decode_group(region, table, load)
    if decoded is None:
        return None
    indices, results = decoded
    if contents.failures or contents.unreadable:
        for i in indices:
            contents.failures.pop(i, None)
            contents.unreadable.pop(i, None)
    if numbers:
        contents.columns.append((indices, results))  # into results when needed
    else:
        contents.results.update(zip(indices, results, strict=True))  # at C speed
    return end


def _next_frame(file: IO[bytes], position: int, size: int, seed: int) -> int | None:
    """Where the next intact frame of this file is after damage, if anywhere.

    Only a frame whose check holds with this file's key counts.
    """
    piece_size = 1 << 20
    while position < size:
        file.seek(position)
        piece = file.read(piece_size + HEAD.size)
        offset = piece.find(pickle.BINBYTES8)
        while 0 <= offset < piece_size:
            candidate = position + offset
            if _frame_at(file, candidate, size, seed) is not None:
                return candidate
            offset = piece.find(pickle.BINBYTES8, offset + 1)
        position += piece_size
    return None


def read_last_commit(file: IO[bytes], seed: int) -> dict[str, Any] | None:
    """The ``C`` frame at the end of the file, or ``None`` if it is not there."""
    import json

    size = os.fstat(file.fileno()).st_size
    file.seek(max(size - len(TAIL), 0))
    if file.read(len(TAIL)) == TAIL:
        size -= len(TAIL)
    if size < _COMMIT_SIZE.size:
        return None
    file.seek(size - _COMMIT_SIZE.size)
    (frame_size,) = _COMMIT_SIZE.unpack(file.read(_COMMIT_SIZE.size))
    if not HEAD.size < frame_size <= min(size, 1 << 20):
        return None
    found = _frame_at(file, size - frame_size, size, seed)
    if found is None or found[0] != b"C" or found[2] != size:
        return None
    info: dict[str, Any] = json.loads(bytes(found[1][: -_COMMIT_SIZE.size]))
    return info


def same_pickle(
    file: IO[bytes],
    at: tuple[int, int],
    bound: Any,
    parameters: Any,
    memo: bool | None = None,
) -> bool:
    """Whether :func:`write_parameters` gives the bytes at ``at`` (offset, length).

    Pickled straight into a comparison with the file, a piece at a time: no
    copy of either is made. Equal bytes mean the same values; unequal ones
    may still be the same values (a set in another order): the caller decides
    those strictly. ``memo``: as the file's header says (:func:`memo_of`).
    """
    start, length = at
    for fast in (True, False):
        file.seek(start)
        comparer = _Comparer(file, length)
        try:
            write_parameters(comparer, bound, parameters, fast, memo)
        except _Differs:
            return False
        except Exception:
            if fast:
                continue  # as written: without the fast pickler (cloudpickle)
            if memo is False:  # no pickle without the memo (a cycle, say)
                return False
            raise
        return comparer.left == 0
    return False


class _Differs(Exception):
    pass


_COMPARED = 1 << 20  # bytes compared at a time, at most


class _Comparer:
    def __init__(self, file: IO[bytes], length: int) -> None:
        self.file = file
        self.left = length

    def write(self, data: Any) -> int:
        if type(data) is bytes and len(data) <= _COMPARED:
            pieces: Iterable[bytes] = (data,)
            size = len(data)
        else:  # as bytes (a memoryview's == is slow), a piece at a time
            view = memoryview(data).cast("B")
            size = len(view)
            pieces = (
                bytes(view[at : at + _COMPARED]) for at in range(0, size, _COMPARED)
            )
        if size > self.left:
            raise _Differs
        for piece in pieces:
            if self.file.read(len(piece)) != piece:
                raise _Differs
        self.left -= size
        return size


class _CheckedReader:
    """Reads a frame's body from a file for ``pickle.load``, checking it as it goes."""

    def __init__(self, file: Any, length: int, crc: int) -> None:
        self.file = file
        self.left = length
        self.crc = crc

    def read(self, n: int = -1) -> bytes:
        n = self.left if n < 0 else min(n, self.left)
        data: bytes = self.file.read(n)
        self.left -= len(data)
        self.crc = zlib.crc32(data, self.crc)
        return data

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")[: self.left]
        n = self.file.readinto(view)
        self.left -= n
        self.crc = zlib.crc32(view[:n], self.crc)
        return int(n)

    def readline(self) -> bytes:
        line: bytes = self.file.readline(self.left)
        self.left -= len(line)
        self.crc = zlib.crc32(line, self.crc)
        return line


def load_parameters(file: IO[bytes], contents: Contents) -> tuple[Any, Any, str | None]:
    """``(bound, parameters, error)`` from the file, read a piece at a time.

    The frame's check held when the file was read (:func:`read_contents`), so
    these are the bytes that were written; see :func:`loads_parameters`.
    """
    start, length = contents.parameters_at
    file.seek(start)
    (bound_length,) = _BOUND.unpack(file.read(_BOUND.size))
    bound, error = _load_bound(file.read(bound_length))
    rest = length - _BOUND.size - bound_length
    if rest < _IN_MEMORY:  # loads many times faster from bytes
        return bound, pickle.loads(file.read(rest)), error
    return bound, pickle.load(_CheckedReader(file, rest, 0)), error


def copy_frames(
    source: IO[bytes], ranges: Sequence[tuple[int, int]]
) -> Callable[[int, int], int]:
    """A ``copy`` for :func:`write_file`: the byte ``ranges`` of ``source``."""

    def copy(fd: int, offset: int) -> int:
        for start, end in ranges:
            source.seek(start)
            left = end - start
            while left:
                piece = source.read(min(left, 1 << 22))
                if not piece:
                    raise OSError(f"the checkpoint being copied ended at {start}")
                offset = write_at(fd, piece, offset)
                left -= len(piece)
        return offset

    return copy


def iter_ranges(contents: Contents) -> Iterator[tuple[int, int]]:
    """The parameters' frame and every intact frame after it, as byte ranges."""
    start, length = contents.parameters_at
    yield start - HEAD.size, start + length
    yield from contents.intact


def replace_atomically(path: str, write: Callable[[int], int]) -> int:
    """Write a temporary file with ``write(fd)``, fsync it, rename it over ``path``.

    The directory is fsynced too, so that after a crash at any instant ``path``
    is either the old file or the new one. Returns what ``write`` returned.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    temp_path = _temporary_path(path)
    # Mode 0o666 less the umask, like any new file (mkstemp would make it 0o600).
    fd = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | BINARY, 0o666)
    try:
        end = write(fd)
        os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp_path, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        os.unlink(temp_path)
        raise
    if os.name == "posix":  # make the rename itself durable
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    return end


def _temporary_path(path: str) -> str:
    import secrets

    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")


def keep_copy(path: str, suffix: str) -> str:
    """Keep a copy of ``path`` as ``path + suffix``; ``path`` stays as it is.

    A hard link where the file system has them (no bytes copied), a copy
    otherwise; either way it replaces an older copy atomically. The caller
    must then replace ``path`` rather than change it in place, or the link
    would change too.
    """
    import shutil

    copy, temp_path = path + suffix, _temporary_path(path)
    try:
        os.link(path, temp_path)
    except OSError:
        shutil.copyfile(path, temp_path)
    os.replace(temp_path, copy)
    return copy


def remove_leftovers(path: str) -> None:
    """Delete temporary files that a run killed while replacing ``path`` left.

    Only names that no other checkpoint's files can have are removed:
    ``.NAME.`` then exactly 16 hex digits then ``.tmp`` (the temporary files
    of ``NAME.part2.pkl`` begin with ``.NAME.`` too). Call it holding the
    checkpoint's lock, so that no run of this checkpoint is writing one.
    """
    directory, name = os.path.split(path)
    pattern = re.compile(re.escape(f".{name}.") + "[0-9a-f]{16}" + re.escape(".tmp"))
    for entry in os.scandir(directory or "."):
        if pattern.fullmatch(entry.name):
            os.unlink(entry.path)


def file_mode() -> int:
    """The mode of a new file here: ``0o666`` less the process's umask.

    Read from ``/proc`` where there is one: setting the umask to read it back
    would change it for every thread for a moment. Elsewhere, the umask the
    process had when thread-chunks was imported.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    return 0o666 & ~_UMASK_AT_IMPORT


def _umask_at_import() -> int:
    umask = os.umask(0o022)  # at import, before any thread of ours makes files
    os.umask(umask)
    return umask


_UMASK_AT_IMPORT = _umask_at_import()


def lock_path(path: str) -> str:
    """The lock file of the checkpoint at ``path``: ``.NAME.lock`` beside it."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.lock")


class CheckpointLock:
    """The lock that keeps a second run from writing the checkpoint at ``path``.

    Taken at once or not at all: a second run fails before computing.
    """

    def __init__(self, path: str) -> None:
        self.path = lock_path(path)
        self._lock = self._take()
        self._file = os.stat(self.path)

    def still_ours(self) -> bool:
        """Whether the lock file at the path is still the one locked."""
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (now.st_dev, now.st_ino) == (self._file.st_dev, self._file.st_ino)

    def _take(self) -> FileLock:
        from filelock import FileLock, Timeout  # only for a run with a path

        lock = FileLock(self.path, timeout=0, thread_local=False, mode=file_mode())
        try:
            lock.acquire()
        except Timeout:
            checkpoint = os.path.join(
                os.path.dirname(self.path), os.path.basename(self.path)[1:-5]
            )
            raise RuntimeError(
                f"checkpoint {checkpoint!r} is being written by another run, in "
                "this process or another; give each run a path of its own"
            ) from None
        return lock

    def take_again(self) -> None:
        """Lock a new lock file at the same path, if ours was deleted, gaplessly.

        The new lock is taken before the old one is released, so that no other
        run can take the path in between. Raises ``RuntimeError`` if another
        run holds the new one.
        """
        if self.still_ours():
            return
        old = self._lock
        os.makedirs(os.path.dirname(self.path) or ".", exist_ok=True)
        self._lock = self._take()
        self._file = os.stat(self.path)
        old.release()

    def release(self) -> None:
        """Release the lock."""
        self._lock.release()


def move_aside(path: str) -> str:
    """Rename an unreadable checkpoint to a free sibling name and return it."""
    for attempt in range(1000):
        target = path + (".unreadable" if attempt == 0 else f".unreadable-{attempt}")
        if not os.path.exists(target):
            os.rename(path, target)
            return target
    raise FileExistsError(f"too many unreadable copies of {path!r} already exist")


def with_default_extension(path: str) -> str:
    """``path``, or with ``_Checkpoint.pkl`` added if it has no extension.

    The rule of saveable-objects for a ``Checkpoint``: ``"run"`` becomes
    ``"run_Checkpoint.pkl"`` and ``"run_"`` becomes ``"run_Checkpoint.pkl"``.
    """
    root, extension = os.path.splitext(path)
    if extension:
        return path
    name = os.path.basename(root)
    return path + ("_" if name and not name.endswith("_") else "") + "Checkpoint.pkl"


def locate(path: str | os.PathLike[str]) -> str:
    """Where the checkpoint at ``path`` is: the one rule of every reader and run.

    ``~`` is expanded, and a path without an extension gets ``_Checkpoint.pkl``
    (see :func:`with_default_extension`). :func:`chunk`, ``Checkpoint.load``,
    :func:`progress` and ``thread-chunks show`` all find the file this way.
    """
    return with_default_extension(os.path.expanduser(os.fspath(path)))


def resolve_path(path: str) -> str:
    """Check ``path`` as a place for a checkpoint; return it with links resolved.

    A path without an extension gets ``_Checkpoint.pkl``, as saveable-objects
    does. Symbolic links are followed once, here: the lock and every write
    then use the file itself, and the link stays. Raises ``ValueError`` for a
    directory, a path below a file, or a name the file system cannot hold with
    the files kept beside it.
    """
    path = os.path.expanduser(path)
    if os.path.isdir(path):
        raise ValueError(
            f"path {path!r} is a directory; pass a file name inside it, such "
            f"as {os.path.join(path, 'checkpoint.pkl')!r}"
        )
    given = locate(path)
    resolved = os.path.realpath(given)
    directory, name = os.path.split(resolved)
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"path {given!r} is below {existing!r}, which is a file, not a "
            "directory; choose a path in a directory"
        )
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(name) + LONGEST_SIBLING > name_max:
        raise ValueError(
            f"path's file name {name!r} has {len(name)} characters, and the "
            f"files kept beside a checkpoint add up to {LONGEST_SIBLING}: more "
            f"than the {name_max} this file system allows. Choose a name of at "
            f"most {name_max - LONGEST_SIBLING} characters"
        )
    return resolved
