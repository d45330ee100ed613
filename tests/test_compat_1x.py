"""Scripts written for thread-chunks 1.x run unchanged: every 1.x call, as 1.x."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import thread_chunks
from thread_chunks import (
    Checkpoint,
    CheckpointFailedWarning,
    Chunker,
    LabelledActor,
    chunk,
    config,
)


def f(x: int, y: int) -> int:
    return x + y


PARAMS = [[1, 4], [2, 5], [3, 6]]


def test_chunk_positional_order_of_1x(tmp_path: Path) -> None:
    path = str(tmp_path / "checkpoint.pkl")
    # chunk(func, parameters, actors, chunk_size, progress_bar, path)
    assert chunk(f, PARAMS, None, 2, False, path) == [5, 7, 9]
    assert chunk(f, PARAMS, None, 2, False, path) == [5, 7, 9]
    assert Checkpoint.load(path).output == [5, 7, 9]


def test_chunk_with_1x_actors_and_no_func() -> None:
    actors = [LabelledActor(f), LabelledActor(f)]
    assert chunk(None, PARAMS, actors, 2, False) == [5, 7, 9]


def test_chunker_positional_order_of_1x(tmp_path: Path) -> None:
    path = str(tmp_path / "chunker.pkl")
    # Chunker(func, actors, chunk_size, progress_bar, persistent, path)
    chunker = Chunker(f, None, 3, False, True, path)
    assert chunker.chunk_size == 3
    assert len(chunker.actors) == 3
    assert chunker.progress_bar is False
    assert chunker.persistent is True
    assert chunker.path == path
    # __call__(parameters, func, progress_bar, path)
    assert chunker(PARAMS) == [5, 7, 9]
    assert Checkpoint.load(path).output == [5, 7, 9]
    other = str(tmp_path / "other.pkl")
    assert chunker([[2, 3]], max, False, other) == [3]
    assert Checkpoint.load(other).func_name == "max"


def test_chunker_attributes_can_be_set_as_in_1x(tmp_path: Path) -> None:
    chunker = Chunker(f, chunk_size=2)
    chunker.progress_bar = False
    chunker.path = str(tmp_path / "set.pkl")
    assert chunker(PARAMS) == [5, 7, 9]
    assert Checkpoint.load(tmp_path / "set.pkl").done == 3
    with pytest.raises(AttributeError):
        chunker.chunk_size = 4  # type: ignore[misc]  # read-only, as in 1.x


def test_chunker_persistent_defaults_to_false() -> None:
    assert Chunker(f).persistent is False


def test_checkpoint_constructor_of_1x(tmp_path: Path) -> None:
    path = str(tmp_path / "made.pkl")
    # Checkpoint(func_name, parameters, output, completed, index, done, path)
    made = Checkpoint("f", PARAMS, [5, None, 9], [True, False, True], 3, 2, path)
    assert (made.output, made.completed, made.index, made.done) == (
        [5, None, 9],
        [True, False, True],
        3,
        2,
    )
    loaded = Checkpoint.load(path)  # saved at once, since a path was given
    assert loaded.output == [5, None, 9]
    assert loaded.index == 3
    assert chunk(f, PARAMS, None, 1, False, path) == [5, 7, 9]  # and resumable


def test_checkpoint_done_must_agree_with_completed() -> None:
    with pytest.raises(ValueError, match=r"done=1 disagrees with completed"):
        Checkpoint("f", PARAMS, [5, None, 9], [True, False, True], 3, 1)


def test_checkpoint_lists_must_have_one_entry_per_call() -> None:
    with pytest.raises(ValueError, match=r"output must have one entry per"):
        Checkpoint("f", PARAMS, [5], [True, False, True], 3, 2)


def test_index_after_a_complete_run_is_len_parameters(tmp_path: Path) -> None:
    path = tmp_path / "index.pkl"
    chunk(f, PARAMS, None, 2, False, path)
    assert Checkpoint.load(path).index == len(PARAMS)


def test_labelled_actor_of_1x() -> None:
    actor = LabelledActor(f)
    assert actor.run((0, 1), 1, 2) == ((0, 1), 3)
    actor.set_func(max)
    assert actor.get_func() is max


def test_config_of_1x() -> None:
    assert isinstance(config.default_chunk_size, int)
    assert config.default_chunk_size >= 1
    assert config.progress_bar in (None, True, False)  # None: where watched
    assert config.ray_config == {"num_cpus": config.default_chunk_size}


def test_importing_thread_chunks_never_imports_ray() -> None:
    code = "import sys, thread_chunks; print('ray' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"


def test_remote_labelled_actor_without_ray_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thread_chunks import _ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    monkeypatch.setattr(_ray, "_remote_class", None)
    with pytest.raises(ImportError, match=r"thread-chunks\[ray\].*executor="):
        from thread_chunks import RemoteLabelledActor  # noqa: F401
    with pytest.raises(ImportError, match=r"thread-chunks\[ray\]"):
        _ = thread_chunks.RemoteLabelledActor


def write_1x_checkpoint(path: Path, **state: Any) -> None:
    """Write ``path`` as thread-chunks 1.x did: saveable-objects' plain pickle.

    That is the pickle of a ``thread_chunks._checkpoint.Checkpoint`` holding
    1.x's attributes, followed by the pickle of its constructor's arguments.
    """
    body = pickle.dumps({"_path": str(path), **state}, protocol=2)[2:-1]
    instance = (
        b"\x80\x02"  # PROTO 2
        + b"cthread_chunks._checkpoint\nCheckpoint\n"  # GLOBAL
        + b")\x81"  # EMPTY_TUPLE, NEWOBJ
        + body  # the state dict
        + b"b."  # BUILD, STOP
    )
    arguments = {k: state[k] for k in ("func_name", "parameters")}
    path.write_bytes(instance + pickle.dumps(arguments))


def test_a_1x_checkpoint_file_loads_on_request(tmp_path: Path) -> None:
    path = tmp_path / "old.pkl"
    write_1x_checkpoint(
        path,
        func_name="f",
        parameters=PARAMS,
        output=[5, None, 9],
        completed=[True, False, True],
        index=3,
        done=2,
    )
    old = Checkpoint.load(path)
    assert (old.func_name, old.parameters) == ("f", PARAMS)
    assert (old.output, old.completed, old.done, old.index) == (
        [5, None, 9],
        [True, False, True],
        2,
        3,
    )


def test_a_rerun_that_finds_a_1x_file_refuses_it_untouched_and_says_how_to_convert(
    tmp_path: Path,
) -> None:
    """A 1.x file at ``path`` is refused before any call, left as it is, and
    the conversion the message names makes the next run resume from it."""
    path = tmp_path / "old.pkl"
    state = {
        "func_name": "f",
        "parameters": PARAMS,
        "output": [5, None, None],
        "completed": [True, False, False],
        "index": 3,
        "done": 1,
    }
    write_1x_checkpoint(path, **state)
    before = path.read_bytes()
    calls: list[tuple[int, int]] = []

    def counted(x: int, y: int) -> int:
        calls.append((x, y))
        return x + y

    counted.__qualname__ = "f"
    with pytest.raises(ValueError, match=r"thread-chunks 1\.x.*convert"):
        chunk(counted, PARAMS, None, 1, False, str(path))
    assert calls == []  # refused before any call
    assert path.read_bytes() == before  # untouched
    Checkpoint.load(path).save(str(path))  # the conversion, done by hand
    assert chunk(counted, PARAMS, None, 1, False, str(path)) == [5, 7, 9]
    assert calls == [(2, 5), (3, 6)]


class Hostile:
    """A pickle that runs a command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_a_rerun_never_unpickles_a_file_it_did_not_write(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    marker = tmp_path / "marker"
    path.write_bytes(pickle.dumps(Hostile(marker)))
    with pytest.warns(CheckpointFailedWarning, match="without loading it"):
        assert chunk(f, PARAMS, None, 1, False, str(path)) == [5, 7, 9]
    assert not marker.exists()
