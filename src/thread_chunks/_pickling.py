"""The bytes of a checkpoint file: the one serialiser, and frames.

The standard pickle stores functions and classes by reference (module and
name), so a rerun of the same script gets its own classes back: an enum
member read from the checkpoint *is* the script's member. What the standard
pickle cannot reference (a lambda, a function or class defined inside a
function) is stored by value with cloudpickle, object by object, instead of
failing the whole write.

A **frame** is a pickle ``BINBYTES8`` opcode (so that a finished file is still
one pickle stream), the length of what follows, a check, a kind byte, and a
body::

    BINBYTES8 | length (u64) | check (u32) | kind (1 byte) | body

The check is the CRC-32 of the kind and the body *seeded with the file's own
random key* (16 bytes in its header): a frame that data forged, or a frame of
another file, fails it. (An ``I`` or ``D`` frame's check is a keyed fold of
its index and number instead, see :func:`number_check`, computed for many at
once; its group's ``N`` frame holds the CRC-32 of all their bytes.)

The kinds are ``H`` (the header: format, key and a JSON summary), ``P``
(the parameters, one pickle), ``R`` (a result: the call's index, then its
pickle), ``I`` and ``D`` (a result that is an ``int`` or a ``float``: the
index, then 8 bytes), ``G`` and ``N`` (what the ``R``, or ``I``/``D``,
frames that follow hold, so that they are read at C speed), ``F`` (a
failure: the key :func:`failure_key` gives its call, then JSON) and ``C`` (a
commit: JSON about the file so far, readable from its end).
"""

from __future__ import annotations

import functools
import importlib
import io
import os
import pickle
import struct
import sys
import types
import zlib
from array import array
from collections.abc import Callable, Sequence
from itertools import accumulate, chain, repeat
from operator import add, sub, xor
from typing import IO, Any

__all__ = [
    "HEAD",
    "INDEX",
    "NUMBER_KINDS",
    "NUMBER_SIZE",
    "PLAIN_TYPES",
    "PROTOCOL",
    "RESULT",
    "DamagedFrame",
    "FrameWriter",
    "Outgrown",
    "RowsOutput",
    "check_payload",
    "decode_group",
    "decode_number",
    "decode_numbers",
    "dumps",
    "failure_key",
    "frame",
    "group_size",
    "is_failure_key",
    "key_check",
    "number_check",
    "number_group",
    "numbers_in",
    "numbers_size",
    "plain_group",
    "plain_rows_in",
    "result_seed",
    "rows_of_numbers",
    "write_at",
]

PROTOCOL = 5

HEAD = struct.Struct("<cQIc")
"""A frame's head: ``BINBYTES8``, the length of the rest (check, kind and
body), the check, and the kind."""
INDEX = struct.Struct("<q")
"""What a result or failure body starts with: the call's index, or
:func:`failure_key` of it."""
_REST = HEAD.size - 9  # what the length counts before the body: check and kind
_DIRECT = 1 << 16  # writes at least this long skip the buffer

PLAIN_TYPES = frozenset({int, float, str, bytes, bool, type(None)})
"""Types whose pickles are the same from any pickler, and always load."""


class DamagedFrame(pickle.UnpicklingError):
    """A frame whose check does not match its bytes."""


class _Pickler(pickle.Pickler):
    """A standard pickler that falls back to cloudpickle per object."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType | type) and not _importable(obj):
            import cloudpickle  # only for what the standard pickle cannot store

            return pickle.loads, (cloudpickle.dumps(obj, protocol=PROTOCOL),)
        return NotImplemented


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` to bytes, as every object of a checkpoint is pickled."""
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=PROTOCOL).dump(obj)
    return buffer.getvalue()


