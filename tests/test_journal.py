"""The checkpoint file: appended commits, torn tails, finishing, group commit."""

from __future__ import annotations

import itertools
import os
import pickle
import struct
import threading
import time
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from saveable_objects import SaveableObject

from tests.helpers import RunChunk
from thread_chunks import Checkpoint, CheckpointFailedWarning, chunk, progress
from thread_chunks._journal import Journal, groups, new_key, write_file

N = 8


def build_journal(path: Path) -> list[tuple[int, set[int]]]:
    """Write a journal record by record; return (file size, saved calls) after each."""
    header = Checkpoint("f", [[i] for i in range(N)])
    journal = write_file(str(path), header.summary(), new_key(), (), header.parameters)
    assert journal is not None
    sizes: list[tuple[int, set[int]]] = [(path.stat().st_size, set())]
    saved: set[int] = set()
    for batch in ([0, 1], [2], [3, 4, 5], [6]):
        journal.append([(i, f"result {i}" * (i + 1)) for i in batch])
        saved |= set(batch)
        sizes.append((path.stat().st_size, set(saved)))
    journal.close()
    return sizes


def saved_calls(checkpoint: Checkpoint) -> set[int]:
    return {i for i, done in enumerate(checkpoint.completed) if done}


def test_load_replays_every_record(tmp_path: Path) -> None:
    path = tmp_path / "journal.pkl"
    build_journal(path)
    checkpoint = Checkpoint.load(path)
    assert saved_calls(checkpoint) == {0, 1, 2, 3, 4, 5, 6}
    assert checkpoint.output[4] == "result 4" * 5
    assert checkpoint.output[7] is None
    assert checkpoint.index == 7  # one more than the largest index saved


