"""Long jobs: errors=, retries=, streaming results, inspecting a checkpoint."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests import engines
from tests.helpers import RunChunk, Spy
from thread_chunks import Checkpoint, achunk, achunk_iter, chunk, chunk_iter


def fails_at_3(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x * 10


PARAMS = [[x] for x in range(20)]


def test_defer_runs_every_call_then_raises_a_group(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.raises(ExceptionGroup) as info:
        run_chunk(fails_at_3, PARAMS, errors="defer", progress_bar=False, path=path)
    group = info.value
    assert str(group).startswith("1 of 20 calls failed")
    (exc,) = group.exceptions
    assert isinstance(exc, ValueError)
    assert exc.__notes__ == ["raised by call 3: fails_at_3(*parameters[3]) with "
                             "parameters[3] = [3]"]  # fmt: skip
    checkpoint = Checkpoint.load(path)
    assert checkpoint.done == 19
    assert not checkpoint.completed[3]
    failure = checkpoint.failures[3]
    assert (failure.exception_type, failure.message, failure.attempts) == (
        "ValueError",
        "bad input 3",
        1,
    )
    assert "fails_at_3" in failure.traceback


def test_except_star_catches_the_deferred_failures() -> None:
    caught: list[BaseException] = []
    try:
        chunk(fails_at_3, PARAMS, errors="defer", progress_bar=False)
    except* ValueError as group:
        caught.extend(group.exceptions)
    assert [str(e) for e in caught] == ["bad input 3"]


def test_a_rerun_after_defer_computes_exactly_the_failed_call(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.raises(ExceptionGroup):
        run_chunk(fails_at_3, PARAMS, errors="defer", progress_bar=False, path=path)
    calls: list[int] = []

    def fixed(x: int) -> int:
        calls.append(x)
        return x * 10

    fixed.__qualname__ = fails_at_3.__qualname__
    out = run_chunk(fixed, PARAMS, errors="defer", progress_bar=False, path=path)
    assert out == [x * 10 for x in range(20)]
    assert calls == [3]
    assert Checkpoint.load(path).failures == {}  # kept until the call succeeds


def test_return_puts_each_exception_in_its_place(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    out = run_chunk(fails_at_3, PARAMS, errors="return", progress_bar=False,
                    path=path)  # fmt: skip
    assert isinstance(out[3], ValueError)
    assert out[:3] + out[4:] == [x * 10 for x in range(20) if x != 3]
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed[3] is False
    assert list(checkpoint.failures) == [3]


def test_raise_stays_the_default_and_records_the_failure(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.raises(ValueError, match="bad input 3"):
        run_chunk(fails_at_3, PARAMS, chunk_size=1, progress_bar=False, path=path)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed[:3] == [True] * 3
    assert checkpoint.done == 3
    assert list(checkpoint.failures) == [3]


def test_errors_on_a_process_pool(tmp_path: Path) -> None:
    params = [[x, 2] for x in range(5)]
    with ProcessPoolExecutor(2) as pool:
        out = chunk(engines.fail_on, params, errors="return", executor=pool,
                    progress_bar=False, path=tmp_path / "ck.pkl")  # fmt: skip
    assert out[:2] == [0, 1]
    assert isinstance(out[2], ValueError)
    assert Checkpoint.load(tmp_path / "ck.pkl").failures[2].message == "bad input 2"


class Flaky:
    """Fails ``failures`` times per argument, then works; counts every attempt."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.attempts: dict[int, int] = {}
        self.lock = threading.Lock()

    def __call__(self, x: int) -> int:
        with self.lock:
            self.attempts[x] = self.attempts.get(x, 0) + 1
            attempt = self.attempts[x]
        if attempt <= self.failures:
            raise ConnectionError(f"attempt {attempt} of {x}")
        return x


def test_retries_try_a_flaky_call_again(run_chunk: RunChunk) -> None:
    flaky = Flaky(failures=2)
    out = run_chunk(flaky, [[x] for x in range(4)], retries=2, retry_delay=0,
                    progress_bar=False)  # fmt: skip
    assert out == [0, 1, 2, 3]
    assert flaky.attempts == {0: 3, 1: 3, 2: 3, 3: 3}


