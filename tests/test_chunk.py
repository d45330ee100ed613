"""Results, ordering and the sync driver."""

from __future__ import annotations

import asyncio
import gc
import threading
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from tests.helpers import RunChunk, Spy
from thread_chunks import achunk, chunk, config


def add(x: int, y: int) -> int:
    return x + y


def test_chunk_returns_results_in_parameter_order() -> None:
    assert chunk(add, [[1, 4], [2, 5], [3, 6]], progress_bar=False) == [5, 7, 9]


def test_positional_order_of_chunk_arguments() -> None:
    assert chunk(add, [[1, 1]], None, 1, False, None) == [2]


def test_tuples_and_generators_are_accepted() -> None:
    params = ((i, i) for i in range(5))
    assert chunk(add, params, chunk_size=2, progress_bar=False) == [0, 2, 4, 6, 8]


def test_empty_parameters_return_an_empty_list_without_calling() -> None:
    def never(*args: object) -> None:
        raise AssertionError("called")

    assert chunk(never, [], progress_bar=False) == []


@pytest.mark.parametrize("chunk_size", [1, 2, 7])
def test_order_holds_when_calls_finish_out_of_order(chunk_size: int) -> None:
    finished = [threading.Event() for _ in range(12)]

    def f(i: int) -> int:
        # With room for two calls, each even call waits for the odd one after
        # it, so results arrive out of order.
        if chunk_size > 1 and i % 2 == 0:
            assert finished[i + 1].wait(timeout=10)
        finished[i].set()
        return i * i

    out = chunk(f, [[i] for i in range(12)], chunk_size=chunk_size, progress_bar=False)
    assert out == [i * i for i in range(12)]


def test_chunk_works_inside_a_running_event_loop() -> None:
    async def main() -> list[int]:
        # Like a Jupyter cell or sync code called from an async app.
        return chunk(add, [[1, 2], [3, 4]], chunk_size=2, progress_bar=False)

    assert asyncio.run(main()) == [3, 7]


def test_chunk_drives_a_private_loop_off_the_caller_thread() -> None:
    seen: list[str] = []

    def where() -> str:
        seen.append(threading.current_thread().name)
        return "ok"

    assert chunk(where, [[]], progress_bar=False) == ["ok"]
    assert seen
    assert seen[0] != threading.current_thread().name


def test_default_chunk_size_comes_from_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config, "default_chunk_size", 3)
    spy = Spy(open_at=3)

    def f(i: int) -> int:
        with spy:
            spy.gate.wait(timeout=5)
        return i

    assert chunk(f, [[i] for i in range(9)], progress_bar=False) == list(range(9))
    assert spy.peak == 3


@pytest.mark.anyio
async def test_achunk_runs_sync_functions() -> None:
    assert await achunk(add, [[1, 2]], progress_bar=False) == [3]


@pytest.mark.anyio
async def test_achunk_awaits_coroutine_functions_on_the_loop() -> None:
    loop_thread = threading.current_thread()

    async def double(x: int) -> tuple[int, bool]:
        await anyio.lowlevel.checkpoint()
        return 2 * x, threading.current_thread() is loop_thread

    out = await achunk(double, [[1], [2], [3]], chunk_size=2, progress_bar=False)
    assert out == [(2, True), (4, True), (6, True)]


@pytest.mark.anyio
async def test_falsy_results_are_results() -> None:
    values: list[object] = [None, 0, [], False, ""]
    out = await achunk(lambda v: v, [[v] for v in values], progress_bar=False)
    assert out == values


def _state_in_cycles() -> list[object]:
    """The objects holding a run's state that only the cycle collector frees.

    Call it with the collector paused since before the run: what a collection
    finds then is what reference counting alone would never have freed.
    """
    from thread_chunks._run import Workers
    from thread_chunks._store import CheckpointData, CheckpointStore
    from thread_chunks._threads import Threads

    kinds = (Workers, Threads, CheckpointStore, CheckpointData)
    gc.set_debug(gc.DEBUG_SAVEALL)  # keep what it frees in gc.garbage
    try:
        gc.collect()
        return [o for o in gc.garbage if isinstance(o, kinds)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.mark.parametrize("with_path", [False, True])
def test_a_finished_run_leaves_no_cycles_for_the_collector(
    with_path: bool, tmp_path: Path, run_chunk: RunChunk
) -> None:
    # A cycle would keep every result until a collection, which then takes
    # tens of milliseconds in the middle of whatever runs next.
    path = tmp_path / "checkpoint.pkl" if with_path else None
    gc.collect()
    gc.disable()
    try:
        out = run_chunk(add, [[x, 1] for x in range(1000)], chunk_size=2,
                        progress_bar=False, path=path)  # fmt: skip
        in_cycles = _state_in_cycles()
    finally:
        gc.enable()
    assert out == [x + 1 for x in range(1000)]
    assert in_cycles == []
