"""Hardening: base exceptions from calls, signals, shared pools, odd paths."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from tests.helpers import RunChunk
from thread_chunks import Checkpoint, Chunker, achunk, chunk


def run_child(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("runner", ["chunk", "asyncio", "trio"])
def test_a_call_raising_a_base_exception_stops_the_run_cleanly(
    tmp_path: Path, kind: str, runner: str
) -> None:
    body = f"""
    import threading, anyio
    from functools import partial
    from thread_chunks import Checkpoint, achunk, chunk

    other_started = threading.Event()

    def f(i):
        if i == 0:  # runs while call 1 raises, then finishes and is saved
            assert other_started.wait(10)
            return "zero"
        if i == 1:
            other_started.set()
            raise {kind}("from call 1")
        return i

    params = [[i] for i in range(6)]
    options = dict(chunk_size=2, progress_bar=False, path="ck.pkl")
    try:
        if "{runner}" == "chunk":
            chunk(f, params, **options)
        else:
            anyio.run(partial(achunk, f, params, **options), backend="{runner}")
    except {kind} as exc:
        print("caught", type(exc).__name__, exc.__notes__[0])
    print(Checkpoint.load("ck.pkl").completed)
    print("threads", threading.active_count())
    """
    out = run_child(tmp_path, body)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert (
        lines[0]
        == f"caught {kind} raised by call 1: f(*parameters[1]) with parameters[1] = [1]"
    )
    completed = lines[1]
    # Call 0 finished after call 1 raised: saved. Call 2 may have started in
    # the instant before the failure reached the event loop; no call after it.
    assert completed.startswith("[True, False, ")
    assert completed.endswith(", False, False, False]")
    assert "Traceback" not in out.stderr
    assert "unhandled exception" not in out.stderr


def test_chunk_restores_the_sigterm_handler_and_leaves_others_alone() -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert chunk(abs, [[-1]], progress_bar=False) == [1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum: int, frame: Any) -> None:
        raise AssertionError("not sent")

    signal.signal(signal.SIGTERM, mine)
    try:
        seen: list[Any] = []

        def where(x: int) -> int:
            seen.append(signal.getsignal(signal.SIGTERM))
            return x

        assert chunk(where, [[1]], progress_bar=False) == [1]
        assert seen == [mine]  # a handler of the user's own is left in place
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_two_processes_runs_at_once_with_different_chunk_sizes() -> None:
    from tests import engines

    results: dict[int, list[int]] = {}

    def run(size: int) -> None:
        parameters = [[x] for x in range(12)]
        results[size] = chunk(
            engines.square, parameters, chunk_size=size, progress_bar=False,
            executor="processes",
        )  # fmt: skip

    threads = [threading.Thread(target=run, args=(size,)) for size in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {size: [x * x for x in range(12)] for size in (1, 2, 3)}


def test_a_lambda_in_the_parameters_is_saved_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    parameters = [[lambda x: x + 1, 1], [lambda x: x * 10, 2]]

    def apply(f: Any, x: int) -> int:
        return int(f(x))

    assert chunk(apply, parameters, progress_bar=False, path=path) == [2, 20]
    calls: list[int] = []

    def counted(f: Any, x: int) -> int:
        calls.append(x)
        return int(f(x))

    counted.__qualname__ = apply.__qualname__
    assert chunk(counted, parameters, progress_bar=False, path=path) == [2, 20]
    assert calls == []


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_checkpoint_every_rejects_infinity_and_nan(value: float) -> None:
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0 and finite"):
        chunk(abs, [[1]], checkpoint_every=value)


def test_a_warning_turned_error_releases_the_checkpoint_first(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    import warnings

    from thread_chunks import CheckpointFailedWarning

    path = tmp_path / "ck.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFailedWarning)
        with pytest.raises(CheckpointFailedWarning) as info:
            run_chunk(lambda i: threading.Lock(), [[0]], progress_bar=False, path=path)
    kept = info.value  # like Jupyter, keep the exception (and its frames) alive
    assert run_chunk(abs, [[-1]], progress_bar=False, path=path) == [1]  # unlocked
    del kept


@pytest.mark.anyio
async def test_an_async_callable_object_is_awaited() -> None:
    class Fetch:
        async def __call__(self, x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x * 2

    assert await achunk(Fetch(), [[1], [2]], progress_bar=False) == [2, 4]
    assert chunk(Fetch(), [[3]], progress_bar=False) == [6]


def test_two_threads_cannot_both_run_one_chunker() -> None:
    inside, release = threading.Event(), threading.Event()

    def slow(x: int) -> int:
        inside.set()
        assert release.wait(timeout=10)
        return x

    chunker = Chunker(slow, chunk_size=1, progress_bar=False)
    first = threading.Thread(target=chunker, args=([[1]],))
    first.start()
    try:
        assert inside.wait(timeout=10)
        with pytest.raises(RuntimeError, match="already running"):
            chunker([[2]])
    finally:
        release.set()
        first.join()


def test_a_symlinked_path_writes_its_target_and_stays_a_link(tmp_path: Path) -> None:
    target = tmp_path / "data" / "target.pkl"
    target.parent.mkdir()
    link = tmp_path / "link.pkl"
    link.symlink_to(target)
    assert chunk(abs, [[-1], [-2]], progress_bar=False, path=link) == [1, 2]
    assert link.is_symlink()
    assert Checkpoint.load(target).output == [1, 2]
    calls: list[int] = []

    def counted(x: int) -> int:
        calls.append(x)
        return abs(x)

    counted.__qualname__, counted.__module__ = "abs", "builtins"
    # Through the target or the link: one checkpoint, one lock, nothing redone.
    assert chunk(counted, [[-1], [-2]], progress_bar=False, path=target) == [1, 2]
    assert chunk(counted, [[-1], [-2]], progress_bar=False, path=link) == [1, 2]
    assert calls == []
    assert not (tmp_path / ".link.pkl.lock").exists()


def test_a_neighbours_temporary_files_are_left_alone(tmp_path: Path) -> None:
    neighbour = tmp_path / ".sweep.pkl.part2.pkl.0123456789abcdef.tmp"
    neighbour.write_bytes(b"being written by a run on sweep.pkl.part2.pkl")
    leftover = tmp_path / ".sweep.pkl.fedcba9876543210.tmp"
    leftover.write_bytes(b"left by a run on sweep.pkl killed mid-replacement")
    assert chunk(abs, [[-1]], progress_bar=False, path=tmp_path / "sweep.pkl") == [1]
    assert neighbour.exists()
    assert not leftover.exists()


def test_neighbouring_checkpoints_run_at_once(tmp_path: Path) -> None:
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, list[int]] = {}

    def run(name: str) -> None:
        def meet(x: int) -> int:
            barrier.wait()  # both runs are inside their calls together
            return x

        meet.__qualname__ = f"meet_{name}"
        results[name] = chunk(meet, [[1], [2]], chunk_size=1, progress_bar=False,
                              path=tmp_path / name)  # fmt: skip

    names = ["sweep.pkl", "sweep.pkl.part2.pkl"]
    threads = [threading.Thread(target=run, args=(name,)) for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results == {name: [1, 2] for name in names}


def test_a_replaced_checkpoint_is_kept_as_previous(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    run_chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    run_chunk(abs, [[-3]], progress_bar=False, path=path)  # other parameters
    assert Checkpoint.load(path).output == [3]
    previous = Checkpoint.load(tmp_path / "ck.pkl.previous")
    assert previous.output == [1, 2]
    run_chunk(abs, [[-4]], progress_bar=False, path=path)
    assert Checkpoint.load(tmp_path / "ck.pkl.previous").output == [3]  # one kept


def test_lock_files_take_the_mode_the_umask_allows(tmp_path: Path) -> None:
    old = os.umask(0o002)  # a directory shared by a group
    try:
        chunk(abs, [[-1]], progress_bar=False, path=tmp_path / "ck.pkl")
    finally:
        os.umask(old)
    assert (tmp_path / ".ck.pkl.lock").stat().st_mode & 0o777 == 0o664
    assert (tmp_path / "ck.pkl").stat().st_mode & 0o777 == 0o664


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("", r"path must name a file, got ''"),
        ("x" * 240 + ".pkl", r"has 244 characters.*at most 233 characters"),
    ],
)
def test_paths_that_cannot_work_are_refused_before_any_call(
    tmp_path: Path, path: str, message: str
) -> None:
    def never(x: int) -> int:
        raise AssertionError("called")

    with pytest.raises(ValueError, match=message):
        chunk(
            never, [[1]], progress_bar=False, path=str(tmp_path / path) if path else ""
        )
    assert list(tmp_path.iterdir()) == []


class CountedAbs:
    """``abs``, counting its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, x: int) -> int:
        self.calls.append(x)
        return abs(x)