def test_truncation_at_every_offset_of_the_last_records_loads_the_prefix(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.pkl"
    sizes = build_journal(path)
    data = path.read_bytes()
    cut = tmp_path / "cut.pkl"
    start = sizes[1][0]  # every offset after the first write
    for offset in range(start, len(data) + 1):
        cut.write_bytes(data[:offset])
        # Every result of the writes before the cut, then those of the write
        # that was cut whose frames are whole: a prefix of its batch.
        before = max(saved for size, saved in sizes if size <= offset)
        after = min((saved for size, saved in sizes if size > offset), default=before)
        loaded = saved_calls(Checkpoint.load(cut))
        assert before <= loaded <= after, offset
        batch = sorted(after - before)
        assert sorted(loaded - before) == batch[: len(loaded - before)], offset


def test_truncation_inside_the_finishing_tail_loads_everything(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    chunk(str.upper, [["a"], ["b"]], progress_bar=False, path=path)
    data = path.read_bytes()
    tail = data.rindex(b"tR.")
    cut = tmp_path / "cut.pkl"
    for offset in range(tail, len(data) + 1):
        cut.write_bytes(data[:offset])
        assert Checkpoint.load(cut).output == ["A", "B"], offset


@settings(max_examples=200, deadline=None)
@given(position=st.floats(0, 1, exclude_max=True), flip=st.integers(1, 255))
def test_a_damaged_last_record_is_ignored(
    tmp_path_factory: pytest.TempPathFactory, position: float, flip: int
) -> None:
    path = tmp_path_factory.mktemp("damaged") / "journal.pkl"
    sizes = build_journal(path)
    data = bytearray(path.read_bytes())
    start, end = sizes[-2][0], sizes[-1][0]
    data[start + int(position * (end - start))] ^= flip
    path.write_bytes(bytes(data))
    # The damage costs at most the results of the frames it touches.
    assert sizes[-2][1] <= saved_calls(Checkpoint.load(path)) <= sizes[-1][1]


def test_a_resumed_run_appends_after_the_valid_prefix(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "journal.pkl"
    sizes = build_journal(path)
    data = path.read_bytes()
    (commit,) = struct.unpack_from("<I", data, len(data) - 4)  # the last C frame
    path.write_bytes(data[: sizes[-1][0] - commit - 3])  # the last result is torn
    calls: list[int] = []

    def f(i: int) -> str:
        calls.append(i)
        return f"result {i}" * (i + 1)

    f.__qualname__ = "f"
    out = run_chunk(f, [[i] for i in range(N)], progress_bar=False, path=path)
    assert sorted(calls) == [6, 7]
    assert out == [f"result {i}" * (i + 1) for i in range(N)]
    assert Checkpoint.load(path).output == out


def test_finished_file_is_one_plain_pickle_holding_the_parameters_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    parameters = [[b"a parameter" * 1000, 2], [b"another" * 1000, 4]]
    out = chunk(divmod_len, parameters, progress_bar=False, path=path)
    with open(path, "rb") as file:
        checkpoint = pickle.load(file)
        assert file.read() == b""  # nothing follows: no second copy of anything
    assert checkpoint.output == out
    assert checkpoint.parameters == parameters
    assert path.read_bytes().count(b"a parameter" * 1000) == 1


def divmod_len(data: bytes, n: int) -> tuple[int, int]:
    return divmod(len(data), n)


def test_resumed_and_refinished_file_still_loads_with_saveable_objects(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    plain = SaveableObject.load(str(path))
    assert plain.output == [1, 2]


def test_a_plain_pickled_checkpoint_is_refused_but_can_be_converted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    old = Checkpoint("abs", [[-1], [-2]], output=[1, None], completed=[True, False])
    path.write_bytes(pickle.dumps(old))
    calls: list[int] = []

    def absolute(x: int) -> int:
        calls.append(x)
        return abs(x)

    absolute.__qualname__ = "abs"
    with pytest.raises(ValueError, match=r"convert it with: thread-chunks convert"):
        chunk(absolute, [[-1], [-2]], progress_bar=False, path=path)
    assert calls == []  # refused before any call, the file left as it is
    Checkpoint.load(path).save(str(path))  # the conversion, in Python
    assert chunk(absolute, [[-1], [-2]], progress_bar=False, path=path) == [1, 2]
    assert calls == [-2]
    assert Checkpoint.load(path).output == [1, 2]


def test_save_writes_atomically_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = tmp_path / "saved.pkl"
    Checkpoint("f", [[1], [2]], output=[3, None], completed=[True, False]).save(
        str(path)
    )
    assert Checkpoint.load(path).output == [3, None]
    assert SaveableObject.load(str(path)).completed == [True, False]
    chunk(abs, [[-5]], progress_bar=False, path=tmp_path / "run.pkl")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".run.pkl.lock", "run.pkl", "saved.pkl"]


def test_workers_never_wait_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_chunk: RunChunk
) -> None:
    disk = threading.Event()
    stuck = threading.Event()
    writes: list[list[int]] = []
    append = Journal.append_runs

    def slow_append(self: Journal, runs: Any, before: Any = None) -> Any:
        writes.append([i for indices, _ in runs for i in indices])
        stuck.set()
        assert disk.wait(timeout=10), "the disk was never released"
        return append(self, runs, before)

    monkeypatch.setattr(Journal, "append_runs", slow_append)
    n = 30

    def f(i: int) -> int:
        if i == 1:  # from here on, the first write is stuck on the disk
            assert stuck.wait(timeout=10)
        if i == n - 1:
            # Every other call has completed while the first write is stuck.
            assert len(writes) == 1
            disk.set()
        return i

    path = tmp_path / "checkpoint.pkl"
    out = run_chunk(
        f, [[i] for i in range(n)], chunk_size=1, progress_bar=False, path=path
    )
    assert out == list(range(n))
    assert len(writes) >= 2  # the results queued meanwhile went in later writes
    assert sorted(i for batch in writes for i in batch) == list(range(n))
    assert Checkpoint.load(path).output == out


@pytest.mark.parametrize(  # a second long run: asyncio's timing is chunk's
    "run_chunk", ["chunk", "achunk-trio"], indirect=True
)
def test_checkpoint_every_spaces_the_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_chunk: RunChunk
) -> None:
    every = 0.25
    times: list[float] = []
    append = Journal.append_runs

    def timed(self: Journal, runs: Any, before: Any = None) -> Any:
        times.append(time.monotonic())
        return append(self, runs, before)

    def f(i: int) -> int:
        threading.Event().wait(0.01)  # the run lasts at least one second
        return i

    monkeypatch.setattr(Journal, "append_runs", timed)
    path = tmp_path / "checkpoint.pkl"
    parameters = [[i] for i in range(100)]
    out = run_chunk(
        f, parameters, chunk_size=1, progress_bar=False, path=path,
        checkpoint_every=every,
    )  # fmt: skip
    assert Checkpoint.load(path).output == out
    assert len(times) >= 4
    # Every write but the last (which finishes the run) waited the full time;
    # without the option they would be about 2 ms apart.
    gaps = [later - earlier for earlier, later in itertools.pairwise(times[:-1])]
    assert min(gaps) >= every * 0.99


def test_write_errors_warn_keep_results_and_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run_chunk: RunChunk
) -> None:

    append = Journal.append_runs
    failures = [OSError(28, "No space left on device")]

    def full_disk(self: Journal, runs: Any, before: Any = None) -> Any:
        if failures:
            raise failures.pop()
        return append(self, runs, before)

    monkeypatch.setattr(Journal, "append_runs", full_disk)
    path = tmp_path / "checkpoint.pkl"
    with pytest.warns(CheckpointFailedWarning, match="No space left on device"):
        out = run_chunk(abs, [[-i] for i in range(10)], progress_bar=False, path=path)
    assert out == list(range(10))
    assert Checkpoint.load(path).output == out  # retried and saved in the end


