"""Checkpointing: resume, replacement, what counts as the same run, bad files."""

from __future__ import annotations

import inspect
import logging
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import anyio.from_thread
import numpy as np
import pytest
from saveable_objects import SaveableObject

from tests.helpers import PARAMS, Counted, RunChunk, interrupted_run
from thread_chunks import Checkpoint, CheckpointFailedWarning, chunk


def test_rerun_repeats_no_completed_call(tmp_path: Path, run_chunk: RunChunk) -> None:
    path = tmp_path / "checkpoint.pkl"
    interrupted_run(path, PARAMS, fail_at=2, run=run_chunk)
    assert Checkpoint.load(path).completed == [True, True, False]
    f = Counted()
    assert run_chunk(f, PARAMS, progress_bar=False, path=path) == [5, 7, 9]
    assert f.calls == [(3, 6)]
    g = Counted()
    assert run_chunk(g, PARAMS, progress_bar=False, path=path) == [5, 7, 9]
    assert g.calls == []


@pytest.mark.parametrize(
    ("func_name", "new_params"),
    [
        ("g", PARAMS),  # a different function
        ("f", [[0, 4], [2, 5], [3, 6]]),  # different parameters
        ("f", [*PARAMS, [3, 7]]),  # more parameters
        ("f", PARAMS[:2]),  # fewer parameters
        ("f", [PARAMS[1], PARAMS[0], PARAMS[2]]),  # another order
    ],
    ids=["function", "values", "more", "fewer", "order"],
)
def test_other_runs_replace_the_checkpoint(
    tmp_path: Path, func_name: str, new_params: list[list[int]], run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    interrupted_run(path, PARAMS, fail_at=2, run=run_chunk)
    func = Counted()
    func.__qualname__ = func_name
    out = run_chunk(func, new_params, progress_bar=False, path=path)
    assert out == [x + y for x, y in new_params]
    assert sorted(func.calls) == sorted(tuple(p) for p in new_params)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.func_name == func_name
    assert checkpoint.parameters == new_params
    assert checkpoint.output == out


@pytest.mark.parametrize(
    "value",
    [
        np.arange(6.0).reshape(2, 3),
        np.array([1.0, np.nan]),
        {"a": np.ones(3), "b": [1, {2, 3}]},
        {1, 2, 3},
        [[1, [2, (3,)]], "x"],
        float("nan"),
        None,
    ],
    ids=["array", "nan-array", "dict", "set", "nested", "nan", "none"],
)
def test_equal_parameters_of_many_kinds_resume(tmp_path: Path, value: Any) -> None:
    path = tmp_path / "checkpoint.pkl"
    params = [[value, 0], [value, 1], [value, 2]]
    first = Counted(lambda v, i: i)
    chunk(first, params, progress_bar=False, path=path)
    again = Counted(lambda v, i: i)
    # Copies made by pickling, as a new process would have.
    copies = pickle.loads(pickle.dumps(params))
    assert chunk(again, copies, progress_bar=False, path=path) == [0, 1, 2]
    assert again.calls == []


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (np.arange(3), np.arange(3) + 1),
        (np.arange(3), np.arange(3.0)),  # same values, other dtype
        (np.arange(3), np.arange(4)),
        ({"a": 1}, {"a": 2}),
        ({1, 2}, {1, 3}),
        (1, 1.0),
        ([1, 2], (1, 2)),
    ],
    ids=["values", "dtype", "shape", "dict", "set", "int-float", "list-tuple"],
)
def test_different_parameters_are_not_mistaken_for_equal(
    tmp_path: Path, old: Any, new: Any
) -> None:
    path = tmp_path / "checkpoint.pkl"
    chunk(Counted(lambda v: 1), [[old]], progress_bar=False, path=path)
    again = Counted(lambda v: 2)
    assert chunk(again, [[new]], progress_bar=False, path=path) == [2]
    assert len(again.calls) == 1


