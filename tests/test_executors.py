"""Calls on real executors: stdlib pools, loky processes, a Dask cluster."""

from __future__ import annotations

import multiprocessing
import sys
import threading
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest

from tests import engines
from thread_chunks import Checkpoint, Chunker, LabelledActor, _executor, achunk, chunk


def test_processes_run_lambdas() -> None:
    out = chunk(
        lambda x: x + 1,
        [[1], [2], [3]],
        chunk_size=2,
        progress_bar=False,
        executor="processes",
    )
    assert out == [2, 3, 4]


def meeting_run(executor: Any, n: int) -> tuple[list[tuple[int, int]], int]:
    """Run ``n`` calls at chunk_size 2 that meet two by two at a barrier.

    Returns the outputs (pid, x) and the most calls that ran at once.
    """
    with multiprocessing.Manager() as manager:
        barrier = manager.Barrier(2)
        counter, peak, lock = (
            manager.Value("i", 0),
            manager.Value("i", 0),
            manager.Lock(),
        )
        meet = partial(engines.meet, barrier, counter, lock, peak)
        parameters = [[x] for x in range(n)]
        out = chunk(
            meet, parameters, chunk_size=2, progress_bar=False, executor=executor
        )
        return out, peak.value


def test_processes_run_in_parallel_and_no_more_than_chunk_size() -> None:
    # The pool has room for four calls: only the library's limit keeps it to two.
    with ProcessPoolExecutor(4) as pool:
        out, peak = meeting_run(pool, 6)
    # Each round of two calls met at the barrier: two processes at once.
    assert [x for _, x in out] == list(range(6))
    assert len({pid for pid, _ in out}) >= 2
    assert peak == 2


def test_processes_option_runs_calls_in_parallel() -> None:
    out, peak = meeting_run("processes", 4)
    assert [x for _, x in out] == list(range(4))
    assert len({pid for pid, _ in out}) == 2
    assert peak == 2


