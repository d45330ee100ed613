"""thread-chunks 1.x's Ray actors as workers: RemoteLabelledActor handles as actors."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from thread_chunks import Checkpoint, Chunker, achunk, chunk

ray = pytest.importorskip("ray", reason="Ray is not installed: pip install ray")


@pytest.fixture(scope="module")
def remote_actor_class() -> Iterator[Any]:
    """A local Ray instance of two CPUs, for this module's tests only."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    from thread_chunks import RemoteLabelledActor

    yield RemoteLabelledActor
    ray.shutdown()


@ray.remote
class Gate:
    """An async Ray actor: counts the calls that start, holds them until opened."""

    def __init__(self) -> None:
        self.started = 0
        self.both = asyncio.Event()
        self.opened = asyncio.Event()

    async def enter(self) -> None:
        self.started += 1
        if self.started == 2:
            self.both.set()
        await self.opened.wait()

    async def wait_for_two(self) -> None:
        await self.both.wait()

    async def open(self) -> None:
        self.opened.set()

    async def count(self) -> int:
        return self.started


def where(x: int) -> tuple[int, int]:
    return os.getpid(), x


def test_calls_run_on_the_ray_actors_in_order(remote_actor_class: Any) -> None:
    actors = [remote_actor_class.remote(where) for _ in range(2)]
    out = chunk(None, [[x] for x in range(8)], actors, 2, False)
    assert [x for _, x in out] == list(range(8))
    pids = {pid for pid, _ in out}
    assert os.getpid() not in pids
    assert len(pids) == 2  # both actors served calls


def test_func_replaces_the_function_of_the_ray_actors(remote_actor_class: Any) -> None:
    actors = [remote_actor_class.remote(abs) for _ in range(2)]
    assert chunk(max, [[1, 5], [7, 2]], actors, 2, False) == [5, 7]
    assert ray.get(actors[0].get_func.remote()) is max
    assert chunk(None, [[3, 4]], actors, 2, False) == [4]


def test_labelled_calls_as_in_1x(remote_actor_class: Any) -> None:
    actor = remote_actor_class.remote(pow)
    assert ray.get(actor.run.remote("label", 2, 5)) == ("label", 32)
    ray.get(actor.set_func.remote(min))
    assert ray.get(actor.run.remote(0, 2, 5)) == (0, 2)


def keywords(x: int, *, scale: int = 1) -> int:
    return x * scale


def test_mapping_rows_are_keyword_arguments_on_ray(remote_actor_class: Any) -> None:
    actors = [remote_actor_class.remote(keywords) for _ in range(2)]
    rows: list[Any] = [[2], {"x": 3, "scale": 10}, {"x": 4}]
    assert chunk(None, rows, actors, 2, False) == [2, 30, 4]


def test_checkpoint_and_resume_on_ray(remote_actor_class: Any, tmp_path: Path) -> None:
    path = tmp_path / "ray.pkl"
    actors = [remote_actor_class.remote(abs) for _ in range(2)]

    def fails_at_3(x: int) -> int:
        if x == 3:
            raise ValueError("bad input 3")
        return x * 10

    params = [[x] for x in range(6)]
    with pytest.raises(ValueError, match="bad input 3") as info:
        chunk(fails_at_3, params, actors, 2, False, path)
    assert any("raised by call 3" in note for note in info.value.__notes__)
    saved = Checkpoint.load(path)
    assert saved.completed[3] is False
    assert saved.done >= 2

    def fixed(x: int) -> tuple[int, int]:
        return os.getpid(), x * 10

    fixed.__qualname__ = fails_at_3.__qualname__
    out = chunk(fixed, params, actors, 2, False, path)
    recomputed = [i for i, item in enumerate(out) if isinstance(item, tuple)]
    assert recomputed == [i for i, done in enumerate(saved.completed) if not done]
    assert Checkpoint.load(path).done == 6


def test_chunker_with_ray_actors(remote_actor_class: Any) -> None:
    actors = [remote_actor_class.remote(abs) for _ in range(2)]
    chunker = Chunker(actors=actors, progress_bar=False)
    assert chunker.chunk_size == 2
    assert chunker([[-1], [-2], [-3]]) == [1, 2, 3]


def test_ray_actors_and_an_executor_do_not_mix(remote_actor_class: Any) -> None:
    actors = [remote_actor_class.remote(abs)]
    with pytest.raises(TypeError, match="Ray actors run plain functions"):
        chunk(None, [[1]], actors, 1, False, executor="processes")


@pytest.mark.anyio
async def test_cancelling_waits_for_running_ray_calls_and_saves(
    remote_actor_class: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cancel.pkl"
    gate = cast(Any, Gate).remote()  # @ray.remote made Gate an actor class

    def held(gate: Any, x: int) -> int:
        ray.get(gate.enter.remote())
        return x

    actors = [remote_actor_class.remote(abs) for _ in range(2)]
    params = [[gate, x] for x in range(6)]
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(
                lambda: achunk(
                    held, params, actors=actors, progress_bar=False, path=path
                )
            )
            with anyio.fail_after(60):
                await anyio.to_thread.run_sync(ray.get, gate.wait_for_two.remote())
            scope.cancel()  # both actors are busy with calls 0 and 1
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(ray.get, gate.open.remote())
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed == [True, True] + [False] * 4
    assert ray.get(gate.count.remote()) == 2  # no call started after the cancel


def test_ray_started_by_thread_chunks_uses_ray_config() -> None:
    # In a process of its own: this module's Ray instance is already running.
    code = """
import ray
from thread_chunks import RemoteLabelledActor, chunk, config
config.ray_config = {"num_cpus": 1, "include_dashboard": False}
actor = RemoteLabelledActor.remote(abs)
print(ray.is_initialized(), ray.cluster_resources()["CPU"])
print(chunk(None, [[-2]], [actor], 1, False))
ray.shutdown()
"""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["True 1.0", "[2]"]


def slow_on_one(x: int) -> int:
    import time

    if x == 1:
        time.sleep(3)  # past the timeout; the actor stays busy meanwhile
    return x


def test_a_ray_call_past_its_timeout_fails_with_timeout_error(
    remote_actor_class: Any,
) -> None:
    actors = [remote_actor_class.remote(slow_on_one) for _ in range(2)]
    out = chunk(None, [[0], [1]], actors, errors="return", timeout=0.5,
                progress_bar=False)  # fmt: skip
    assert out[0] == 0
    assert isinstance(out[1], TimeoutError)
    assert "timeout=0.5" in str(out[1])