def dump(
    obj: Any, file: IO[bytes] | Any, fast: bool = False, memo: bool | None = None
) -> None:
    """Pickle ``obj`` to ``file`` (anything with a ``write`` method), streamed.

    ``fast``: with the standard pickler alone, all in C, which fails on what
    only cloudpickle can store; the caller then starts again without it. Both
    give the same bytes for what both can pickle.

    ``memo``: whether to use the pickle memo. Without it, pickling costs a
    quarter of the time, but a value held in many places is written in each,
    and a cycle raises ``ValueError``. If not given: only for what is not
    rows of numbers (a list of lists or tuples of ``int``, ``float``,
    ``bool`` and ``None``), which need no references and hold no cycle. The
    same object always gives the same bytes.
    """
    pickler = (pickle.Pickler if fast else _Pickler)(file, protocol=PROTOCOL)
    if memo is None:
        memo = not rows_of_numbers(obj)
    if not memo:
        pickler.fast = True  # no memo
    pickler.dump(obj)


_NUMBER_TYPES = frozenset({int, float, bool, type(None)})


def rows_of_numbers(obj: Any) -> bool:
    """Whether ``obj`` is a list of lists or tuples of numbers: checked in C."""
    return plain_rows_in(obj) and numbers_in(obj)


def numbers_in(rows: list[Sequence[Any]]) -> bool:
    """Whether the lists or tuples ``rows`` hold only numbers: checked in C.

    :func:`rows_of_numbers` for rows already known to be lists and tuples.
    """
    return set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES


def plain_rows_in(obj: Any) -> bool:
    """Whether ``obj`` is a list of exactly lists and tuples: counted in C."""
    if type(obj) is not list:
        return False
    kinds = list(map(type, obj))
    lists = kinds.count(list)  # counted: fewer steps than a set of every type
    return lists == len(kinds) or lists + kinds.count(tuple) == len(kinds)


class Outgrown(Exception):
    """A pickle without the memo outgrew what plain rows take (:class:`RowsOutput`)."""


class RowsOutput:
    """Where rows (lists and tuples) are pickled without the memo, while small.

    Without the memo, a value that many rows hold is written once for each
    of them. Numbers and short strings take at most 12 bytes an item and 4
    a row; a pickle of ``rows`` that would grow beyond 64 bytes a row, then
    beyond that (the items are counted only then), with 64 KiB to spare,
    holds something larger, maybe many times over: :class:`Outgrown` is
    raised before the write that would pass the limit, and the caller pickles
    the rows with the memo instead. So the bytes of rows without the memo are
    at most a few times those of their values, and the choice depends on the
    rows alone.
    """

    def __init__(self, out: Any, rows: Sequence[Sequence[Any]]) -> None:
        self._out = out
        self._rows = rows
        self._items_counted = False
        self._limit = _ROWS_SPARE + _PER_ROW * len(rows)
        self.written = 0

    def write(self, data: Any) -> int:
        """Pass ``data`` on, unless it would pass the limit: :class:`Outgrown`."""
        size = len(data) if type(data) is bytes else memoryview(data).nbytes
        if self.written + size > self._limit and not self._items_counted:
            self._items_counted = True
            items = sum(map(len, self._rows))
            each = _ROWS_SPARE + _PER_PLAIN_ROW * len(self._rows) + _PER_ITEM * items
            self._limit = max(self._limit, each)
        if self.written + size > self._limit:
            raise Outgrown(f"more than {self._limit} bytes")
        written: int = self._out.write(data)
        self.written += written
        return written


_PER_ROW = 64  # bytes a row that need no count of the items
_PER_PLAIN_ROW, _PER_ITEM = 4, 12  # an int in 64 bits takes 10, a float 9
_ROWS_SPARE = 1 << 16


def _importable(obj: types.FunctionType | type) -> bool:
    """Whether ``module.qualname`` of ``obj`` finds ``obj`` itself."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if not isinstance(module_name, str) or "<" in qualname:
        return False  # "<lambda>", "<locals>"
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj


def failure_key(index: int) -> int:
    """The key under which the failure of call ``index`` is stored: negative.

    The same function decodes it back: ``failure_key(failure_key(i)) == i``.
    """
    return -index - 1


def is_failure_key(key: int) -> bool:
    """Whether a frame's key is that of a failure (see :func:`failure_key`)."""
    return key < 0