def test_stdlib_process_pool_with_a_module_level_function(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    with ProcessPoolExecutor(2) as pool:
        out = chunk(
            engines.square,
            [[x] for x in range(10)],
            chunk_size=2,
            progress_bar=False,
            executor=pool,
            path=path,
        )
    assert out == [x * x for x in range(10)]
    assert Checkpoint.load(path).output == out


def test_stdlib_process_pool_rejects_a_lambda_with_the_fix() -> None:
    message = r"pickle.*functools\.partial.*'processes'"
    with ProcessPoolExecutor(1) as pool, pytest.raises(TypeError, match=message):
        chunk(lambda x: x, [[1]], executor=pool, progress_bar=False)


@pytest.mark.anyio
async def test_thread_pool_executor_on_both_backends() -> None:
    with ThreadPoolExecutor(3) as pool:
        out = await achunk(
            engines.square,
            [[x] for x in range(20)],
            chunk_size=3,
            progress_bar=False,
            executor=pool,
        )
    assert out == [x * x for x in range(20)]


def test_error_in_one_task_raises_it_and_saves_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    func = partial(engines.fail_on, bad=3)
    with pytest.raises(ValueError, match="bad input 3") as info:
        chunk(
            func,
            [[x] for x in range(6)],
            chunk_size=1,
            progress_bar=False,
            executor="processes",
            path=path,
        )
    assert "call 3" in info.value.__notes__[0]
    assert Checkpoint.load(path).completed == [True] * 3 + [False] * 3


class RecordingPool(ThreadPoolExecutor):
    """A thread pool that remembers every future it hands out."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.futures: list[Future[Any]] = []
        self.fourth_submitted = threading.Event()
        self.fourth_done = threading.Event()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        if len(self.futures) == 4:
            future.add_done_callback(lambda _: self.fourth_done.set())
            self.fourth_submitted.set()
        return future


@pytest.mark.anyio
async def test_cancellation_leaves_no_running_future_and_saves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_executor, "_GROWTH", 1)  # batches of one call each
    path = tmp_path / "checkpoint.pkl"
    running = threading.Event()
    release = threading.Event()
    started: list[int] = []

    def f(x: int) -> int:
        started.append(x)
        if x == 2:
            running.set()
            assert release.wait(timeout=10)
        return x

    # One pool thread, two submissions in flight: call 2 runs, call 3 queues.
    with RecordingPool(1) as pool, anyio.fail_after(20):
        scope = anyio.CancelScope()
        async with anyio.create_task_group() as tg:

            async def run() -> None:
                with scope:
                    await achunk(
                        f,
                        [[x] for x in range(8)],
                        chunk_size=2,
                        progress_bar=False,
                        executor=pool,
                        path=path,
                    )

            tg.start_soon(run)
            await anyio.to_thread.run_sync(running.wait, 10)
            await anyio.to_thread.run_sync(pool.fourth_submitted.wait, 10)
            scope.cancel()
            # Call 3 waits in the queue behind call 2 until it is withdrawn.
            await anyio.to_thread.run_sync(pool.fourth_done.wait, 10)
            release.set()  # call 2 ends only after the cancellation
        assert scope.cancelled_caught
        assert all(future.done() for future in pool.futures)
        assert [future.cancelled() for future in pool.futures] == [False] * 3 + [True]
    assert sorted(started) == [0, 1, 2]
    assert Checkpoint.load(path).completed == [True] * 3 + [False] * 5


def test_chunker_with_an_executor_keeps_the_new_func() -> None:
    with ThreadPoolExecutor(2) as pool:
        chunker = Chunker(
            engines.square, chunk_size=2, executor=pool, progress_bar=False
        )
        assert chunker([[2], [3]]) == [4, 9]
        assert chunker([[5, -1]], func=max) == [5]
        assert chunker([[7, 8]]) == [8]  # max again, not square
        assert [actor.get_func() for actor in chunker.actors] == [max, max]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"executor": "threads"}, ValueError, r"executor must be 'processes' or a"),
        ({"executor": 3}, TypeError, r"executor must be .* got int"),
    ],
)
def test_bad_executor_arguments(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        chunk(abs, [[1]], progress_bar=False, **kwargs)


def test_actor_subclasses_cannot_run_on_an_executor() -> None:
    actors = [type("A", (LabelledActor,), {})(abs)]
    with (
        ThreadPoolExecutor(1) as pool,
        pytest.raises(ValueError, match="LabelledActor subclasses cannot be combined"),
    ):
        chunk(None, [[1]], actors, progress_bar=False, executor=pool)


def test_coroutine_function_with_executor() -> None:
    async def f(x: int) -> int:
        return x

    with (
        ThreadPoolExecutor(1) as pool,
        pytest.raises(TypeError, match="coroutine function"),
    ):
        chunk(f, [[1]], executor=pool, progress_bar=False)


@pytest.mark.parametrize("missing", ["pebble", "loky"])
def test_processes_without_pebble_or_loky_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    monkeypatch.setitem(sys.modules, missing, None)
    with pytest.raises(ImportError, match=r"thread-chunks\[processes\]"):
        chunk(abs, [[1]], executor="processes", progress_bar=False)


def test_dask_cluster_results_and_resume(tmp_path: Path, dask_executor: Any) -> None:
    path = tmp_path / "checkpoint.pkl"
    log, marker = tmp_path / "calls.txt", tmp_path / "broken"
    marker.touch()
    func = partial(engines.logged, str(log), str(marker))
    run = partial(
        chunk,
        func,
        [[x] for x in range(8)],
        chunk_size=2,
        progress_bar=False,
        executor=dask_executor,
        path=path,
    )
    with pytest.raises(ValueError, match="bad input 5"):
        run()
    saved = {i for i, done in enumerate(Checkpoint.load(path).completed) if done}
    assert {0, 1, 2, 3, 4} <= saved
    assert 5 not in saved
    marker.unlink()
    log.write_text("")
    out = run()
    assert out == list(range(8))
    rerun = {int(x) for x in log.read_text().split()}
    assert rerun == set(range(8)) - saved


def test_dask_cluster_runs_lambdas(dask_executor: Any) -> None:
    out = chunk(
        lambda x: -x,
        [[x] for x in range(5)],
        chunk_size=2,
        progress_bar=False,
        executor=dask_executor,
    )
    assert out == [0, -1, -2, -3, -4]


class RecordingProcessPool(ProcessPoolExecutor):
    """A process pool that remembers every future it hands out."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.futures: list[Future[Any]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        self.futures.append(future)
        return future


@pytest.mark.anyio
async def test_cancelling_a_process_run_waits_for_the_running_call(
    tmp_path: Path,
) -> None:
    path = tmp_path / "checkpoint.pkl"
    with multiprocessing.Manager() as manager, RecordingProcessPool(2) as pool:
        started, release = manager.Event(), manager.Event()
        func = partial(engines.hold, started, release)
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tg:

                async def cancel_when_running() -> None:
                    await anyio.to_thread.run_sync(started.wait, 30)
                    scope.cancel()
                    release.set()  # call 2 ends only after the cancellation

                tg.start_soon(cancel_when_running)
                await achunk(
                    func,
                    [[x] for x in range(8)],
                    chunk_size=2,
                    progress_bar=False,
                    executor=pool,
                    path=path,
                )
        assert scope.cancelled_caught
        assert all(future.done() for future in pool.futures)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.output[2] == 2  # the running call's result was saved
    # Whatever else ran was saved as it was, and nothing more.
    assert all(out in (None, i) for i, out in enumerate(checkpoint.output))
    assert checkpoint.done == sum(out is not None for out in checkpoint.output)