def test_a_write_that_fails_after_its_results_were_counted_counts_them_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    append = Journal.append_runs
    failures = [OSError(28, "No space left on device")]

    def fails_at_the_commit(self: Journal, runs: Any, before: Any = None) -> Any:
        def counted_then_failed(unpicklable: list[int]) -> None:
            before(unpicklable)  # the results are counted, then the disk fails
            if failures:
                raise failures.pop()

        return append(self, runs, counted_then_failed)

    monkeypatch.setattr(Journal, "append_runs", fails_at_the_commit)
    path = tmp_path / "checkpoint.pkl"
    with pytest.warns(CheckpointFailedWarning, match="could not write"):
        out = chunk(abs, [[-i] for i in range(300)], chunk_size=2,
                    progress_bar=False, path=path)  # fmt: skip
    assert out == list(range(300))
    assert progress(path).done == 300
    assert Checkpoint.load(path).done == 300


def test_file_mode_follows_the_umask(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


PLAIN = [0, -1, 2**70, -(2**70), True, False, None, 0.0, -0.0, float("nan"),
         float("inf"), 1 / 3, "", "é∑", "x" * 70_000, b"\x00" * 70_000]  # fmt: skip


@given(st.lists(st.one_of(st.integers(), st.floats(), st.text(), st.binary(),
                          st.booleans(), st.none()), max_size=20))  # fmt: skip
@settings(max_examples=50, deadline=None)
def test_plain_groups_are_byte_for_byte_the_framed_pickles(results: list[Any]) -> None:
    """The C-loop frames of plain results are those the general path writes,
    after the ``G`` frame that lists their lengths."""
    import tempfile

    from thread_chunks._pickling import FrameWriter, decode_group, plain_group

    results = PLAIN + results
    indices = list(range(len(results)))
    seed = 12345
    with tempfile.TemporaryFile() as file:
        writer = FrameWriter(file.fileno(), 0, seed)
        for i, result in zip(indices, results, strict=True):
            writer.result(i, result)
        writer.flush()
        file.seek(0)
        one_by_one = file.read()
    group = plain_group(indices, results, seed)
    assert group.endswith(one_by_one)
    table_frame = group[: len(group) - len(one_by_one)]
    decoded = decode_group(one_by_one, table_frame[14:])
    assert decoded is not None
    assert decoded[0] == indices
    assert list(map(pickle.dumps, decoded[1])) == list(map(pickle.dumps, results))


def test_many_numbers_go_in_groups_of_a_bounded_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thread_chunks import _journal, _pickling

    sizes: list[int] = []
    number_group = _pickling.number_group

    def counted(indices: Any, results: Any, kind: bytes, seed: int) -> bytes:
        sizes.append(len(indices))
        return number_group(indices, results, kind, seed)

    monkeypatch.setattr(_journal, "number_group", counted)
    n = 2 * _journal.GROUP_SIZE + 5
    results: list[Any] = [i * 3 for i in range(n)]
    results[_journal.GROUP_SIZE + 1] = 0.5  # its group is pickled, not the others
    header = Checkpoint("f", [[i] for i in range(n)])
    path = tmp_path / "journal.pkl"
    journal = write_file(str(path), header.summary(), new_key(), (), header.parameters)
    assert journal is not None
    journal.append_columns(range(n), results)
    journal.append_columns([n - 1], [2**70])  # beyond 64 bits: pickled
    journal.close()
    assert sizes == [_journal.GROUP_SIZE, 5, 1]
    output = Checkpoint.load(path).output
    assert output == [*results[:-1], 2**70]
    assert list(map(type, output)) == list(map(type, [*results[:-1], 2**70]))


@pytest.mark.parametrize("results", [[0, 10], [0, 10, 20, 30]])
def test_indices_and_results_of_different_lengths_are_refused(
    tmp_path: Path, results: list[int]
) -> None:
    header = Checkpoint("f", [[i] for i in range(4)])
    path = tmp_path / "journal.pkl"
    journal = write_file(str(path), header.summary(), new_key(), (), header.parameters)
    assert journal is not None
    before = path.read_bytes()
    with pytest.raises(ValueError, match="indices"):
        journal.append_columns([0, 1, 2], results)
    journal.close()
    assert path.read_bytes() == before


@pytest.mark.parametrize("indices", [range(7, 4103), [3, 1, 2], [0, 1, 3], [5]])
def test_numbers_of_consecutive_calls_decode_as_a_range(indices: Any) -> None:
    from thread_chunks._pickling import _NUMBERS, HEAD, decode_numbers, number_group

    numbers = [i * 2 - 5 for i in indices]
    data = number_group(list(indices), numbers, b"I", 99)
    table = data[HEAD.size : HEAD.size + _NUMBERS.size]
    decoded = decode_numbers(data[HEAD.size + _NUMBERS.size :], table)
    assert decoded is not None
    got, values = decoded
    assert list(got) == list(indices)
    assert values == numbers
    consecutive = list(indices) == list(range(indices[0], indices[0] + len(indices)))
    assert (type(got) is range) == consecutive


@pytest.mark.parametrize("indices", [range(7, 4103), [7, 8, 9], [3, 1, 2]])
def test_a_group_of_consecutive_calls_says_its_first_index_in_its_table(
    indices: Any,
) -> None:
    # A reader takes the indices of such a group from its table: the frames'
    # own index bytes (covered by the group's CRC-32) are not decoded.
    import zlib

    from thread_chunks._pickling import _NUMBERS, HEAD, decode_numbers, number_group

    numbers = [float(i) for i in indices]
    data = number_group(indices, numbers, b"D", 99)
    table = data[HEAD.size : HEAD.size + _NUMBERS.size]
    region = bytearray(data[HEAD.size + _NUMBERS.size :])
    count, _, kind, first = _NUMBERS.unpack(table)
    assert (count, kind) == (len(indices), b"D")
    assert first == (indices[0] if type(indices) is range else -1)
    decoded = decode_numbers(bytes(region), table)
    assert decoded is not None
    assert list(decoded[0]) == list(indices)
    assert decoded[1] == numbers
    # Whatever the frames' index bytes say (and their CRC-32 with them):
    region[14] ^= 0xFF  # the first frame's index
    changed = _NUMBERS.pack(count, zlib.crc32(region), kind, first)
    decoded = decode_numbers(bytes(region), changed)
    assert decoded is not None
    assert (list(decoded[0]) == list(indices)) == (first >= 0)


def test_a_table_of_numbers_from_before_first_indices_is_still_read() -> None:
    # Tables of 13 bytes (count, CRC-32, kind), as files written before
    # groups named their first index have them: the indices are decoded.
    from thread_chunks._pickling import (
        _NUMBERS,
        HEAD,
        decode_numbers,
        number_group,
        numbers_size,
    )

    indices = range(5, 105)
    data = number_group(indices, [i * 7 for i in indices], b"I", 3)
    short = data[HEAD.size : HEAD.size + 13]
    region = data[HEAD.size + _NUMBERS.size :]
    assert numbers_size(short) == len(region)
    decoded = decode_numbers(region, short)
    assert decoded is not None
    assert decoded[0] == indices
    assert decoded[1] == [i * 7 for i in indices]


@pytest.mark.parametrize("complete", [True, False])
def test_outputs_read_straight_from_the_groups_agree_with_the_results(
    tmp_path: Path, complete: bool
) -> None:
    from thread_chunks._journal import read_contents

    n = 10_000
    header = Checkpoint("f", [[i] for i in range(n)])
    path = tmp_path / "journal.pkl"
    journal = write_file(str(path), header.summary(), new_key(), (), header.parameters)
    assert journal is not None
    journal.append_columns(range(5000, n), [i * 3 for i in range(5000, n)])
    journal.append_columns([3, 1, 2, 0, 4], [f"s{i}" for i in [3, 1, 2, 0, 4]])
    descending = list(range(4999 if complete else 4998, 4, -1))
    journal.append_columns(descending, [i * 3 for i in descending])
    journal.append_columns([7], [-1])  # a later frame for call 7: it counts
    journal.close()
    with path.open("rb") as file:
        contents = read_contents(file, settled=False)
    outputs = contents.outputs(n)
    contents.settle()
    if complete:
        assert outputs == [contents.results[i] for i in range(n)]
        assert outputs[:8] == ["s0", "s1", "s2", "s3", "s4", 15, 18, -1]
    else:
        assert outputs is None  # call 4999 has no result
    assert Checkpoint.load(path).output == [contents.results.get(i) for i in range(n)]


def test_a_complete_resume_builds_no_dictionary_of_its_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thread_chunks._journal import Contents

    path = tmp_path / "checkpoint.pkl"
    params = [[-i] for i in range(20_000)]
    first = chunk(abs, params, chunk_size=2, progress_bar=False, path=path)
    settled: list[int] = []
    settle = Contents.settle

    def watched(self: Contents) -> None:
        settled.append(len(self.columns))
        settle(self)

    monkeypatch.setattr(Contents, "settle", watched)
    assert chunk(abs, params, chunk_size=2, progress_bar=False, path=path) == first
    assert not any(settled)  # no group of numbers went into a dictionary
    params[5] = [1]  # another run: replaced, and its results read into a dict
    chunk(abs, params, chunk_size=2, progress_bar=False, path=path)
    assert any(settled)


def test_a_group_of_runs_that_follow_one_another_has_a_range_of_indices() -> None:
    # As the runs of threads mostly come: no int is made for each index.
    runs: list[tuple[Any, list[Any]]] = [
        (range(0, 3000), list(range(3000))),
        (range(3000, 5000), list(range(3000, 5000))),
        (range(7000, 7100), list(range(7000, 7100))),
    ]
    (first, results, top), (second, _, second_top) = groups(runs, 4096)
    assert type(first) is range
    assert (first, top, results) == (range(4096), 4095, list(range(4096)))
    assert type(second) is list  # a gap between its runs
    assert (second, second_top) == ([*range(4096, 5000), *range(7000, 7100)], 7099)


@given(
    st.lists(
        st.tuples(st.integers(0, 10**6), st.integers(0, 40), st.booleans()),
        max_size=30,
    ),
    st.integers(1, 50),
)
def test_groups_cut_runs_into_groups_in_order(
    spans: list[tuple[int, int, bool]], size: int
) -> None:
    # Runs of ranges and of lists (failures have negative keys), cut where a
    # group is full: the same indices and results in the same order.
    runs: list[tuple[Any, list[Any]]] = []
    for start, length, as_range in spans:
        indices: Any = range(start, start + length)
        if not as_range:
            indices = [-i - 1 if i % 3 == 0 else i for i in indices]
        runs.append((indices, [f"r{i}" for i in indices]))
    cut = list(groups(runs, size))
    flat = [
        (i, r)
        for indices, results in runs
        for i, r in zip(indices, results, strict=True)
    ]
    assert [(i, r) for g, rs, _ in cut for i, r in zip(g, rs, strict=True)] == flat
    assert all(0 < len(g) <= size for g, _, _ in cut)
    assert all(len(g) == size for g, _, _ in cut[:-1])
    assert [top for _, _, top in cut] == [max(g) for g, _, _ in cut]


def _header_of(path: Path) -> dict[str, Any]:
    from thread_chunks._journal import read_header

    with path.open("rb") as file:
        summary, _, _ = read_header(file)
    return summary


def _count_parameter_pickles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count what the parameters' pickling does: walks of what the rows hold
    before it (-1 each), and the pickles of them (their number of rows)."""
    from thread_chunks import _journal, _pickling

    seen: list[int] = []

    def counted_walk(real: Any) -> Any:
        def walk(obj: Any) -> bool:
            seen.append(-1)
            return bool(real(obj))

        return walk

    for module in _journal, _pickling:  # wherever the parameters are pickled
        for name in ("rows_of_numbers", "numbers_in"):
            if hasattr(module, name):
                real = getattr(_pickling, name)
                monkeypatch.setattr(module, name, counted_walk(real))
    real_dump = _pickling.dump

    def counted_dump(obj: Any, *args: Any, **kwargs: Any) -> None:
        if type(obj) is list:  # the parameters (a bound value is a tuple)
            seen.append(len(obj))
        real_dump(obj, *args, **kwargs)

    monkeypatch.setattr(_journal, "dump", counted_dump)
    return seen


_CALLS: list[int] = []


def _arguments(*a: Any, **k: Any) -> int:
    _CALLS.append(1)
    return len(a) + len(k)


@pytest.mark.parametrize(
    ("rows", "memo"),
    [
        ([[i, i / 2] for i in range(5)], False),
        ([(i, None, True) for i in range(5)], False),
        ([[i, "s"] for i in range(5)], False),  # a few bytes a row: no memo needed
        ([[i / 3] * 200 for i in range(5)], False),  # wide rows of numbers
        ([[i, -(2**63)] for i in range(5)], False),  # 64-bit ints at their limit
        ([range(i, i + 2) for i in range(5)], True),  # a sequence, not a list
        ([{"x": i} for i in range(5)], True),
    ],
)
def test_the_parameters_are_pickled_once_with_no_walk_through_the_rows_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[Any], memo: bool
) -> None:
    # Lists and tuples are pickled without the memo straight away, and keep
    # that pickle unless it outgrows what plain values take: no pass over
    # what the rows hold comes first. The header says which pickle it is.
    seen = _count_parameter_pickles(monkeypatch)
    path = tmp_path / "c.pkl"
    first = chunk(_arguments, rows, progress_bar=False, path=path)
    assert seen == [len(rows)]
    assert _header_of(path)["memo"] is memo
    assert Checkpoint.load(path).parameters == rows
    _CALLS.clear()
    assert chunk(_arguments, rows, progress_bar=False, path=path) == first
    assert not _CALLS
    assert seen == [len(rows)] * 2  # and pickled once more, into a comparison


def test_rows_that_share_one_large_value_keep_it_once_in_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without the memo, a value that every row holds would be written once a
    # row: that pickle is given up as soon as it outgrows plain rows.
    shared = "a value many rows share " * 8_000
    rows = [[shared, i] for i in range(100)]
    seen = _count_parameter_pickles(monkeypatch)
    path = tmp_path / "c.pkl"
    assert chunk(_arguments, rows, progress_bar=False, path=path) == [2] * 100
    assert _header_of(path)["memo"] is True
    assert seen == [100, 100]  # given up, then with the memo
    assert path.stat().st_size < 2 * len(pickle.dumps(shared))
    loaded = Checkpoint.load(path).parameters
    assert loaded == rows
    assert loaded[0][0] is loaded[99][0]  # one value, as given
    _CALLS.clear()
    assert chunk(_arguments, rows, progress_bar=False, path=path) == [2] * len(rows)
    assert not _CALLS


def test_a_new_file_whose_rows_needed_the_memo_ends_where_its_frames_end(
    tmp_path: Path,
) -> None:
    # The pickle given up was longer than the one kept: none of its bytes may
    # stay after the file's end, where a reader would take them for damage.
    from thread_chunks._journal import TAIL, read_contents

    shared = "x" * 1000
    rows = [[shared, i] for i in range(1000)]
    path = tmp_path / "c.pkl"
    Checkpoint("f", rows).save(str(path))
    with path.open("rb") as file:
        contents = read_contents(file)
    assert contents.finished
    assert not contents.tail_damaged
    assert contents.end + len(TAIL) == path.stat().st_size
    assert path.stat().st_size < 3 * len(pickle.dumps(rows))


def test_a_large_value_is_not_written_before_its_pickle_is_given_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The limit is checked before each write: a value that would pass it goes
    # to the file once, in the pickle with the memo, not also in the other.
    from thread_chunks import _pickling

    written: list[int] = []
    real_write = _pickling.FrameWriter.write

    def counted(self: Any, data: Any) -> int:
        written.append(memoryview(data).nbytes)
        return int(real_write(self, data))

    monkeypatch.setattr(_pickling.FrameWriter, "write", counted)
    big = b"x" * (8 << 20)
    rows = [[big]] + [[i] for i in range(10)]
    path = tmp_path / "c.pkl"
    Checkpoint("f", rows).save(str(path))
    assert sum(written) < 1.5 * len(big)


def test_rows_of_other_values_than_plain_ones_go_straight_to_the_memo(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Rows whose first one holds something else than plain values (numpy
    # scalars, objects) are not pickled without the memo first: that pickle
    # would mostly be given up, at twice the cost.
    seen = _count_parameter_pickles(monkeypatch)
    rows = [[Fraction(i, 3)] for i in range(20)]
    path = tmp_path / "c.pkl"
    chunk(_arguments, rows, progress_bar=False, path=path)
    assert seen == [20]
    assert _header_of(path)["memo"] is True


def test_rows_that_need_cloudpickle_resume_by_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pickled without the memo, rows holding a lambda still compare as bytes
    # on a resume: the saved rows are not loaded (which would run cloudpickle
    # code from the file) just to find them the same.
    from thread_chunks import _store

    rows = [[i, i / 2] for i in range(50)] + [[lambda x: x, 0]]
    path = tmp_path / "c.pkl"
    first = chunk(_arguments, rows, progress_bar=False, path=path)
    assert _header_of(path)["memo"] is False

    def not_loaded(*args: Any) -> Any:
        raise AssertionError("the saved parameters were loaded")

    monkeypatch.setattr(_store, "load_parameters", not_loaded)
    _CALLS.clear()
    assert chunk(_arguments, rows, progress_bar=False, path=path) == first
    assert not _CALLS


def test_large_parameters_are_compared_a_piece_at_a_time(tmp_path: Path) -> None:
    # A resume compares the parameters' pickle with the file's bytes: a large
    # value is read and compared a MiB at a time, never copied whole.
    import tracemalloc

    from thread_chunks._journal import memo_of, read_contents, same_pickle

    big = bytes(range(256)) * (64 << 12)  # 16 MiB
    rows = [[big, 1]]
    path = tmp_path / "c.pkl"
    Checkpoint("f", rows).save(str(path))
    with path.open("rb") as file:
        contents = read_contents(file)
        at, memo = contents.parameters_at, memo_of(contents.summary)
        tracemalloc.start()
        try:
            same = same_pickle(file, at, (), rows, memo)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert same
        assert peak < len(big) / 4
        assert not same_pickle(file, at, (), [[big[:-1] + b"?", 1]], memo)


def test_rows_that_hold_a_cycle_are_pickled_with_the_memo(tmp_path: Path) -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    rows = [[cyclic, i] for i in range(3)]
    path = tmp_path / "c.pkl"
    assert chunk(_arguments, rows, progress_bar=False, path=path) == [2] * 3
    assert _header_of(path)["memo"] is True
    loaded = Checkpoint.load(path).parameters
    assert loaded[0][0][0] is loaded[0][0]
    assert [row[1] for row in loaded] == [0, 1, 2]
    _CALLS.clear()
    assert chunk(_arguments, rows, progress_bar=False, path=path) == [2] * len(rows)
    assert not _CALLS


@pytest.mark.parametrize(
    "indices", [range(0, 1), range(7, 4103), range(2**32 - 5000, 2**32)]
)
def test_a_range_of_indices_gives_the_bytes_of_its_list(indices: range) -> None:
    from thread_chunks._pickling import _NUMBERS, HEAD, number_group

    numbers = [i * 3 - 2**40 for i in range(len(indices))]
    floats = [i / 7 for i in range(len(indices))]
    for results, kind in ((numbers, b"I"), (floats, b"D")):
        made = number_group(indices, results, kind, 0xBEEF)
        listed = number_group(list(indices), results, kind, 0xBEEF)
        at = HEAD.size + _NUMBERS.size  # the frames, after the table
        assert made[at:] == listed[at:]
        # The tables differ in the first index only: a list gives none.
        assert made[HEAD.size : at - 8] == listed[HEAD.size : at - 8]


@pytest.mark.parametrize("indices", [range(-1, 3), range(2**32 - 1, 2**32 + 1)])
def test_a_range_of_indices_beyond_32_bits_is_refused(indices: range) -> None:
    from thread_chunks._pickling import number_group

    with pytest.raises(ValueError, match="below 2\\*\\*32"):
        number_group(indices, [1] * len(indices), b"I", 1)


@pytest.mark.parametrize(
    ("results", "error"), [([1, 2**64], OverflowError), ([1, 1.5], TypeError)]
)
def test_numbers_that_are_not_64_bit_ints_raise_as_they_are(
    results: list[Any], error: type[Exception]
) -> None:
    from thread_chunks._pickling import number_group

    with pytest.raises(error):
        number_group(range(2), results, b"I", 1)
