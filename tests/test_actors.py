"""Workers: each call borrows one actor; Chunker keeps them between runs."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from thread_chunks import Checkpoint, Chunker, LabelledActor, achunk, chunk


class Exclusive(LabelledActor):
    """An actor whose state breaks if two calls share it."""

    def __init__(self) -> None:
        super().__init__(self.work)
        self.busy = False
        self.calls = 0

    def work(self, i: int) -> int:
        assert not self.busy, "two calls shared one actor"
        self.busy = True
        self.calls += 1
        threading.Event().wait(0.001)  # give a sharing bug time to show
        self.busy = False
        return i


def test_each_actor_serves_one_call_at_a_time() -> None:
    actors = [Exclusive() for _ in range(3)]
    out = chunk(None, [[i] for i in range(60)], actors=actors, progress_bar=False)
    assert out == list(range(60))
    assert sum(a.calls for a in actors) == 60


def test_func_replaces_the_function_of_given_actors() -> None:
    actors = [LabelledActor(abs), LabelledActor(abs)]
    assert chunk(max, [[1, 2]], actors=actors, progress_bar=False) == [2]
    assert all(a.get_func() is max for a in actors)


def test_actors_count_must_equal_chunk_size() -> None:
    with pytest.raises(ValueError, match=r"got 2 actors for chunk_size=3"):
        chunk(
            None, [[1]], actors=[LabelledActor(abs), LabelledActor(abs)], chunk_size=3
        )


@pytest.mark.anyio
async def test_achunk_with_actors_and_no_func_runs_their_function() -> None:
    actors = [Exclusive(), Exclusive()]
    out = await achunk(
        None, [[i] for i in range(10)], actors=actors, progress_bar=False
    )
    assert out == list(range(10))


def test_chunker_reuses_its_actors_and_keeps_a_new_func() -> None:
    actors = [Exclusive(), Exclusive()]
    chunker = Chunker(actors=actors, progress_bar=False)
    assert chunker([[1], [2]]) == [1, 2]
    assert chunker([[3], [4]]) == [3, 4]
    assert sum(a.calls for a in actors) == 4
    assert chunker([[3, 4]], func=max) == [4]
    assert chunker([[5, 6]]) == [6]  # later calls keep max


@pytest.mark.anyio
async def test_chunker_achunk_and_its_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ck.pkl"
    chunker = Chunker(abs, chunk_size=2, progress_bar=False, path=path)
    assert await chunker.achunk([[-1], [-2], [-3]]) == [1, 2, 3]
    assert capsys.readouterr() == ("", "")  # the default progress_bar=False held
    assert Checkpoint.load(path).output == [1, 2, 3]  # the default path held
    assert await chunker.achunk([[-4]], path=tmp_path / "other.pkl") == [4]
    assert Checkpoint.load(tmp_path / "other.pkl").output == [4]
    assert Checkpoint.load(path).output == [1, 2, 3]  # an override is for one run


@pytest.mark.anyio
async def test_chunker_refuses_two_runs_at_once() -> None:
    started = anyio.Event()
    release = anyio.Event()

    async def slow(i: int) -> int:
        started.set()
        await release.wait()
        return i

    chunker = Chunker(slow, chunk_size=1, progress_bar=False)
    async with anyio.create_task_group() as tg:
        tg.start_soon(chunker.achunk, [[1]])
        await started.wait()
        with pytest.raises(RuntimeError, match="already running"):
            await chunker.achunk([[2]])
        release.set()
    assert await chunker.achunk([[3]]) == [3]


def test_chunker_checks_its_arguments_at_construction() -> None:
    with pytest.raises(TypeError, match="func and actors are both None"):
        Chunker()
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        Chunker(abs, chunk_size=0)