def key_check(key: bytes) -> int:
    """The CRC-32 of a file's key: the seed of every check in that file."""
    return zlib.crc32(key)


def frame(kind: bytes, body: bytes, seed: int) -> bytes:
    """One whole frame of ``kind`` around ``body``, checked from ``seed``."""
    check = zlib.crc32(body, zlib.crc32(kind, seed))
    return HEAD.pack(pickle.BINBYTES8, _REST + len(body), check, kind) + body


RESULT = struct.Struct("<cQIcq")
"""The head of an ``R`` frame with the call's index: the index opens its body."""
_MASK = 0xFFFFFFFF


def result_seed(seed: int, index: int, kind: bytes = b"R") -> int:
    """Where the check of a result frame (``R``, ``I``, ``D``) of call ``index`` starts.

    Its check is the CRC-32 of its pickle (or of its number's 8 bytes) from
    here: a change of the index or of the kind changes it, with no bytes to
    hash for them.
    """
    return (zlib.crc32(kind, seed) ^ index ^ (index >> 32)) & _MASK


NUMBER_KINDS = {int: (b"I", "q"), float: (b"D", "d")}
"""Results of these exact types are framed as 8 bytes, not as pickles."""
_NUMBERS = struct.Struct("<QIcq")
"""An ``N`` frame's body: how many frames, the CRC-32 of their bytes, ``I`` or
``D``, and the first of their indices if they are a ``range`` (else -1). Files
written before that field have the first three only."""
_NUMBERS_BEFORE = struct.Struct("<QIc")
_NUMBER = {kind: struct.Struct(f"<cQIcq{code}") for kind, code in NUMBER_KINDS.values()}
NUMBER_SIZE = 30
"""The size of an ``I`` or ``D`` frame: its head, the index, the number."""


def number_group(
    indices: Sequence[int], results: Sequence[Any], kind: bytes, seed: int
) -> bytes:
    """An ``N`` frame, then an ``I`` (or ``D``) frame per number: no pickle at all.

    For results that are all ``int`` in 64 bits (``OverflowError`` otherwise),
    or all ``float``; indices below 2**32. Each number has its frame and its
    check (:func:`number_check`); the ``N`` frame holds their count, the
    CRC-32 of their bytes, and for a ``range`` of indices its first, so that
    a reader takes them all in at once (:func:`decode_numbers`).

    Made column by column, at C speed: each field is written into its place
    in every frame at once, with a strided slice, and the checks of all the
    frames are computed at once, as the bytes of big integers.
    """
    count = len(indices)
    if len(results) != count:
        raise ValueError(f"{count} indices for {len(results)} results")
    code = "q" if kind == b"I" else "d"
    try:  # little-endian, as the file's numbers are
        value_bytes = _packer(count, code).pack(*results)
    except struct.error:
        array(code, results)  # the error as it is: OverflowError, TypeError
        raise
    index_bytes = _index_bytes(indices)
    # Byte k of every number, of every index, of every check: "planes".
    value_planes = [value_bytes[k::8] for k in range(8)]
    index_planes = [index_bytes[k::4] for k in range(4)]
    checks = _check_planes(value_planes, index_planes, _number_seed(seed, kind))
    # Every frame: BINBYTES8 | length | check | kind | index | number. The
    # constant bytes first, then each plane in its place.
    region = bytearray(_NUMBER_FRAME.pack(pickle.BINBYTES8, NUMBER_SIZE - 9, kind))
    region *= count
    for offset, planes in ((9, checks), (14, index_planes), (22, value_planes)):
        for k, plane in enumerate(planes):
            region[offset + k :: NUMBER_SIZE] = plane
    first = indices[0] if type(indices) is range and indices.step == 1 and count else -1
    table = _NUMBERS.pack(count, zlib.crc32(region), kind, first)
    return frame(b"N", table, seed) + region


_NUMBER_FRAME = struct.Struct("<cQ4xc16x")  # a number's frame, its constant bytes


