"""The checkpoint file yields only what the run wrote (file format 2).

Frames that data cannot forge, metadata that is not code, readers that never
die, parameters that must be ordered, and files of earlier formats that are
never silently recomputed.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path
from typing import Any

import pytest

from thread_chunks import Checkpoint, CheckpointFailedWarning, chunk, progress
from thread_chunks._journal import OPENING_1
from thread_chunks._pickling import INDEX, frame

MARKER = "ran-code-from-a-checkpoint"


class Marks:
    """Unpickling this runs code: it creates a marker file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.directory / MARKER,))


def forged_frames(directory: Path) -> bytes:
    """Bytes that hold a frame of every format, each wrapping a code-running pickle.

    A format 2 ``R`` frame checked with a guessed seed, and a format 1 frame
    (no key: a plain CRC-32), each claiming to be the result of call 0.
    """
    evil = pickle.dumps(Marks(directory))
    new = frame(b"R", INDEX.pack(0) + evil, zlib.crc32(b"\x00" * 16))
    body = INDEX.pack(0) + b"\x00" * 8 + evil
    old_payload = zlib.crc32(body).to_bytes(4, "little") + body
    old = pickle.BINBYTES8 + len(old_payload).to_bytes(8, "little") + old_payload
    return b"an uploaded file " + new + b" and more " + old + b" the end"


def ran_code(directory: Path) -> bool:
    return (directory / MARKER).exists()


def test_a_parameter_holding_frames_is_never_read_as_a_result(tmp_path: Path) -> None:
    upload = forged_frames(tmp_path)
    parameters = [[b"first file"], [upload]]
    path = tmp_path / "ck.pkl"
    expected = [10, len(upload)]
    assert chunk(len, parameters, progress_bar=False, path=path) == expected
    assert Checkpoint.load(path).output == expected
    calls: list[bytes] = []

    def counted(data: bytes) -> int:
        calls.append(data)
        return len(data)

    counted.__qualname__ = "len"
    counted.__module__ = len.__module__
    assert chunk(counted, parameters, progress_bar=False, path=path) == expected
    assert calls == []  # resumed, every result as the first run computed it
    assert progress(path).done == 2
    assert not ran_code(tmp_path)


def test_another_checkpoint_as_a_parameter_gives_no_result_of_its_own(
    tmp_path: Path,
) -> None:
    other = tmp_path / "other.pkl"
    chunk(abs, [[-7], [-8]], progress_bar=False, path=other)
    parameters = [[other.read_bytes()], [b"x"]]
    path = tmp_path / "ck.pkl"
    expected = [len(other.read_bytes()), 1]
    assert chunk(len, parameters, progress_bar=False, path=path) == expected
    assert Checkpoint.load(path).output == expected


def test_recovery_after_damage_never_takes_a_frame_without_the_key(
    tmp_path: Path,
) -> None:
    """Damage makes the reader search for the next frame: the forged frames
    inside the damaged result are found, and refused."""
    upload = forged_frames(tmp_path)
    path = tmp_path / "ck.pkl"
    parameters = [[i] for i in range(3)]

    def result(i: int) -> bytes:
        return upload if i == 1 else b"plain"

    assert chunk(result, parameters, chunk_size=1, progress_bar=False, path=path)
    data = bytearray(path.read_bytes())
    start = data.rindex(upload)  # inside the frame of result 1 (the last copy)
    data[start - 20] ^= 0xFF  # its index or pickle: that frame is damaged
    path.write_bytes(bytes(data))
    checkpoint = Checkpoint.load(path)
    assert checkpoint.results.get(0) == b"plain"
    assert 1 not in checkpoint.results
    assert checkpoint.results[2] == b"plain"
    assert not ran_code(tmp_path)
    with pytest.warns(CheckpointFailedWarning, match="damaged"):
        assert chunk(result, parameters, progress_bar=False, path=path)[1] == upload
    assert not ran_code(tmp_path)


