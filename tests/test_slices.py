"""Tiny calls run many per trip to a worker thread: the guarantees still hold."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path
from typing import Any

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


def test_a_slow_call_after_many_tiny_ones_holds_back_no_other_call() -> None:
    """Calls run in runs, but each index is taken as its call starts: the calls
    after a slow one go to the other worker at once, in order."""
    n, slow = 20_000, 5_000  # by then, the runs hold thousands of calls
    others_done = threading.Event()
    count = [0]
    lock = threading.Lock()

    def f(x: int) -> int:
        if x == slow:  # ends only once every other call has run meanwhile
            assert others_done.wait(timeout=30), "calls waited behind the slow one"
            return -1
        with lock:
            count[0] += 1
            if count[0] == n - 1:
                others_done.set()
        return x

    out = chunk(f, [[x] for x in range(n)], chunk_size=2, progress_bar=False)
    assert out == [*range(slow), -1, *range(slow + 1, n)]


def test_a_slow_call_makes_the_next_run_a_single_call(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thread_chunks._run import Workers
    from thread_chunks._threads import RUN_TIME

    sizes: list[int] = []
    take = Workers.take_run

    def spy(self: Workers, most: int) -> Any:
        sizes.append(most)
        return take(self, most)

    monkeypatch.setattr(Workers, "take_run", spy)
    slow = 3_000

    def f(x: int) -> int:
        if x == slow:
            time.sleep(2 * RUN_TIME)
        return x

    out = chunk(f, [[x] for x in range(6_000)], chunk_size=1, progress_bar=False)
    assert out == list(range(6_000))
    assert max(sizes) > 64  # tiny calls: long runs
    runs = list(itertools.accumulate(sizes))  # where each run ends, at most
    after = next(k for k, end in enumerate(runs) if end > slow) + 1
    assert sizes[after] == 1  # the run after the slow call's: one call


def test_no_call_starts_long_after_a_failure_elsewhere() -> None:
    from thread_chunks._threads import _LONGEST_RUN

    failed = threading.Event()
    after = [0]

    def f(x: int) -> int:
        if x == 1_000:
            failed.set()
            raise ValueError("bad input")
        if failed.is_set():
            after[0] += 1
        return x

    with pytest.raises(ValueError, match="bad input"):
        chunk(f, [[x] for x in range(200_000)], chunk_size=2, progress_bar=False)
    assert after[0] <= _LONGEST_RUN  # at most the rest of the other worker's run


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_the_calls_after_a_failure_in_a_run_each_run_once(chunk_size: int) -> None:
    """A failure ends its run early: the calls after it stay for any worker to
    take, and each runs exactly once."""
    n = 30_000
    counts = [0] * n

    def f(x: int) -> int:
        counts[x] += 1
        if x % 7_001 == 7_000:
            raise ValueError(x)
        return x

    out = chunk(f, [[x] for x in range(n)], chunk_size=chunk_size,
                errors="return", progress_bar=False)  # fmt: skip
    assert counts == [1] * n
    failed = [x for x in range(n) if x % 7_001 == 7_000]
    assert [i for i, r in enumerate(out) if isinstance(r, ValueError)] == failed
    assert all(out[x] == x for x in range(n) if x not in failed)


def test_a_slow_call_never_holds_back_the_results_before_it(tmp_path: Path) -> None:
    """Calls run in runs, but a call that hangs does not keep the results
    before it in its run out of the checkpoint meanwhile."""
    path = tmp_path / "ck.pkl"
    slow = 3_000

    def f(x: int) -> int:
        if x == slow:  # returns once every result before it is saved
            deadline = time.monotonic() + 20
            while Checkpoint.load(path).done < slow:
                assert time.monotonic() < deadline, "earlier results held back"
                threading.Event().wait(0.01)
        return x

    out = chunk(f, [[x] for x in range(slow + 100)], chunk_size=1,
                progress_bar=False, path=path)  # fmt: skip
    assert out == list(range(slow + 100))


def test_the_rest_of_failed_runs_never_piles_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each failure leaves the rest of its run for any worker; once taken, it
    is gone: the runs looked at stay as few as the workers."""
    from thread_chunks._threads import Threads

    most = [0]
    take = Threads._take_run

    def spy(self: Threads, size: int) -> Any:
        most[0] = max(most[0], len(self._runs))
        return take(self, size)

    monkeypatch.setattr(Threads, "_take_run", spy)

    def odd_fails(x: int) -> int:
        if x % 2:
            raise ValueError(x)
        return x

    out = chunk(odd_fails, [[x] for x in range(3_000)], chunk_size=2,
                errors="return", progress_bar=False)  # fmt: skip
    assert [r for r in out if not isinstance(r, ValueError)] == list(range(0, 3_000, 2))
    assert most[0] <= 2 + 2  # the workers' runs, and a rest or two
