"""A failing call, cancellation: no new calls, running calls finish, all saved."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import anyio.from_thread
import anyio.lowlevel
import pytest

from thread_chunks import Checkpoint, achunk, chunk

pytestmark = pytest.mark.anyio


class Scenario:
    """Call 0 is slow (it waits for call 1 to fail), call 1 raises, others count."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.failed = threading.Event()

    def __call__(self, i: int) -> int:
        self.started.append(i)
        if i == 1:
            self.failed.set()
            raise ValueError("bad input 1")
        if i == 0:
            assert self.failed.wait(timeout=10)
        return i * 10


async def test_failure_raises_the_original_exception_with_a_note(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    scenario = Scenario()
    params = [[i] for i in range(6)]
    with pytest.raises(ValueError, match="bad input 1") as info:
        await achunk(scenario, params, chunk_size=2, progress_bar=False, path=path)
    assert type(info.value) is ValueError  # not an exception group
    assert any("call 1" in note and "[1]" in note for note in info.value.__notes__)
    # Call 0 was running when call 1 failed: it finished and was saved. Its
    # worker may take call 2 before the failure reaches the event loop, but
    # the calls after that never start.
    assert {0, 1} <= set(scenario.started) <= {0, 1, 2}
    checkpoint = Checkpoint.load(path)
    saved = [i for i in scenario.started if i != 1]
    assert [i for i, done in enumerate(checkpoint.completed) if done] == sorted(saved)
    assert checkpoint.output[0] == 0


async def test_no_call_starts_after_a_coroutine_fails(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    started: list[int] = []
    failed = anyio.Event()

    async def f(i: int) -> int:
        started.append(i)
        if i == 1:
            failed.set()
            raise ValueError("bad input 1")
        if i == 0:
            await failed.wait()
            await anyio.lowlevel.checkpoint()
        return i

    with pytest.raises(ValueError, match="bad input 1"):
        await achunk(
            f, [[i] for i in range(6)], chunk_size=2, progress_bar=False, path=path
        )
    assert sorted(started) == [0, 1]
    assert Checkpoint.load(path).completed == [True] + [False] * 5


async def test_rerun_with_a_fixed_function_resumes(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    params = [[i] for i in range(6)]
    with pytest.raises(ValueError, match="bad input 1"):
        await achunk(Scenario(), params, chunk_size=2, progress_bar=False, path=path)
    # Which calls started after call 0 depends on when the failure reached the
    # event loop; the rerun must compute exactly those that were not saved.
    completed = Checkpoint.load(path).completed
    calls: list[int] = []

    def fixed(i: int) -> int:
        calls.append(i)
        return i * 10

    fixed.__qualname__ = "Scenario"
    out = await achunk(fixed, params, chunk_size=2, progress_bar=False, path=path)
    assert out == [0, 10, 20, 30, 40, 50]
    assert 1 in calls
    assert 0 not in calls
    assert sorted(calls) == [i for i, done in enumerate(completed) if not done]


def test_chunk_raises_the_original_exception_too() -> None:
    with pytest.raises(ValueError, match="bad input 1") as info:
        chunk(Scenario(), [[i] for i in range(4)], chunk_size=2, progress_bar=False)
    assert type(info.value) is ValueError


async def test_failing_coroutine_function() -> None:
    async def f(i: int) -> int:
        if i == 2:
            raise KeyError(i)
        return i

    with pytest.raises(KeyError) as info:
        await achunk(f, [[i] for i in range(5)], chunk_size=1, progress_bar=False)
    assert "call 2" in info.value.__notes__[0]


async def test_cancellation_lets_running_calls_finish_and_saves(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    started: list[int] = []
    two_running = threading.Event()
    release = threading.Event()

    def f(i: int) -> int:
        started.append(i)
        if i == 3:
            two_running.set()
        if i >= 2:
            assert release.wait(timeout=10)
        return i * 10

    params = [[i] for i in range(8)]
    async with anyio.create_task_group() as tg:

        async def run() -> None:
            with anyio.CancelScope() as scope:
                scope_holder.append(scope)
                await achunk(f, params, chunk_size=2, progress_bar=False, path=path)
            assert scope.cancelled_caught

        scope_holder: list[anyio.CancelScope] = []
        tg.start_soon(run)
        await anyio.to_thread.run_sync(two_running.wait, 10)
        scope_holder[0].cancel()
        release.set()
    # Calls 2 and 3 were running when cancelled: both finished and were saved;
    # no later call started.
    assert sorted(started) == [0, 1, 2, 3]
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed == [True] * 4 + [False] * 4
    assert checkpoint.output[:4] == [0, 10, 20, 30]


async def test_deadline_cancels_waiting_coroutines_and_saves(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    never = anyio.Event()
    reached = anyio.Event()

    async def f(i: int) -> int:
        if i == 2:
            reached.set()
            await never.wait()  # a coroutine is cancellable, unlike a thread
        return i

    async with anyio.create_task_group() as tg:
        with anyio.CancelScope() as scope:
            tg.start_soon(reached_then_cancel, reached, scope)
            await achunk(
                f, [[i] for i in range(4)], chunk_size=1, progress_bar=False, path=path
            )
    assert scope.cancelled_caught
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed == [True, True, False, False]


async def reached_then_cancel(reached: anyio.Event, scope: anyio.CancelScope) -> None:
    await reached.wait()
    scope.cancel()


async def test_a_long_sync_call_can_notice_cancellation_itself(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    entered = threading.Event()

    def patient(i: int) -> int:
        if i == 1:
            entered.set()
            while True:  # until the run is cancelled
                anyio.from_thread.check_cancelled()
                threading.Event().wait(0.001)
        return i

    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as tg:

            async def cancel_when_entered() -> None:
                await anyio.to_thread.run_sync(entered.wait, 10)
                scope.cancel()

            tg.start_soon(cancel_when_entered)
            await achunk(
                patient, [[0], [1], [2]], chunk_size=1, progress_bar=False, path=path
            )
    assert scope.cancelled_caught
    assert Checkpoint.load(path).completed == [True, False, False]


@pytest.mark.anyio
async def test_a_retry_that_fails_after_the_run_is_cancelled_is_not_saved_as_final(
    tmp_path: Path,
) -> None:
    # The call was cut short by the cancellation, not given up after all its
    # attempts: nothing says it failed for good, and a rerun tries it again.
    attempts: list[int] = []
    running, release = threading.Event(), threading.Event()

    def f(x: int) -> int:
        attempts.append(x)
        if len(attempts) == 2:  # the first retry: held until the run is cancelled
            running.set()
            assert release.wait(30)
        raise ValueError(f"attempt {len(attempts)}")

    async def cancel_during_the_retry(scope: anyio.CancelScope) -> None:
        await anyio.to_thread.run_sync(running.wait, 30)
        scope.cancel()
        with anyio.CancelScope(shield=True):  # the run's tasks see it first
            await anyio.wait_all_tasks_blocked()
        release.set()

    path = tmp_path / "c.pkl"
    with anyio.fail_after(30):
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(cancel_during_the_retry, task_group.cancel_scope)
            await achunk(f, [[0]], chunk_size=1, retries=2, retry_delay=0.001,
                         errors="return", path=path, progress_bar=False)  # fmt: skip
    assert len(attempts) == 2
    assert Checkpoint.load(path).failures == {}
