"""Bad input raises a clear error naming the argument, before any call runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from thread_chunks import LabelledActor, achunk, chunk

calls: list[object] = []


def record(*args: object) -> None:
    calls.append(args)


@pytest.fixture(autouse=True)
def _no_calls() -> Any:
    calls.clear()
    yield
    assert calls == [], "a call ran before the bad input was reported"


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"chunk_size": 0}, ValueError, r"chunk_size must be >= 1, got 0"),
        ({"chunk_size": -3}, ValueError, r"chunk_size must be >= 1, got -3"),
        ({"chunk_size": 2.0}, TypeError, r"chunk_size must be an int >= 1, got 2\.0"),
        ({"chunk_size": "2"}, TypeError, r"chunk_size must be an int >= 1, got '2'"),
        ({"chunk_size": True}, TypeError, r"chunk_size must be an int"),
        ({"progress_bar": "yes"}, TypeError, r"progress_bar must be True, False"),
        ({"path": 3}, TypeError, r"path must be a str or os.PathLike, got int"),
        ({"checkpoint_every": -1}, ValueError, r"checkpoint_every must be >= 0"),
    ],
)
def test_bad_keyword_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        chunk(record, [[1], [2]], **kwargs)


def test_func_and_actors_both_none() -> None:
    with pytest.raises(TypeError, match="func and actors are both None"):
        chunk(None, [[1]])


def test_func_not_callable_suggests_passing_the_function() -> None:
    with pytest.raises(TypeError, match=r"func must be callable, got 5 \(int\)"):
        chunk(5, [[1]])  # type: ignore[call-overload]


def test_wrong_number_of_actors_names_both_numbers() -> None:
    actors = [LabelledActor(record) for _ in range(3)]
    with pytest.raises(ValueError, match=r"got 3 actors for chunk_size=2"):
        chunk(None, [[1]], actors=actors, chunk_size=2)


def test_actor_used_twice() -> None:
    actor = LabelledActor(record)
    with pytest.raises(ValueError, match=r"actors\[1\] is the same object as "):
        chunk(None, [[1]], actors=[actor, actor])


def test_actor_of_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"actors\[0\] must be a LabelledActor"):
        chunk(None, [[1]], actors=[record])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        ([1, 2, 3], r"parameters\[0\] must be an argument list .* got 1 \(int\)"),
        ([[1], 2], r"parameters\[1\] must be an argument list .* got 2 \(int\)"),
        ([[1], [2], "ab"], r"parameters\[2\] must be an argument list"),
        ("abc", r"parameters must be a list of argument lists"),
        (5, r"parameters must be a list of argument lists, one per call, got int"),
    ],
)
def test_bad_parameters_name_the_index(parameters: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        chunk(record, parameters)


def test_scalar_parameters_suggest_wrapping_each() -> None:
    with pytest.raises(TypeError, match=r"pass \[\[x\] for x in values\]"):
        chunk(record, [1, 2])  # type: ignore[arg-type, list-item]


def test_path_that_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"is a directory; pass a file name"):
        chunk(record, [[1]], path=tmp_path)


def test_checkpoint_directory_that_cannot_be_made(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ValueError, match=r"a-file', which is a file, not a directory"):
        chunk(record, [[1]], path=blocker / "sub" / "ck.pkl", progress_bar=False)
    assert blocker.read_text() == "not a directory"


def test_missing_checkpoint_directories_are_created(tmp_path: Path) -> None:
    calls.append("expected")  # this run is meant to call
    path = tmp_path / "a" / "b" / "ck.pkl"
    assert chunk(abs, [[-1]], path=path, progress_bar=False) == [1]
    assert path.is_file()
    calls.clear()


@pytest.mark.anyio
async def test_achunk_validates_before_running() -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        await achunk(record, [[1]], chunk_size=0)


def test_unpicklable_parameters_with_a_checkpoint(tmp_path: Path) -> None:
    import threading

    with pytest.raises(TypeError, match=r"path=.*cannot be pickled.*leave out path="):
        chunk(record, [[threading.Lock()]], path=tmp_path / "ck.pkl")
    assert [p.name for p in tmp_path.iterdir()] == [".ck.pkl.lock"]  # no checkpoint


def test_two_runs_on_one_checkpoint_at_once(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "shared.pkl"
    inside, release = threading.Event(), threading.Event()

    def first(x: int) -> int:
        inside.set()
        assert release.wait(timeout=10)
        return x

    calls.append("expected")  # the first run is meant to call
    runner = threading.Thread(
        target=chunk, args=(first, [[1]]), kwargs={"path": path, "progress_bar": False}
    )
    runner.start()
    try:
        assert inside.wait(timeout=10)
        with pytest.raises(RuntimeError, match=r"shared\.pkl' is being written by"):
            chunk(abs, [[-1]], path=path, progress_bar=False)
    finally:
        release.set()
        runner.join()
    calls.clear()
    assert chunk(abs, [[-1]], path=path, progress_bar=False) == [1]  # released


def test_bad_input_leaves_the_actors_function_alone() -> None:
    actors = [LabelledActor(abs), LabelledActor(abs)]
    with pytest.raises(TypeError, match=r"parameters\[0\] must be an argument list"):
        chunk(record, [1], actors=actors)  # type: ignore[arg-type, list-item]
    assert [actor.get_func() for actor in actors] == [abs, abs]
