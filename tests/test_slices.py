"""Tiny calls run many per trip to a worker thread: the guarantees still hold."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import anyio
import anyio.from_thread
import pytest

from tests.helpers import Spy
from thread_chunks import Checkpoint, achunk, chunk


def test_tiny_calls_never_run_more_than_chunk_size_at_once() -> None:
    spy = Spy()

    def tiny(x: int) -> int:
        with spy:
            return x

    out = chunk(tiny, [[x] for x in range(20_000)], chunk_size=3, progress_bar=False)
    assert out == list(range(20_000))
    assert 1 <= spy.peak <= 3


def test_tiny_calls_go_on_while_a_slow_one_runs() -> None:
    n = 500
    done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def f(x: int) -> int:
        if x == 0:  # slow: ends only once every tiny call has run meanwhile
            assert done.wait(timeout=30), "the tiny calls waited for the slow one"
            return -1
        with lock:
            count[0] += 1
            if count[0] == n - 1:
                done.set()
        return x

    out = chunk(f, [[x] for x in range(n)], chunk_size=2, progress_bar=False)
    assert out == [-1, *range(1, n)]


def test_a_failure_in_a_slice_keeps_every_result_before_it(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"

    def fails_at(x: int) -> int:
        if x == 7_000:
            raise ValueError("bad input")
        return x

    with pytest.raises(ValueError, match="bad input"):
        chunk(fails_at, [[x] for x in range(10_000)], chunk_size=1,
              progress_bar=False, path=path)  # fmt: skip
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed[:7_000] == [True] * 7_000
    assert checkpoint.done == 7_000


@pytest.mark.anyio
async def test_cancelling_a_stream_of_tiny_calls_is_prompt_and_saves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    n = 300_000
    calls = [0]
    scope = anyio.CancelScope()

    def tiny(x: int) -> int:
        calls[0] += 1
        if calls[0] == 50_000:  # mid-stream: cancel the run from this thread
            anyio.from_thread.run_sync(scope.cancel)
        return x

    parameters = [[x] for x in range(n)]
    with anyio.fail_after(30), scope:
        await achunk(tiny, parameters, chunk_size=2, progress_bar=False, path=path)
    assert scope.cancelled_caught
    saved = Checkpoint.load(path)
    assert saved.done < n  # stopped before the end
    assert saved.done == calls[0]  # every completed call was saved
    calls[0] = 0
    assert await achunk(tiny, parameters, chunk_size=2, progress_bar=False,
                        path=path) == list(range(n))  # fmt: skip
    assert calls[0] == n - saved.done  # the rerun repeated none of them


@pytest.mark.anyio
async def test_coroutines_that_never_await_let_other_tasks_run() -> None:
    other_ran = anyio.Event()
    seen: list[bool] = []

    async def busy(x: int) -> int:
        if x == 0:  # runs once the event loop gets control from the calls
            task_group.start_soon(other)
        seen.append(other_ran.is_set())
        start = time.perf_counter()
        while time.perf_counter() - start < 0.001:  # 1 ms without awaiting
            pass
        return x

    async def other() -> None:
        other_ran.set()

    async with anyio.create_task_group() as task_group:
        # 30 ms of calls that never await: the other task runs meanwhile.
        out = await achunk(busy, [[x] for x in range(30)], chunk_size=1,
                           progress_bar=False)  # fmt: skip
    assert out == list(range(30))
    assert seen[-1], "the event loop never ran the other task during the calls"


@pytest.mark.anyio
async def test_cancelling_a_stream_of_tiny_coroutines_stops_within_32_calls(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    n = 100_000
    ran: list[int] = []
    scope = anyio.CancelScope()

    async def tiny(x: int) -> int:  # never awaits
        ran.append(x)
        if len(ran) == 5_000:
            scope.cancel()
        return x

    parameters = [[x] for x in range(n)]
    with anyio.fail_after(30), scope:
        await achunk(tiny, parameters, chunk_size=2, progress_bar=False, path=path)
    assert scope.cancelled_caught
    assert 5_000 <= len(ran) <= 5_000 + 2 * 32  # each worker checks every 32
    saved = Checkpoint.load(path)
    assert sorted(i for i, done in enumerate(saved.completed) if done) == sorted(ran)