def test_a_bit_flipped_anywhere_costs_at_most_the_damaged_result(
    tmp_path: Path,
) -> None:
    import warnings

    from thread_chunks import CheckpointFailedWarning

    n = 30
    parameters = [[i] for i in range(n)]
    original = tmp_path / "original.pkl"
    chunk(CountedAbs(), parameters, chunk_size=1, progress_bar=False, path=original)
    data = original.read_bytes()
    from thread_chunks._journal import read_contents

    with original.open("rb") as file:
        start, length = read_contents(file).parameters_at
    header_end = start + length  # the header, then the parameters' frame
    (last_commit,) = struct.unpack_from("<I", data, len(data) - 7)
    tail_start = len(data) - 3 - last_commit  # the last commit, then the end
    for offset in range(0, len(data), 97):
        damaged = bytearray(data)
        damaged[offset] ^= 0x10
        path = tmp_path / f"flip{offset}" / "ck.pkl"
        path.parent.mkdir()
        path.write_bytes(bytes(damaged))
        counted = CountedAbs()
        calls = counted.calls
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = chunk(counted, parameters, progress_bar=False, path=path)
        assert out == list(range(n)), offset
        messages = [str(w.message) for w in caught]
        assert [w.category for w in caught] == [CheckpointFailedWarning], offset
        if offset < header_end:  # the run cannot be recognised: all again
            assert "header" in messages[0] or "first bytes" in messages[0], offset
            assert len(calls) == n
        elif offset < tail_start:  # one result frame: that call again
            assert "is damaged" in messages[0], (offset, messages)
            assert len(calls) <= 1, (offset, messages)
            assert (path.parent / "ck.pkl.damaged").read_bytes() == bytes(damaged)
        else:  # the finishing tail: nothing lost
            assert "no result was lost" in messages[0], (offset, messages)
            assert calls == [], offset
        assert Checkpoint.load(path).output == out  # repaired