def test_a_call_that_always_fails_is_tried_retries_plus_one_times(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    flaky = Flaky(failures=100)
    path = tmp_path / "ck.pkl"
    out = run_chunk(flaky, [[0], [1]], retries=3, retry_delay=0, errors="return",
                    progress_bar=False, path=path)  # fmt: skip
    assert [str(e) for e in out] == ["attempt 4 of 0", "attempt 4 of 1"]
    assert flaky.attempts == {0: 4, 1: 4}
    assert Checkpoint.load(path).failures[0].attempts == 4


def test_retries_never_run_more_than_chunk_size_calls(run_chunk: RunChunk) -> None:
    spy = Spy()

    def sometimes(x: int) -> int:
        with spy:
            threading.Event().wait(0.002)
            if x % 2:
                raise OSError("flaky")
        return x

    out = run_chunk(sometimes, [[x] for x in range(12)], chunk_size=3, retries=2,
                    retry_delay=0.001, errors="return", progress_bar=False)  # fmt: skip
    assert spy.peak <= 3
    assert [x for x in out if isinstance(x, int)] == [0, 2, 4, 6, 8, 10]


@pytest.mark.anyio
async def test_cancelling_during_a_retry_delay_stops_at_once() -> None:
    failed = anyio.Event()

    async def fails(x: int) -> int:
        failed.set()
        raise ConnectionError("rate limited")

    with anyio.fail_after(10):  # the delay is an hour
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(
                    lambda: achunk(
                        fails, [[1]], retries=5, retry_delay=3600, progress_bar=False
                    )
                )
                await failed.wait()
                scope.cancel()
    assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"errors": "ignore"}, ValueError, "errors must be 'raise', 'defer' or"),
        ({"retries": True}, TypeError, "retries must be an int >= 0, got True"),
        ({"retries": 1.0}, TypeError, "retries must be an int >= 0"),
        ({"retries": -1}, ValueError, "retries must be >= 0, got -1"),
        ({"retry_delay": "1"}, TypeError, "retry_delay must be a number"),
        ({"retry_delay": -1}, ValueError, "retry_delay must be >= 0 and finite"),
        ({"retry_delay": float("inf")}, ValueError, "retry_delay must be >= 0"),
        ({"retry_delay": float("nan")}, ValueError, "retry_delay must be >= 0"),
    ],
)
def test_bad_long_job_options(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    def never(x: int) -> int:
        raise AssertionError("called")

    with pytest.raises(error, match=message):
        chunk(never, [[1]], progress_bar=False, **kwargs)


def test_chunk_iter_yields_saved_results_first_then_as_calls_complete(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    chunk(fails_at_3, PARAMS[:3], progress_bar=False, path=path)  # a shorter run
    # The same parameters as that run, then more: a new run, all computed.
    order = [i for i, _ in chunk_iter(fails_at_3, PARAMS[:3], progress_bar=False,
                                      path=path)]  # fmt: skip
    assert sorted(order) == [0, 1, 2]
    gate = [threading.Event() for _ in range(4)]

    def ordered(x: int) -> int:
        if x < 3:
            assert gate[x].wait(timeout=10)  # call x waits for call x + 1
        gate[x - 1].set() if x > 0 else None
        return x * 10

    ordered.__qualname__ = fails_at_3.__qualname__
    pairs = list(chunk_iter(ordered, PARAMS[:4], chunk_size=4, progress_bar=False))
    assert [i for i, _ in pairs] == [3, 2, 1, 0]  # completion order
    assert sorted(pairs) == [(i, i * 10) for i in range(4)]


def test_resumed_results_come_first(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.raises(ValueError, match="bad input 3"):
        chunk(fails_at_3, PARAMS[:6], chunk_size=1, progress_bar=False, path=path)
    pairs = list(chunk_iter(fails_at_3, PARAMS[:6], errors="return",
                            progress_bar=False, path=path))  # fmt: skip
    assert [i for i, _ in pairs[:3]] == [0, 1, 2]  # from the checkpoint, at once
    failed = dict(pairs)[3]
    assert isinstance(failed, ValueError)


def test_leaving_chunk_iter_early_saves_and_leaves_no_thread(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    before = set(threading.enumerate())
    seen = []
    for i, result in chunk_iter(fails_at_3, PARAMS[4:], chunk_size=2,
                                progress_bar=False, path=path):  # fmt: skip
        seen.append((i, result))
        if len(seen) == 3:
            break
    # The run's event loop has ended; its idle worker threads end with it.
    deadline = time.monotonic() + 10
    while not set(threading.enumerate()) <= before:
        assert time.monotonic() < deadline, "a thread outlived the loop"
        threading.Event().wait(0.01)
    checkpoint = Checkpoint.load(path)
    assert {i for i, _ in seen} <= set(checkpoint.results)
    calls: list[int] = []

    def fixed(x: int) -> int:
        calls.append(x)
        return x * 10

    fixed.__qualname__ = fails_at_3.__qualname__
    chunk(fixed, PARAMS[4:], progress_bar=False, path=path)
    assert len(calls) == 16 - checkpoint.done  # the rerun resumed


def test_chunk_iter_checks_its_arguments_at_once() -> None:
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        chunk_iter(abs, [[1]], chunk_size=0)


@pytest.mark.anyio
async def test_achunk_iter_streams_and_stops_when_left(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    async with achunk_iter(fails_at_3, PARAMS[:3], progress_bar=False,
                           path=path) as results:  # fmt: skip
        assert sorted([pair async for pair in results]) == [(0, 0), (1, 10), (2, 20)]
    seen = []
    async with achunk_iter(fails_at_3, PARAMS[4:], chunk_size=2, progress_bar=False,
                           path=tmp_path / "b.pkl") as results:  # fmt: skip
        async for pair in results:
            seen.append(pair)
            if len(seen) == 2:
                break
    assert {i for i, _ in seen} <= set(Checkpoint.load(tmp_path / "b.pkl").results)


@pytest.mark.anyio
async def test_leaving_achunk_iter_early_keeps_every_call_that_started(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    started: list[int] = []
    running = Spy(open_at=2)  # its gate opens once calls 0 and 1 both run
    release = threading.Event()

    def f(x: int) -> int:
        with running:
            started.append(x)
            assert release.wait(timeout=10), "leaving did not stop the run"
        return x * 10

    async def release_the_running_calls() -> None:
        release.set()

    async with (
        anyio.create_task_group() as outer,
        achunk_iter(f, PARAMS[:10], chunk_size=2, progress_bar=False, path=path),
    ):
        await anyio.to_thread.run_sync(running.gate.wait, 10)
        # Runs once the block is being left: leaving must wait for the calls
        # still running, not abandon them.
        outer.start_soon(release_the_running_calls)
    assert sorted(started) == [0, 1]  # no call started once the block was left
    assert Checkpoint.load(path).results == {0: 0, 1: 10}  # both finished, saved


@pytest.mark.anyio
async def test_achunk_iter_raises_the_run_error_when_left(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    seen: list[int] = []
    loop_ended = False

    async def drain() -> None:
        nonlocal loop_ended
        async with achunk_iter(fails_at_3, PARAMS, chunk_size=1, progress_bar=False,
                               path=path) as results:  # fmt: skip
            async for i, _ in results:
                seen.append(i)
            loop_ended = True  # the loop ends; leaving the block raises

    with pytest.raises(ValueError, match="bad input 3") as info:
        await drain()
    assert loop_ended
    assert seen == [0, 1, 2]
    assert type(info.value) is ValueError  # not an exception group
    assert info.value.__notes__ == ["raised by call 3: fails_at_3(*parameters[3]) "
                                    "with parameters[3] = [3]"]  # fmt: skip
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed[:4] == [True, True, True, False]
    assert checkpoint.done == 3
    assert list(checkpoint.failures) == [3]


@pytest.mark.anyio
async def test_achunk_iter_streams_failures_with_errors_return(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    async with achunk_iter(fails_at_3, PARAMS[:6], chunk_size=2, errors="return",
                           progress_bar=False, path=path) as results:  # fmt: skip
        pairs = [pair async for pair in results]
    assert sorted(i for i, _ in pairs) == list(range(6))  # each call once
    outcomes = dict(pairs)
    failed = outcomes.pop(3)
    assert isinstance(failed, ValueError)
    assert str(failed) == "bad input 3"
    assert outcomes == {x: x * 10 for x in range(6) if x != 3}
    checkpoint = Checkpoint.load(path)
    assert sorted(checkpoint.results) == [0, 1, 2, 4, 5]
    assert list(checkpoint.failures) == [3]


@pytest.mark.anyio
async def test_a_resumed_achunk_iter_yields_the_saved_results_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.raises(ValueError, match="bad input 3"):
        await achunk(fails_at_3, PARAMS[:6], chunk_size=1, progress_bar=False,
                     path=path)  # fmt: skip
    saved_seen = threading.Event()
    calls: list[int] = []

    def fixed(x: int) -> int:
        calls.append(x)
        # No call can complete before the three saved results have been read.
        assert saved_seen.wait(timeout=10), "the saved results did not come first"
        return x * 10

    fixed.__qualname__ = fails_at_3.__qualname__
    pairs = []
    async with achunk_iter(fixed, PARAMS[:6], chunk_size=2, progress_bar=False,
                           path=path) as results:  # fmt: skip
        async for pair in results:
            pairs.append(pair)
            if len(pairs) == 3:
                saved_seen.set()
    assert pairs[:3] == [(0, 0), (1, 10), (2, 20)]
    assert sorted(pairs[3:]) == [(3, 30), (4, 40), (5, 50)]
    assert sorted(calls) == [3, 4, 5]