def test_falsy_results_count_as_completed(tmp_path: Path, run_chunk: RunChunk) -> None:
    path = tmp_path / "checkpoint.pkl"
    values: list[Any] = [None, 0, [], False]
    params = [[v, 0] for v in values]
    run_chunk(Counted(lambda v, _: v), params, progress_bar=False, path=path)
    assert Checkpoint.load(path).completed == [True] * 4
    again = Counted(lambda v, _: "recomputed")
    assert run_chunk(again, params, progress_bar=False, path=path) == values
    assert again.calls == []


def test_path_may_be_str_or_pathlike_and_both_mean_the_same_file(
    tmp_path: Path,
) -> None:
    chunk(Counted(), PARAMS, progress_bar=False, path=str(tmp_path / "c.pkl"))
    again = Counted()
    chunk(again, PARAMS, progress_bar=False, path=tmp_path / "c.pkl")
    assert again.calls == []


def test_final_checkpoint_holds_everything_and_loads_with_saveable_objects(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    out = run_chunk(Counted(), PARAMS, progress_bar=False, path=path)
    plain = SaveableObject.load(str(path))
    assert isinstance(plain, Checkpoint)
    assert plain.output == out
    assert plain.completed == [True, True, True]
    assert plain.done == 3
    assert plain.func_name == "f"
    # No temporary file is left; the lock file stays, empty, for the next run.
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [".checkpoint.pkl.lock", "checkpoint.pkl"]


def test_checkpoint_load_shows_progress_during_the_run(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    seen_during_run: list[Checkpoint] = []

    def f(i: int) -> int:
        if i == 3:
            # Calls 0..2 are done; their results reach the disk promptly.
            deadline = time.monotonic() + 10
            while Checkpoint.load(path).done < 3 and time.monotonic() < deadline:
                time.sleep(0.001)
            seen_during_run.append(Checkpoint.load(path))
        return i * 10

    run_chunk(f, [[i] for i in range(5)], chunk_size=1, progress_bar=False, path=path)
    (during,) = seen_during_run
    assert during.output == [0, 10, 20, None, None]
    assert during.completed == [True, True, True, False, False]
    assert during.index >= 2


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage, not a pickle",
        pickle.dumps({"another": "program"})[:-3],
        pickle.dumps({"another": "program"}),
        Checkpoint.file_opening() + b"\x8e\x05",
    ],
    ids=["empty", "garbage", "truncated", "foreign", "ours-damaged"],
)
def test_unreadable_checkpoint_is_moved_aside_with_a_warning(
    tmp_path: Path, content: bytes, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    path.write_bytes(content)
    with pytest.warns(
        CheckpointFailedWarning,
        match=r"checkpoint\.pkl' (is not a thread-chunks checkpoint|cannot be read)",
    ):
        out = run_chunk(Counted(), PARAMS, progress_bar=False, path=path)
    assert out == [5, 7, 9]
    assert (tmp_path / "checkpoint.pkl.unreadable").read_bytes() == content
    assert Checkpoint.load(path).output == out


def test_a_second_unreadable_file_does_not_overwrite_the_first(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    (tmp_path / "checkpoint.pkl.unreadable").write_bytes(b"first")
    path.write_bytes(b"second")
    with pytest.warns(CheckpointFailedWarning):
        chunk(Counted(), PARAMS, progress_bar=False, path=path)
    assert (tmp_path / "checkpoint.pkl.unreadable").read_bytes() == b"first"
    assert (tmp_path / "checkpoint.pkl.unreadable-1").read_bytes() == b"second"


def test_unpicklable_results_warn_once_and_are_still_returned(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"

    def f(i: int) -> Any:
        return threading.Lock() if i % 2 else i

    with pytest.warns(CheckpointFailedWarning, match="cannot be pickled") as record:
        out = run_chunk(
            f, [[i] for i in range(6)], chunk_size=1, progress_bar=False, path=path
        )
    assert len(record) == 1
    assert [type(o) for o in out[1::2]] == [type(threading.Lock())] * 3
    assert out[::2] == [0, 2, 4]
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed == [True, False] * 3
    assert checkpoint.output[::2] == [0, 2, 4]


def test_resume_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    interrupted_run(path, PARAMS, fail_at=2, run=run_chunk)
    with caplog.at_level(logging.INFO, logger="thread_chunks"):
        run_chunk(Counted(), PARAMS, progress_bar=False, path=path)
    assert caplog.records[0].levelname == "INFO"
    assert "resuming from checkpoint" in caplog.text
    assert "2 of 3 calls already done" in caplog.text


def first(x: int) -> int:
    return x


def second(x: int) -> int:
    return x + 1


def test_a_changed_function_keeps_the_results_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "checkpoint.pkl"
    assert chunk(first, [[1], [2]], progress_bar=False, path=path) == [1, 2]
    with caplog.at_level(logging.INFO, logger="thread_chunks"):
        assert chunk(first, [[1], [2]], progress_bar=False, path=path) == [1, 2]
    assert [r.levelname for r in caplog.records] == ["INFO"]  # same code
    caplog.clear()
    second.__qualname__ = "first"  # the same name, other code: an edited script
    try:
        with caplog.at_level(logging.INFO, logger="thread_chunks"):
            out = chunk(second, [[1], [2]], progress_bar=False, path=path)
    finally:
        second.__qualname__ = "second"
    assert out == [1, 2]  # kept: the name and the parameters decide
    assert [r.levelname for r in caplog.records] == ["INFO", "WARNING"]
    assert "the code of first changed" in caplog.text


def test_replacing_a_checkpoint_is_logged_as_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    interrupted_run(path, PARAMS, fail_at=2, run=run_chunk)
    with caplog.at_level(logging.INFO, logger="thread_chunks"):
        run_chunk(Counted(), PARAMS[:2], progress_bar=False, path=path)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "drops its 2 saved results" in caplog.text


def test_moving_a_file_aside_is_logged_as_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, run_chunk: RunChunk
) -> None:
    path = tmp_path / "checkpoint.pkl"
    path.write_bytes(b"not a pickle")
    with (
        caplog.at_level(logging.INFO, logger="thread_chunks"),
        pytest.warns(CheckpointFailedWarning),
    ):
        run_chunk(Counted(), PARAMS, progress_bar=False, path=path)
    assert [r.levelname for r in caplog.records] == ["WARNING"]
    assert "moved unreadable checkpoint" in caplog.text


def test_warning_as_error_stops_the_run_and_keeps_what_was_saved(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    import warnings

    path = tmp_path / "checkpoint.pkl"

    def f(i: int) -> Any:
        if i == 1:
            return threading.Lock()
        if i >= 2:
            # The warning, turned into an error, must cancel the run meanwhile.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                anyio.from_thread.check_cancelled()
                time.sleep(0.001)
            raise AssertionError("the run was not stopped")
        return i

    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFailedWarning)
        with pytest.raises(CheckpointFailedWarning, match="cannot be pickled"):
            run_chunk(
                f, [[i] for i in range(50)], chunk_size=1, progress_bar=False, path=path
            )
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed[:3] == [True, False, False]
    assert checkpoint.done == 1


ANYIO_RUN_WARNS_IN_THE_LOOP = pytest.mark.xfail(
    reason="achunk run as the top-level task of anyio.run has no caller's frame: "
    "its warnings point into anyio's or trio's event loop, not at the anyio.run line",
    strict=True,
)


@pytest.mark.parametrize(
    "run_chunk",
    [
        "chunk",
        pytest.param("achunk-asyncio", marks=ANYIO_RUN_WARNS_IN_THE_LOOP),
        pytest.param("achunk-trio", marks=ANYIO_RUN_WARNS_IN_THE_LOOP),
    ],
    indirect=True,
)
def test_checkpoint_warnings_point_at_the_callers_line(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    # Awaited from a coroutine, achunk's warnings point at the ``await`` line:
    # test_options.py checks that on both backends.
    import warnings

    path = tmp_path / "checkpoint.pkl"
    path.write_bytes(b"not a pickle")  # a warning on reading, one on writing
    func = Counted(lambda i: threading.Lock() if i == 1 else i)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        run_chunk(func, [[0], [1]], chunk_size=1, progress_bar=False, path=path)
    assert [(w.category, w.filename, w.lineno) for w in caught] == [
        (CheckpointFailedWarning, __file__, line)
    ] * 2