@functools.lru_cache(maxsize=8)
def _packer(count: int, code: str) -> struct.Struct:
    """Packs ``count`` numbers of ``code`` (``q`` or ``d``), little-endian."""
    return struct.Struct(f"<{count}{code}")


def _index_bytes(indices: Sequence[int]) -> bytes:
    """The indices, below 2**32, as 4 little-endian bytes each.

    Consecutive ones (a ``range``) without making an ``int`` of each: the
    bytes of ``0, 1, 2, ...`` read as one big integer, plus the first index
    times ``1`` in every 4-byte place (no place carries into the next).
    """
    count = len(indices)
    if count and type(indices) is range and indices.step == 1:
        first, last = indices[0], indices[-1]
        if first < 0 or last >= 1 << 32:
            raise ValueError("indices of number groups must be below 2**32")
        ones, steps = _counting(count, 4)
        return (first * ones + steps).to_bytes(4 * count, "little")
    try:
        order = array("I", indices)
    except OverflowError:
        raise ValueError("indices of number groups must be below 2**32") from None
    if sys.byteorder != "little":
        order.byteswap()
    return order.tobytes()


def number_check(seed: int, kind: bytes, index: int, number: bytes) -> int:
    """The check of an ``I`` or ``D`` frame: ``number`` is its 8 bytes.

    The XOR of the number's two 32-bit halves and the index's, each rotated
    by a different number of bytes (so that no two of them cancel a flipped
    bit in the same place), and of a seed drawn from the file's key: data
    that does not know the key cannot forge it, and any damage to one field
    changes it. Unlike a CRC-32, many of them are computed at once, at C
    speed (see :func:`number_group`); the ``N`` frame's CRC-32 still covers
    every byte of the group.
    """
    index_bytes = (index & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    value_planes = [number[k : k + 1] for k in range(8)]
    index_planes = [index_bytes[k : k + 1] for k in range(8)]
    checks = _check_planes(value_planes, index_planes, _number_seed(seed, kind))
    return int.from_bytes(b"".join(checks), "little")


def _number_seed(seed: int, kind: bytes) -> bytes:
    return zlib.crc32(kind, seed).to_bytes(4, "little")


_ROTATED = {8: (3, 0, 1, 2), 16: (2, 3, 0, 1), 24: (1, 2, 3, 0)}
"""Where each byte of a 32-bit word rotated left by so many bits comes from."""


def _check_planes(
    value_planes: Sequence[bytes], index_planes: Sequence[bytes], seed: bytes
) -> list[bytes]:
    """The 4 byte planes of the checks of frames (see :func:`number_check`).

    ``value_planes``: the 8 planes of the numbers; ``index_planes``: the 4
    planes of indices below 2**32, or all 8. Each byte of a check is the XOR
    of 3 or 4 whole planes, as big integers: C loops only.
    """
    count = len(value_planes[0])
    sources = [
        (value_planes, (0, 1, 2, 3)),  # the number's low half
        (value_planes, tuple(4 + k for k in _ROTATED[8])),  # its high half
        (index_planes, _ROTATED[16]),  # the index's low half
    ]
    if len(index_planes) == 8:  # its high half, 0 below 2**32
        sources.append((index_planes, tuple(4 + k for k in _ROTATED[24])))
    checks = []
    for b in range(4):
        plane = int.from_bytes(seed[b : b + 1] * count, "little")
        for planes, picks in sources:
            plane ^= int.from_bytes(planes[picks[b]], "little")
        checks.append(plane.to_bytes(count, "little"))
    return checks


def decode_numbers(
    region: bytes, table: bytes | memoryview
) -> tuple[range | list[int], list[Any]] | None:
    """The indices and the numbers of the frames an ``N`` frame (``table``) lists.

    ``None`` if their bytes are not those that were written. Each column is
    gathered from its byte planes and converted at C speed; indices that
    follow one another, as most groups' do, come back as a ``range``: from
    the table, when it names the first (the frames' bytes, which hold them
    too, are those that were written: their CRC-32 says so).
    """
    count, check, kind = _NUMBERS_BEFORE.unpack_from(table)
    first = -1 if len(table) < _NUMBERS.size else _NUMBERS.unpack_from(table)[3]
    if len(region) != NUMBER_SIZE * count or zlib.crc32(region) != check:
        return None
    value_bytes = bytearray(8 * count)
    for k in range(8):
        value_bytes[k::8] = region[22 + k :: NUMBER_SIZE]
    values = array("q" if kind == b"I" else "d")
    values.frombytes(value_bytes)
    if sys.byteorder != "little":
        values.byteswap()
    if first >= 0:
        return range(first, first + count), values.tolist()
    index_bytes = bytearray(8 * count)
    for k in range(8):
        index_bytes[k::8] = region[14 + k :: NUMBER_SIZE]
    first = int.from_bytes(index_bytes[:8], "little", signed=True)
    ones, steps = _counting(count)
    if int.from_bytes(index_bytes, "little") == first * ones + steps and first >= 0:
        return range(first, first + count), values.tolist()
    indices = array("q")
    indices.frombytes(index_bytes)
    if sys.byteorder != "little":
        indices.byteswap()
    return indices.tolist(), values.tolist()


@functools.lru_cache(maxsize=8)
def _counting(count: int, width: int = 8) -> tuple[int, int]:
    """For ``count`` words of ``width`` bytes (4 or 8), little-endian: 1 in
    each, and 0, 1, 2, ... in each, as integers.

    The words of indices ``first, first + 1, ...`` make the integer
    ``first * ones + steps`` (no word carries into the next): one comparison
    tells a run of indices, one sum writes one.
    """
    ones = int.from_bytes((b"\x01" + bytes(width - 1)) * count, "little")
    steps = array("q" if width == 8 else "I", range(count))
    if sys.byteorder != "little":
        steps.byteswap()
    return ones, int.from_bytes(steps.tobytes(), "little")


def numbers_size(table: bytes | memoryview) -> int:
    """How many bytes the frames that an ``N`` frame lists take."""
    count: int = _NUMBERS_BEFORE.unpack_from(table)[0]
    return NUMBER_SIZE * count


def decode_number(kind: bytes, body: bytes | memoryview) -> Any:
    """The number in the body of an ``I`` or ``D`` frame (after its index)."""
    return struct.unpack_from("<q" if kind == b"I" else "<d", body, INDEX.size)[0]


def plain_group(indices: Sequence[int], results: Sequence[Any], seed: int) -> bytes:
    """A ``G`` frame, then the ``R`` frames of results of :data:`PLAIN_TYPES`.

    Made with C loops only. Each result has a frame of its own, checked on its
    own, so that damage costs only the results it touches; the ``G`` frame
    lists their indices, the lengths of their pickles, the CRC-32 of all their
    bytes, and all the results in one pickle, so that a reader takes them all
    in at once while they are intact. Indices must be below 2**32
    (``ValueError`` otherwise).
    """
    pickles = list(map(pickle.dumps, results, repeat(PROTOCOL)))
    sizes = array("Q", map(len, pickles))
    order = array("q", indices)
    seed_r = zlib.crc32(b"R", seed)
    if order and (max(order) > _MASK or min(order) < 0):
        raise ValueError("indices of plain groups must be below 2**32")
    # As result_seed: the index's high half is 0 here.
    checks = map(zlib.crc32, pickles, map(xor, order, repeat(seed_r)))
    lengths = map(add, sizes, repeat(RESULT.size - 9))
    heads = map(
        RESULT.pack, repeat(pickle.BINBYTES8), lengths, checks, repeat(b"R"), order
    )
    region = b"".join(chain.from_iterable(zip(heads, pickles, strict=True)))
    table = _GROUP.pack(len(order), zlib.crc32(region)) + order.tobytes()
    # And, for a small group, all the results in one pickle, which loads many
    # times faster than one pickle each; the R frames stay, each checked on
    # its own, and large groups are read from them.
    together = b""
    if len(region) < _TOGETHER:
        together = pickle.dumps(list(results), PROTOCOL)
    return frame(b"G", table + sizes.tobytes() + together, seed) + region


_GROUP = struct.Struct("<QI")  # how many results, the CRC-32 of their frames
_TOGETHER = 1 << 20  # groups of fewer bytes also hold their results in one pickle


def group_size(table: bytes | memoryview) -> int:
    """How many bytes the frames that a ``G`` frame's body lists take."""
    (count, _) = _GROUP.unpack_from(table)
    sizes = array("Q")
    sizes.frombytes(bytes(table[_GROUP.size + 8 * count : _GROUP.size + 16 * count]))
    total: int = sum(sizes) + RESULT.size * count
    return total


def decode_group(
    region: bytes | memoryview,
    table: bytes | memoryview,
    load: bool = True,
) -> tuple[list[int], list[Any]] | None:
    """Decode the ``R`` frames that a ``G`` frame's body (``table``) lists.

    ``region`` holds exactly those frames. Returns their indices and results
    (all ``None`` unless ``load``), or ``None`` if their bytes are not those
    that were written (the caller then reads them one by one, each checked on
    its own). Every loop runs in C.
    """
    count, check = _GROUP.unpack_from(table)
    if zlib.crc32(region) != check:
        return None
    order = array("q")
    order.frombytes(bytes(table[_GROUP.size : _GROUP.size + 8 * count]))
    indices = order.tolist()
    if not load:
        return indices, [None] * count
    together = table[_GROUP.size + 16 * count :]
    if not together:  # a large group: one pickle each
        sizes = array("Q")
        sizes.frombytes(
            bytes(table[_GROUP.size + 8 * count : _GROUP.size + 16 * count])
        )
        view = memoryview(region)
        ends = list(accumulate(map(add, sizes, repeat(RESULT.size))))
        pickles = map(view.__getitem__, map(slice, map(sub, ends, sizes), ends))
        loads: Any = pickle.loads
        return indices, list(map(loads, pickles))
    results: list[Any] = pickle.loads(together)
    if len(results) != count:
        return None
    return indices, results


class FrameWriter:
    """Writes frames from ``offset`` on: small writes gathered, large ones direct.

    Pickling writes to it as to a file, so a large object is pickled straight
    to the disk, never whole in memory. The head of each frame (length and
    check) is filled in when the frame is sealed, so a frame is valid only once
    all its bytes are there. ``io_error`` tells a failed write apart from a
    failure to pickle.
    """

    def __init__(self, fd: int, offset: int, seed: int) -> None:
        self.fd = fd
        self.flushed = offset  # where the gathered bytes go in the file
        self.pending = bytearray()
        self.seed = seed
        self.crc = 0
        self.io_error = False

    @property
    def offset(self) -> int:
        """Where the next byte goes."""
        return self.flushed + len(self.pending)

    def write(self, data: Any) -> int:
        """Append ``data`` to the frame being written (pickle calls this)."""
        if type(data) is not bytes:
            data = memoryview(data).cast("B")
        self.crc = zlib.crc32(data, self.crc)
        if len(data) < _DIRECT:
            self.pending += data
        else:
            self.flush()
            self.flushed = self._write_at(data, self.flushed)
        return len(data)

    def raw(self, data: bytes) -> None:
        """Append bytes that are whole frames already (see :func:`plain_group`)."""
        if len(data) < _DIRECT:
            self.pending += data
        else:
            self.flush()
            self.flushed = self._write_at(data, self.flushed)

    def flush(self) -> None:
        """Write what is gathered."""
        if self.pending:
            self.flushed = self._write_at(self.pending, self.flushed)
            self.pending.clear()

    def result(self, index: int, obj: Any) -> None:
        """Write the ``R`` frame of the result ``obj`` of call ``index``.

        If ``obj`` cannot be pickled, the frame is taken back and the error
        raised: the next frame goes where this one began.
        """
        begin = self.offset
        for fast in (True, False):
            self.pending += bytes(RESULT.size)  # the head, filled in when sealed
            self.crc = result_seed(self.seed, index)
            try:
                dump(obj, self, fast)
                break
            except BaseException:
                if not self.io_error:
                    self._rewind(begin)
                if self.io_error or not fast:
                    raise
        length = self.offset - begin - 9
        self._seal(begin, RESULT.pack(pickle.BINBYTES8, length, self.crc, b"R", index))

    def streamed_fast(
        self, kind: bytes, fill: Callable[[FrameWriter, bool], None]
    ) -> None:
        """:meth:`streamed` with ``fill(self, fast=True)``, else with ``False``.

        :class:`Outgrown` is raised as it is: the other would outgrow too.
        """
        try:
            self.streamed(kind, lambda out: fill(out, True))
        except Exception as exc:
            if self.io_error or isinstance(exc, Outgrown):
                raise
            self.streamed(kind, lambda out: fill(out, False))

    def streamed(self, kind: bytes, fill: Callable[[FrameWriter], None]) -> None:
        """Write one frame of ``kind`` whose body ``fill(self)`` writes.

        If ``fill`` raises, the frame is taken back and the error raised.
        """
        begin = self.offset
        self.pending += bytes(HEAD.size)  # the head, filled in when sealed
        self.crc = zlib.crc32(kind, self.seed)
        try:
            fill(self)
        except BaseException:
            if not self.io_error:
                self._rewind(begin)
            raise
        length = self.offset - begin - 9
        self._seal(begin, HEAD.pack(pickle.BINBYTES8, length, self.crc, kind))

    def _seal(self, begin: int, head: bytes) -> None:
        """Put ``head`` at ``begin``, in the buffer or in the file."""
        if begin >= self.flushed:
            at = begin - self.flushed
            self.pending[at : at + len(head)] = head
        else:
            self._write_at(head, begin)

    def _rewind(self, begin: int) -> None:
        """Drop what was written from ``begin`` on: it is written over next."""
        if begin >= self.flushed:
            del self.pending[begin - self.flushed :]
        else:
            self.pending.clear()
            self.flushed = begin

    def _write_at(self, data: bytes | bytearray | memoryview, offset: int) -> int:
        try:
            return write_at(self.fd, data, offset)
        except OSError:
            self.io_error = True
            raise


def write_at(fd: int, data: bytes | bytearray | memoryview, offset: int) -> int:
    """Write all of ``data`` at ``offset``; return the offset after it.

    ``lseek`` and ``write`` rather than ``pwrite``, which Windows lacks; one
    thread at a time writes to a file.
    """
    view = memoryview(data)
    os.lseek(fd, offset, os.SEEK_SET)
    while view:
        written = os.write(fd, view)
        offset += written
        view = view[written:]
    return offset


def check_payload(payload: bytes | memoryview, seed: int) -> tuple[bytes, memoryview]:
    """The kind and body of a frame's payload (what follows its length).

    Raises :class:`DamagedFrame` unless its check matches, from ``seed``.
    """
    view = memoryview(payload)
    if len(view) < _REST:
        raise DamagedFrame("a checkpoint frame is cut short")
    (check,) = struct.unpack_from("<I", view)
    kind, body = bytes(view[4:5]), view[5:]
    if kind in (b"I", b"D") and len(body) == NUMBER_SIZE - HEAD.size:
        (index,) = INDEX.unpack_from(body)
        computed = number_check(seed, kind, index, bytes(body[INDEX.size :]))
    elif kind == b"R" and len(body) >= INDEX.size:
        (index,) = INDEX.unpack_from(body)
        computed = zlib.crc32(body[INDEX.size :], result_seed(seed, index, kind))
    else:
        computed = zlib.crc32(body, zlib.crc32(kind, seed))
    if computed != check:
        raise DamagedFrame("a checkpoint frame fails its check")
    return kind, body