def test_damage_in_the_middle_keeps_the_results_on_both_sides(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    from thread_chunks import CheckpointFailedWarning

    path = tmp_path / "ck.pkl"
    chunk(str, [[i] for i in range(10)], chunk_size=1, progress_bar=False, path=path)
    data = bytearray(path.read_bytes())
    heads = [i for i in range(len(data) - 14) if data[i] == 0x8E]
    fifth = [i for i in heads if data[i + 13 : i + 14] == b"R"][5]  # a result frame
    data[fifth + 20] ^= 0xFF  # in its index
    path.write_bytes(bytes(data))
    checkpoint = Checkpoint.load(path)  # reads past the damage
    assert checkpoint.done == 9
    assert checkpoint.completed[9]  # after the damage
    calls: list[int] = []

    def counted(i: int) -> str:
        calls.append(i)
        return str(i)

    counted.__qualname__, counted.__module__ = "str", "builtins"
    with pytest.warns(CheckpointFailedWarning, match=r"is damaged: .* recovered the 9"):
        out = run_chunk(
            counted, [[i] for i in range(10)], progress_bar=False, path=path
        )
    assert out == [str(i) for i in range(10)]
    assert len(calls) == 1  # only the damaged result is computed again
    assert Checkpoint.load(path).output == out  # repaired
    assert (tmp_path / "ck.pkl.damaged").exists()


def test_a_damaged_header_is_named_as_such(tmp_path: Path, run_chunk: RunChunk) -> None:
    from thread_chunks import CheckpointFailedWarning

    path = tmp_path / "ck.pkl"
    chunk(str, [[i] for i in range(3)], progress_bar=False, path=path)
    data = bytearray(path.read_bytes())
    header = data.index(b"\x8e")
    data[header + 30] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.warns(CheckpointFailedWarning, match=r"header .* fails its checksum"):
        out = run_chunk(str, [[i] for i in range(3)], progress_bar=False, path=path)
    assert Checkpoint.load(path).output == out == ["0", "1", "2"]


def test_a_directory_deleted_mid_run_is_written_again(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    import shutil

    from thread_chunks import CheckpointFailedWarning

    directory = tmp_path / "run"
    path = directory / "ck.pkl"
    first_saved, deleted = threading.Event(), threading.Event()

    def f(i: int) -> int:
        if i == 1:
            # The first result is written; now the directory goes away.
            assert first_saved.wait(timeout=10)
            shutil.rmtree(directory)
            deleted.set()
        return i

    from thread_chunks import _journal

    append = _journal.Journal.append_runs

    def noticed(self: Any, runs: Any, before: Any = None) -> Any:
        unpicklable = append(self, runs, before)
        first_saved.set()
        return unpicklable

    _journal.Journal.append_runs = noticed  # type: ignore[method-assign, assignment]
    try:
        with pytest.warns(CheckpointFailedWarning, match="was deleted during the run"):
            out = run_chunk(f, [[i] for i in range(6)], chunk_size=1,
                            progress_bar=False, path=path)  # fmt: skip
    finally:
        _journal.Journal.append_runs = append  # type: ignore[method-assign]
    assert deleted.is_set()
    assert out == list(range(6))
    assert Checkpoint.load(path).output == out  # every result, the first too


def test_a_finished_checkpoint_reads_in_a_read_only_directory(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    directory.mkdir()
    path = directory / "ck.pkl"
    chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    (directory / ".ck.pkl.lock").unlink()
    bound = subprocess.run(
        ["mount", "--bind", "-o", "ro", str(directory), str(directory)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if bound.returncode != 0:
        pytest.skip(f"cannot mount a read-only directory here: {bound.stderr}")
    try:
        assert chunk(abs, [[-1], [-2]], progress_bar=False, path=path) == [1, 2]
        with pytest.raises(OSError, match="Read-only") as info:
            chunk(abs, [[-3]], progress_bar=False, path=path)
        assert "has calls to compute" in info.value.__notes__[0]
    finally:
        subprocess.run(["umount", str(directory)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Any:
    """A 256 KB tmpfs, if this machine lets the tests mount one."""
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_disk_that_fills_up_loses_no_result(
    small_disk: Path, run_chunk: RunChunk
) -> None:
    from thread_chunks import CheckpointFailedWarning

    def blob(i: int) -> bytes:
        return bytes([i]) * 20_000  # 40 of them do not fit in 256 KB

    parameters = [[i] for i in range(40)]
    with pytest.warns(CheckpointFailedWarning, match="could not write checkpoint"):
        out = run_chunk(blob, parameters, chunk_size=1, progress_bar=False,
                        path=small_disk / "ck.pkl")  # fmt: skip
    assert out == [blob(i) for i in range(40)]  # every result is returned
    saved = Checkpoint.load(small_disk / "ck.pkl")
    assert 0 < saved.done < 40
    assert all(saved.output[i] == blob(i) for i in saved.results)