def test_progress_and_show_unpickle_nothing(tmp_path: Path) -> None:
    """A crafted file in format 1, whose summary frame is a code-running
    pickle, and a file of ours whose last commit frame is replaced by one."""
    evil = pickle.dumps(Marks(tmp_path))
    payload = zlib.crc32(evil).to_bytes(4, "little") + evil
    crafted = tmp_path / "crafted.pkl"
    crafted.write_bytes(
        OPENING_1 + pickle.BINBYTES8 + len(payload).to_bytes(8, "little") + payload
    )
    with pytest.raises(ValueError, match="not a checkpoint this version reads"):
        progress(crafted)
    ours = tmp_path / "ours.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=ours)
    data = ours.read_bytes()
    ours.write_bytes(data[:-40] + evil[:37] + data[-3:])
    for path in (crafted, ours):
        show = subprocess.run(
            [sys.executable, "-m", "thread_chunks", "show", str(path), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert show.returncode in (0, 2), show.stderr
    assert not ran_code(tmp_path)


def test_show_refuses_a_fifo_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "ck.pkl"
    os.mkfifo(fifo)
    show = subprocess.run(
        [sys.executable, "-m", "thread_chunks", "show", str(fifo)],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert show.returncode == 2
    assert "not a regular file" in show.stderr


@pytest.mark.parametrize(
    "parameters", [{"a", "b"}, frozenset({"a"}), {"a": 1}.keys(), {"a": 1}.items()]
)
def test_unordered_parameters_are_refused_before_any_call(parameters: Any) -> None:
    calls: list[object] = []
    with pytest.raises(TypeError, match=r"sorted\("):
        chunk(calls.append, parameters, progress_bar=False)
    assert calls == []


def test_a_file_of_format_1_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    path.write_bytes(OPENING_1 + b"\x8e" + bytes(8))
    before = path.read_bytes()
    calls: list[int] = []
    with pytest.raises(ValueError, match=r"format 1.*thread-chunks convert"):
        chunk(calls.append, [[1]], progress_bar=False, path=path)
    assert calls == []
    assert path.read_bytes() == before


READER = textwrap.dedent(
    """
    import sys
    from thread_chunks import Checkpoint, progress
    path, stop = sys.argv[1], sys.argv[2]
    import os
    reads = 0
    while not os.path.exists(stop) or reads < 20:
        try:
            Checkpoint.load(path)
            progress(path)
        except (OSError, ValueError, EOFError, pickle.UnpicklingError):
            pass  # a clear exception is fine; a signal is not
        reads += 1
    print(reads)
    """
).replace("import sys\n", "import pickle\nimport sys\n", 1)


def test_readers_polling_during_resumes_never_die(tmp_path: Path) -> None:
    """Readers poll while runs resume finished files (which are continued in a
    new file, renamed over the old one) and append: no reader dies of a signal."""
    path = tmp_path / "ck.pkl"
    stop = tmp_path / "stop"
    script = tmp_path / "reader.py"
    script.write_text(READER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    chunk(abs, [[-i] for i in range(5)], progress_bar=False, path=path)
    readers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), str(stop)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    try:
        size = 2_000
        parameters = [[i] for i in range(size)]
        for fail_at in [*range(size // 6, size, size // 6), size]:

            def f(i: int, fail_at: int = fail_at) -> int:
                if i == fail_at:
                    raise RuntimeError("stop here")
                return i

            f.__qualname__ = "f"
            # Each run stops at a failure and finishes the file: the next one
            # resumes it, in a new file renamed over it.
            with contextlib.suppress(RuntimeError):
                chunk(f, parameters, chunk_size=2, progress_bar=False, path=path)
    finally:
        stop.touch()
        outcomes = [reader.communicate(timeout=60) for reader in readers]
    for reader, (out, err) in zip(readers, outcomes, strict=True):
        assert reader.returncode == 0, (reader.returncode, err)
        assert int(out) >= 20
    assert Checkpoint.load(path).done == size


def format_1_file(path: Path, results: dict[int, Any], n: int) -> None:
    """A checkpoint as development versions of 2.0 wrote it (format 1)."""

    def frame_1(body: bytes) -> bytes:
        payload = zlib.crc32(body).to_bytes(4, "little") + body
        return pickle.BINBYTES8 + len(payload).to_bytes(8, "little") + payload

    header = Checkpoint("f", [[i] for i in range(n)])
    summary = frame_1(pickle.dumps({"function": "f", "total": n}))
    records = b"".join(
        frame_1(struct.pack("<qd", i, 0.0) + pickle.dumps(result))
        for i, result in results.items()
    )
    path.write_bytes(OPENING_1 + summary + frame_1(pickle.dumps(header)) + records)


def test_thread_chunks_convert_rewrites_old_files_and_the_run_resumes(
    tmp_path: Path,
) -> None:
    from thread_chunks._cli import main

    path = tmp_path / "ck.pkl"
    format_1_file(path, {0: 10, 2: 12}, 4)  # unfinished: no tail
    assert Checkpoint.load(path).output == [10, None, 12, None]
    assert main(["convert", str(path)]) == 0
    assert path.read_bytes().startswith(Checkpoint.file_opening())
    assert main(["convert", str(path)]) == 0  # in the current format already
    calls: list[int] = []

    def f(i: int) -> int:
        calls.append(i)
        return i + 10

    f.__qualname__ = "f"  # the name the checkpoint holds (made by hand: no module)
    assert chunk(f, [[i] for i in range(4)], progress_bar=False, path=path) == [
        10,
        11,
        12,
        13,
    ]
    assert sorted(calls) == [1, 3]
    assert main(["convert", str(tmp_path / "missing.pkl")]) == 2


def test_a_failure_that_later_succeeds_leaves_the_report(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    failing = [True]

    def f(i: int) -> int:
        if i == 2 and failing[0]:
            raise ValueError("bad 2")
        return i

    chunk(f, [[i] for i in range(5)], errors="return", progress_bar=False, path=path)
    assert progress(path).failures == 1
    failing[0] = False
    assert chunk(f, [[i] for i in range(5)], progress_bar=False, path=path) == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert progress(path).failures == 0
    assert progress(path).first_failures == ()


def test_a_large_result_that_cannot_be_pickled_leaves_no_bytes_behind(
    tmp_path: Path,
) -> None:
    import threading

    from thread_chunks._journal import read_contents

    path = tmp_path / "ck.pkl"

    def f(i: int) -> Any:
        return [b"x" * (4 << 20), threading.Lock()] if i == 0 else i

    with pytest.warns(CheckpointFailedWarning, match="cannot be pickled"):
        chunk(f, [[0], [1]], chunk_size=1, progress_bar=False, path=path)
    with path.open("rb") as file:
        contents = read_contents(file)
    assert not contents.tail_damaged
    assert not contents.damaged
    assert path.stat().st_size < 1 << 20


def test_saving_a_checkpoint_with_an_unpicklable_result_refuses(
    tmp_path: Path,
) -> None:
    import threading

    path = tmp_path / "ck.pkl"
    Checkpoint("f", [[1]], output=[5], completed=[True]).save(str(path))
    before = path.read_bytes()
    unsaveable = Checkpoint(
        "f", [[1], [2]], output=[threading.Lock(), 5], completed=[True, True]
    )
    with pytest.raises(TypeError, match="cannot be pickled"):
        unsaveable.save(str(path))
    assert path.read_bytes() == before  # the old file, whole


def test_a_complete_file_that_was_never_finished_is_finished(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    path.write_bytes(path.read_bytes()[:-3])  # a crash before the end
    with pytest.raises((pickle.UnpicklingError, EOFError)):
        pickle.loads(path.read_bytes())
    assert chunk(abs, [[-1], [-2]], progress_bar=False, path=path) == [1, 2]
    assert pickle.loads(path.read_bytes()).output == [1, 2]


@pytest.mark.parametrize("kind", [b"I", b"D"])
def test_each_number_frame_has_a_keyed_check_that_any_flipped_bit_fails(
    kind: bytes,
) -> None:
    from thread_chunks._pickling import NUMBER_SIZE, number_check, number_group

    numbers: list[Any] = [1, -2, 2**63 - 1] if kind == b"I" else [0.5, -1e300, 0.0]
    seed = 0xC0FFEE
    data = number_group([0, 7, 2**32 - 1], numbers, kind, seed)
    region = data[len(data) - 3 * NUMBER_SIZE :]
    for k in range(3):
        one = region[k * NUMBER_SIZE : (k + 1) * NUMBER_SIZE]
        (check,) = struct.unpack_from("<I", one, 9)
        (index,) = INDEX.unpack_from(one, 14)
        number = one[22:30]
        assert check == number_check(seed, kind, index, number)
        assert check != number_check(seed + 1, kind, index, number)  # keyed
        for bit in range(128):  # each bit of the index and of the number
            fields = bytearray(one[14:30])
            fields[bit // 8] ^= 1 << (bit % 8)
            (index_now,) = INDEX.unpack_from(fields)
            assert number_check(seed, kind, index_now, bytes(fields[8:])) != check
