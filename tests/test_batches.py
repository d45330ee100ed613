"""Calls sent to executors in batches: same outputs, failures kept to their call."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests import engines
from tests.test_long_jobs import Flaky
from thread_chunks import Checkpoint, chunk
from thread_chunks._executor import (
    _GROWTH,
    TARGET,
    BatchSizes,
    RemoteTraceback,
)

N = 3000


class CountingProcessPool(ProcessPoolExecutor):
    """A process pool that counts the tasks submitted to it."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


def expected(func: Any, n: int) -> list[Any]:
    """What single calls give, with errors="return": the result or the exception."""
    out: list[Any] = []
    for x in range(n):
        try:
            out.append(func(x))
        except Exception as exc:
            out.append(exc)
    return out


def same_outputs(got: list[Any], want: list[Any]) -> bool:
    """Equal, telling -0.0 from 0.0, and exceptions by type and message."""
    for a, b in zip(got, want, strict=True):
        if isinstance(b, Exception):
            if type(a) is not type(b) or a.args != b.args:
                return False
        elif repr(a) != repr(b) or type(a) is not type(b):
            return False
    return True


@pytest.fixture(params=["stdlib", "loky", "dask"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor | str]:
    if request.param == "stdlib":
        with ProcessPoolExecutor(2) as pool:
            yield pool
    elif request.param == "loky":
        pytest.importorskip("loky")
        yield "processes"
    else:
        yield request.getfixturevalue("dask_executor")


def test_batches_give_the_outputs_of_single_calls(
    executor: Executor | str, tmp_path: Path
) -> None:
    params = [[x] for x in range(N)]
    path = tmp_path / "checkpoint.pkl"
    out = chunk(engines.varied, params, chunk_size=2, errors="return",
                executor=executor, path=path, progress_bar=False)  # fmt: skip
    want = expected(engines.varied, N)
    assert same_outputs(out, want)
    checkpoint = Checkpoint.load(path)
    assert sorted(checkpoint.failures) == [x for x in range(N) if x % 7 == 6]
    assert same_outputs(
        [checkpoint.output[x] for x in range(N) if x % 7 != 6],
        [want[x] for x in range(N) if x % 7 != 6],
    )


def test_tiny_calls_travel_in_a_few_batches() -> None:
    with CountingProcessPool(2) as pool:
        out = chunk(engines.square, [[x] for x in range(N)], chunk_size=2,
                    executor=pool, progress_bar=False)  # fmt: skip
    assert out == [x * x for x in range(N)]
    # One call, then at most 64 times more per batch: 1 + 64 + 4096 > N; the
    # last calls are shared out, and a loaded machine makes batches shorter.
    assert pool.submitted <= 60  # 50 calls a batch on average, at least


def test_a_failure_mid_batch_keeps_the_results_before_it(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pkl"
    with (
        CountingProcessPool(2) as pool,
        pytest.raises(ValueError, match="bad input 1500") as info,
    ):
        chunk(partial(engines.fail_on, bad=1500), [[x] for x in range(N)],
              chunk_size=1, executor=pool, path=path,
              progress_bar=False)  # fmt: skip
    # Call 1500 ran in a batch of many. Not a tight bound: a loaded machine
    # makes calls look slow, and batches shrink to 0.2 s of the slowest.
    assert pool.submitted <= 60  # 25 calls a batch on average, at least
    assert "call 1500" in info.value.__notes__[0]
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "fail_on" in str(info.value.__cause__)  # the worker's traceback
    checkpoint = Checkpoint.load(path)
    assert checkpoint.completed == [True] * 1500 + [False] * (N - 1500)
    assert checkpoint.output[:1500] == list(range(1500))


@pytest.mark.parametrize(
    ("func", "error", "message"),
    [
        (engines.fail_on, ValueError, "bad input 1500"),
        (engines.unsendable_on, TypeError, "cannot be pickled to be sent back"),
    ],
)
def test_a_failure_mid_batch_with_errors_return_fails_its_call_only(
    func: Any, error: type[Exception], message: str
) -> None:
    with ProcessPoolExecutor(2) as pool:
        out = chunk(partial(func, bad=1500), [[x] for x in range(N)],
                    chunk_size=2, executor=pool, errors="return",
                    progress_bar=False)  # fmt: skip
    assert isinstance(out[1500], error)
    assert message in str(out[1500])
    assert out[:1500] + out[1501:] == [x for x in range(N) if x != 1500]


def test_an_exception_that_cannot_be_sent_back_is_named() -> None:
    with ProcessPoolExecutor(2) as pool, pytest.raises(RuntimeError) as info:
        chunk(partial(engines.raise_unpicklable_on, bad=300),
              [[x] for x in range(N)], chunk_size=2, executor=pool,
              progress_bar=False)  # fmt: skip
    assert "tests.engines.HoldsALock: bad input 300" in str(info.value)
    assert "cannot be sent back" in info.value.__notes__[0]
    assert "call 300" in info.value.__notes__[1]


def test_failed_calls_of_a_batch_are_retried_one_by_one() -> None:
    flaky = Flaky(failures=2)  # every call fails twice, then works
    with ThreadPoolExecutor(2) as pool:
        out = chunk(flaky, [[x] for x in range(500)], chunk_size=2, retries=2,
                    retry_delay=0, executor=pool, progress_bar=False)  # fmt: skip
    assert out == list(range(500))
    assert flaky.attempts == {x: 3 for x in range(500)}


def test_batch_sizes_start_at_one_and_grow_at_most_64_times() -> None:
    sizes = BatchSizes(calls=10**9, workers=2)
    assert sizes.next_size() == 1
    sizes.learn(1, 1e-6)
    assert sizes.next_size() == _GROWTH == 64
    sizes.learn(64, 1e-4)
    assert sizes.next_size() == 64 * 64


def test_batch_sizes_aim_at_the_target_and_shrink_when_slow() -> None:
    sizes = BatchSizes(calls=10**9, workers=2)
    sizes.learn(1, TARGET / 1000)  # a call of 0.1 ms: aim at 1000 a batch
    sizes.learn(64, TARGET * 64 / 1000)
    assert sizes.next_size() == 1000
    sizes.learn(1000, TARGET * 1.5)  # within the band: no change
    assert sizes.next_size() == 1000
    sizes.learn(1000, TARGET * 10)  # calls got 10 times slower
    assert sizes.next_size() == 100


def test_batch_sizes_share_the_last_calls_between_the_workers() -> None:
    sizes = BatchSizes(calls=100, workers=2)
    assert sizes.next_size() == 1
    sizes.learn(1, TARGET / 100)  # aim at 100 calls a batch, 5 at the least
    # Half of what is left each time (an even share), down to 5 calls.
    assert [sizes.next_size() for _ in range(5)] == [50, 25, 12, 6, 5]


def test_a_stop_keeps_every_result_computed_in_the_batches_in_flight(
    tmp_path: Path,
) -> None:
    log, marker, path = tmp_path / "calls.txt", tmp_path / "fail", tmp_path / "ck.pkl"
    marker.touch()
    func = partial(engines.logged, str(log), str(marker))
    # Two workers: when one batch fails, the other may be running.
    with ProcessPoolExecutor(2) as pool, pytest.raises(ValueError, match="input 5"):
        chunk(func, [[x] for x in range(N)], chunk_size=2, executor=pool,
              path=path, progress_bar=False)  # fmt: skip
    ran = {int(x) for x in log.read_text().split()}
    saved = Checkpoint.load(path).completed
    assert {x for x in range(N) if saved[x]} == ran - {5}


def test_a_worker_that_dies_stops_the_run_and_keeps_earlier_batches(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    with (
        ProcessPoolExecutor(1) as pool,
        pytest.raises(BrokenProcessPool) as info,
    ):
        chunk(partial(engines.exit_on, bad=N - 1), [[x] for x in range(N)],
              chunk_size=1, executor=pool, path=path,
              progress_bar=False)  # fmt: skip
    note = info.value.__notes__[-1]
    # Names the calls it may have been (call N - 1 among them) and the fix.
    assert "one of those it was running or about to run: calls " in note
    assert f"{N - 1}" in note
    assert "executor='processes'" in note
    saved = Checkpoint.load(path)
    assert 0 < saved.done < N
    assert saved.output[: saved.done] == list(range(saved.done))


def test_loky_workers_run_batches_without_importing_thread_chunks() -> None:
    pytest.importorskip("loky")
    # The batch runner travels by value: a fresh worker saves the 0.1 s import.
    out = chunk(lambda x: "thread_chunks" in sys.modules, [[x] for x in range(4)],
                chunk_size=2, executor="processes", progress_bar=False)  # fmt: skip
    assert out == [False] * 4
