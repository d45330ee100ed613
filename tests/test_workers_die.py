"""Calls that fail alone: batches bounded in time, dead workers, timeouts.

Issue 19. A batch returns once its time budget is spent; a worker that dies
fails the one call that kills it (:class:`WorkerDied`), and nothing else is
lost or run twice; ``timeout=`` kills the worker of ``executor="processes"``;
an argument that cannot be pickled fails its own call; our workers never
outlive the driver.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests import engines
from thread_chunks import (
    CallsFailed,
    Checkpoint,
    WorkerDied,
    _executor,
    achunk,
    chunk,
    progress,
)
from thread_chunks._executor import BUDGET, BatchSizes, kill_our_workers
from thread_chunks._remote import run_batch


def marks(log: Path, kind: str) -> Counter[int]:
    """How many times each call wrote ``kind`` (``start`` or ``done``) to ``log``."""
    words = (line.split() for line in log.read_text().splitlines())
    return Counter(int(x) for word, x in words if word == kind)


def alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, dead but not reaped, does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def wait_until(condition: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("timed out waiting")
        time.sleep(0.01)


class SizeRecordingPool(ThreadPoolExecutor):
    """A thread pool that records how many calls each batch held and ran."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers)
        self.batches: list[tuple[int, int]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        future = super().submit(fn, *args, **kwargs)
        size = len(args[1])

        def record(done: Future[Any]) -> None:
            if not done.cancelled() and done.exception() is None:
                self.batches.append((size, len(done.result()[0])))

        future.add_done_callback(record)
        return future


# Batches bounded in time.


def test_a_batch_returns_once_its_budget_is_spent() -> None:
    calls: list[int] = []

    def slow(x: int) -> int:
        calls.append(x)
        time.sleep(0.02)
        return x

    sent = run_batch(slow, [[x] for x in range(100)], False, budget=0.1)
    assert isinstance(sent, tuple)
    results, failures, slowest = sent
    # The clock is read after each call: the batch stops at the first call
    # that ends past 0.1 s (the fifth at the latest, each taking 0.02 s or
    # more), and the calls after it never started.
    assert 1 <= len(results) <= 5
    assert calls == results == list(range(len(results)))
    assert failures == []
    assert slowest >= 0.02


def test_unstarted_calls_are_run_next_and_each_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_executor, "BUDGET", 0.05)
    calls: list[int] = []
    lock = threading.Lock()

    def f(x: int) -> int:
        with lock:
            calls.append(x)
        if 2000 <= x < 2100:
            time.sleep(0.002)
        return x

    with SizeRecordingPool(2) as pool:
        out = chunk(f, [[x] for x in range(3000)], chunk_size=2, executor=pool,
                    progress_bar=False)  # fmt: skip
    assert out == list(range(3000))
    assert sorted(calls) == list(range(3000))  # each call once
    # At least one batch came back with calls it had not started.
    assert any(ran < size for size, ran in pool.batches)


def test_a_slow_call_shrinks_the_next_batches_at_once() -> None:
    sizes = BatchSizes(calls=10**9, workers=2)
    sizes.learn(1, 1e-6, 1e-6)
    sizes.learn(64, 1e-4, 2e-6)
    assert sizes.next_size() == 64 * 64
    sizes.learn(10, 0.3, slowest=0.25)  # one call of 0.25 s in the batch
    assert sizes.next_size() == 1  # no more than BUDGET / 0.25 s allows
    sizes.learn(1, 0.001, slowest=0.001)  # fast again: the bound relaxes
    assert sizes.next_size() == int(BUDGET / 0.125)


def test_a_run_whose_calls_slow_down_keeps_its_batches_short() -> None:
    with SizeRecordingPool(2) as pool:
        out = chunk(partial(engines.slow_from, 1500, 0.05), [[x] for x in range(1530)],
                    chunk_size=2, executor=pool, progress_bar=False)  # fmt: skip
    assert out == list(range(1530))
    # Once a batch has met the slow calls, none runs more than the budget
    # allows at 0.05 s a call (plus the call that crosses it).
    cut = next(k for k, (size, ran) in enumerate(pool.batches) if ran < size)
    later = pool.batches[cut + 2 :]  # after the batch the other worker had sent
    assert later
    assert all(ran <= BUDGET / 0.05 + 1 for _, ran in later)


# A worker's death fails one call.


@pytest.mark.parametrize("errors", ["return", "defer", "raise"])
def test_a_call_that_kills_its_worker_fails_alone(
    tmp_path: Path, errors: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget so short that each batch starts one call: no call shares its
    # batch with the one that dies, and each must then run exactly once.
    monkeypatch.setattr(_executor, "BUDGET", 1e-9)
    log, path = tmp_path / "marks.txt", tmp_path / "ck.pkl"
    func = partial(engines.marked, str(log), 13, "exit")
    run = partial(chunk, func, [[x] for x in range(30)], chunk_size=2,
                  executor="processes", errors=errors, path=path,
                  progress_bar=False)  # fmt: skip
    died: BaseException
    if errors == "return":
        out = run()
        assert isinstance(out[13], WorkerDied)
        assert out[:13] + out[14:] == [x for x in range(30) if x != 13]
        died = out[13]
    elif errors == "defer":
        with pytest.raises(CallsFailed) as group:
            run()
        (died,) = group.value.exceptions
    else:
        with pytest.raises(WorkerDied) as info:
            run()
        died = info.value
    assert isinstance(died, WorkerDied)
    assert died.exitcode == 1
    assert "call 13" in str(died)
    assert "exit code 1" in str(died)
    assert "raised by call 13" in died.__notes__[-1]
    done = marks(log, "done")
    saved = Checkpoint.load(path)
    assert 13 not in done
    assert set(done.values()) == {1}  # no call ran twice
    assert 13 in saved.failures
    if errors != "raise":
        assert set(done) == set(range(30)) - {13}
    # Every call that finished is saved (a stop waits for the running ones).
    assert {i for i, c in enumerate(saved.completed) if c} == set(done)


def test_the_calls_a_batch_finished_are_saved_while_a_later_call_runs(
    tmp_path: Path,
) -> None:
    # Tiny calls: the second batch holds calls 1 to 64, and call 20 runs
    # until the test releases it. The calls before it in its batch are saved
    # while it runs, not hours later when the batch returns.
    release, path = tmp_path / "release", tmp_path / "ck.pkl"
    func = partial(engines.wait_for_file, str(release), 20)
    out: list[Any] = []

    def run() -> None:
        out.extend(chunk(func, [[x] for x in range(100)], chunk_size=1,
                         executor="processes", path=path,
                         progress_bar=False))  # fmt: skip

    thread = threading.Thread(target=run)
    thread.start()
    try:
        wait_until(lambda: path.exists() and progress(path).done >= 20)
        saved = Checkpoint.load(path)
        assert [i for i, c in enumerate(saved.completed) if c] == list(range(20))
        assert saved.output[:20] == list(range(20))
    finally:
        release.touch()
        thread.join()
    assert out == list(range(100))


@pytest.mark.parametrize("how", ["exit", "kill"])
def test_the_calls_finished_in_a_dead_batch_are_kept(tmp_path: Path, how: str) -> None:
    # Calls of 0.5 ms: batches of hundreds; the one that dies had finished
    # some before it. Their results left the worker as they were computed:
    # each call but the killer runs exactly once.
    log = tmp_path / "marks.txt"
    func = partial(engines.marked_slow, str(log), 700, how, 0.0005)
    out = chunk(func, [[x] for x in range(1000)], chunk_size=2,
                executor="processes", errors="return",
                progress_bar=False)  # fmt: skip
    assert isinstance(out[700], WorkerDied)
    assert out[:700] + out[701:] == [x for x in range(1000) if x != 700]
    done = marks(log, "done")
    assert set(done) == set(range(1000)) - {700}
    assert set(done.values()) == {1}  # no call ran twice
    # The call that kills its worker ran in its batch, then alone: once.
    assert marks(log, "start")[700] == 2


def test_the_calls_of_a_dead_batch_run_again_one_by_one(tmp_path: Path) -> None:
    log = tmp_path / "marks.txt"
    func = partial(engines.marked, str(log), 2500, "exit")
    out = chunk(func, [[x] for x in range(3000)], chunk_size=2,
                executor="processes", errors="return",
                progress_bar=False)  # fmt: skip
    assert isinstance(out[2500], WorkerDied)
    assert out[:2500] + out[2501:] == [x for x in range(3000) if x != 2500]
    done = marks(log, "done")
    assert set(done) == set(range(3000)) - {2500}
    # Only tiny calls of the batch that died, finished in the last
    # millisecond or so before call 2500 killed it, ran twice: a short run
    # of calls just before it (each call here takes tens of microseconds).
    twice = sorted(x for x, n in done.items() if n > 1)
    assert set(done.values()) <= {1, 2}
    assert twice == list(range(2500 - len(twice), 2500))
    assert len(twice) <= 120
    # The call that kills its worker ran in its batch, then alone: once.
    assert marks(log, "start")[2500] == 2


def test_a_checkpoint_keeps_the_calls_finished_in_a_dead_batch(
    tmp_path: Path,
) -> None:
    log, path = tmp_path / "marks.txt", tmp_path / "ck.pkl"
    func = partial(engines.marked_slow, str(log), 300, "kill", 0.0005)
    out = chunk(func, [[x] for x in range(400)], chunk_size=2,
                executor="processes", errors="return", path=path,
                progress_bar=False)  # fmt: skip
    assert isinstance(out[300], WorkerDied)
    assert out[300].exitcode == -signal.SIGKILL
    done = marks(log, "done")
    assert set(done.values()) == {1}
    saved = Checkpoint.load(path)
    assert {i for i, c in enumerate(saved.completed) if c} == set(done)
    assert 300 in saved.failures


def test_the_side_files_go_with_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    func = partial(engines.marked, str(tmp_path / "marks.txt"), 1500, "exit")
    out = chunk(func, [[x] for x in range(2000)], chunk_size=2,
                executor="processes", errors="return",
                progress_bar=False)  # fmt: skip
    assert isinstance(out[1500], WorkerDied)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["marks.txt"]


def test_a_worker_killed_by_sigkill_names_the_signal_and_the_oom_killer(
    tmp_path: Path,
) -> None:
    func = partial(engines.marked, str(tmp_path / "marks.txt"), 0, "kill")
    out = chunk(func, [[x] for x in range(4)], chunk_size=2, executor="processes",
                errors="return", progress_bar=False)  # fmt: skip
    assert out[1:] == [1, 2, 3]
    assert isinstance(out[0], WorkerDied)
    assert out[0].exitcode == -signal.SIGKILL
    assert "SIGKILL" in str(out[0])
    assert "out-of-memory killer" in str(out[0])


def test_worker_died_counts_as_an_attempt(tmp_path: Path) -> None:
    log, path = tmp_path / "marks.txt", tmp_path / "ck.pkl"
    # Call 0 is the first batch, alone: each of its attempts is one start.
    func = partial(engines.marked, str(log), 0, "exit")
    out = chunk(func, [[x] for x in range(6)], chunk_size=2, executor="processes",
                errors="return", retries=2, retry_delay=0, path=path,
                progress_bar=False)  # fmt: skip
    assert isinstance(out[0], WorkerDied)
    assert out[1:] == [1, 2, 3, 4, 5]
    assert marks(log, "start")[0] == 3
    assert Checkpoint.load(path).failures[0].attempts == 3


def test_a_broken_stdlib_pool_names_the_call_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    with ProcessPoolExecutor(1) as pool, pytest.raises(BrokenProcessPool) as info:
        chunk(partial(engines.exit_on, bad=0), [[x] for x in range(5)],
              chunk_size=1, executor=pool, errors="return", path=path,
              progress_bar=False)  # fmt: skip
    note = info.value.__notes__[-1]
    assert "call 0, the only call it ran then, killed it" in note
    assert "executor='processes'" in note
    assert "WorkerDied" in note


def test_a_broken_stdlib_pool_names_every_call_it_may_have_been() -> None:
    with ProcessPoolExecutor(2) as pool, pytest.raises(BrokenProcessPool) as info:
        chunk(partial(engines.exit_on, bad=2000), [[x] for x in range(3000)],
              chunk_size=2, executor=pool, progress_bar=False)  # fmt: skip
    note = info.value.__notes__[-1]
    assert "one of those it was running or about to run: calls " in note
    listed = note.split("calls ", 1)[1].split(".")[0]
    spans = [s.split(" to ") for s in listed.replace(" and ", ", ").split(", ")]
    assert any(int(s[0]) <= 2000 <= int(s[-1]) for s in spans)


# timeout= on executors.


def test_a_timeout_kills_the_worker_and_the_run_goes_on(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    func = partial(engines.hang_on, str(pid_file), 3)
    started = time.monotonic()
    out = chunk(func, [[x] for x in range(8)], chunk_size=2, executor="processes",
                errors="return", timeout=1, progress_bar=False)  # fmt: skip
    assert time.monotonic() - started < 20
    assert isinstance(out[3], TimeoutError)
    assert "timeout=1.0 s" in str(out[3])
    assert "killed" in str(out[3])
    assert all(isinstance(pid, int) for k, pid in enumerate(out) if k != 3)
    hung = int(pid_file.read_text())
    assert hung not in out[4:]  # killed: it ran no call after call 3
    wait_until(lambda: not alive(hung))


def test_a_timeout_on_a_users_executor_abandons_the_call() -> None:
    release = threading.Event()

    def f(x: int) -> int:
        if x == 1:
            release.wait(30)
        return x

    with ThreadPoolExecutor(3) as pool:
        try:
            out = chunk(f, [[x] for x in range(5)], chunk_size=2, executor=pool,
                        errors="return", timeout=0.5,
                        progress_bar=False)  # fmt: skip
        finally:
            release.set()
    assert isinstance(out[1], TimeoutError)
    assert "may go on running" in str(out[1])
    assert out[:1] + out[2:] == [0, 2, 3, 4]


@pytest.mark.anyio
async def test_a_dead_worker_and_a_timeout_on_both_backends(tmp_path: Path) -> None:
    log = tmp_path / "marks.txt"
    out = await achunk(partial(engines.marked, str(log), 3, "exit"),
                       [[x] for x in range(8)], chunk_size=2,
                       executor="processes", errors="return",
                       progress_bar=False)  # fmt: skip
    assert isinstance(out[3], WorkerDied)
    assert out[:3] + out[4:] == [0, 1, 2, 4, 5, 6, 7]
    release = threading.Event()

    def f(x: int) -> int:
        if x == 1:
            release.wait(30)
        return x

    with ThreadPoolExecutor(2) as pool:
        try:
            out = await achunk(f, [[x] for x in range(4)], chunk_size=2,
                               executor=pool, errors="return", timeout=0.3,
                               progress_bar=False)  # fmt: skip
        finally:
            release.set()
    assert isinstance(out[1], TimeoutError)
    assert out[:1] + out[2:] == [0, 2, 3]


# An argument that cannot be pickled fails its own call.


@pytest.mark.parametrize("kind", ["processes", "stdlib"])
def test_an_unpicklable_argument_fails_its_own_call(kind: str) -> None:
    rows: list[list[Any]] = [[x] for x in range(3000)]
    rows[1234] = [threading.Lock()]
    with ProcessPoolExecutor(2) as stdlib:
        out = chunk(engines.square if kind == "stdlib" else abs, rows,
                    chunk_size=2, errors="return", progress_bar=False,
                    executor=stdlib if kind == "stdlib" else "processes")  # fmt: skip
    failed = out[1234]
    assert isinstance(failed, Exception)
    assert "pickle" in str(failed)
    assert any("raised by call 1234" in note for note in failed.__notes__)
    expected = [x * x if kind == "stdlib" else x for x in range(3000)]
    assert out[:1234] + out[1235:] == expected[:1234] + expected[1235:]


# Our workers never outlive the driver.


def test_kill_our_workers_kills_them_now(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    func = partial(engines.hang_on, str(pid_file), 0)
    outcome: list[Any] = []
    # One call: the host kills the workers once its run stops starting calls.
    runner = threading.Thread(target=lambda: outcome.append(
        chunk(func, [[0]], chunk_size=2, executor="processes",
              errors="return", progress_bar=False)))  # fmt: skip
    runner.start()
    wait_until(pid_file.exists)
    hung = int(pid_file.read_text())
    assert kill_our_workers() >= 1
    runner.join(30)
    assert not runner.is_alive()
    assert isinstance(outcome[0][0], WorkerDied)
    wait_until(lambda: not alive(hung))
    assert kill_our_workers() == 0  # no pool open now


DRIVER = """
import sys
from functools import partial
from tests import engines
from thread_chunks import chunk
chunk(partial(engines.hang_on, sys.argv[1], -1), [[x] for x in range(2)],
      chunk_size=2, executor="processes", progress_bar=False)
chunk(partial(engines.hang_on, sys.argv[1], 0), [[x] for x in range(4)],
      chunk_size=2, executor="processes", progress_bar=False)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG")
def test_workers_die_with_a_killed_driver(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    driver = subprocess.Popen([sys.executable, "-c", DRIVER, str(pid_file)],
                              cwd=Path(__file__).parent.parent)  # fmt: skip
    try:
        wait_until(pid_file.exists)
        hung = int(pid_file.read_text())
        assert alive(hung)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(30)
    wait_until(lambda: not alive(hung), timeout=10)


def test_dask_killed_worker_fails_the_call_with_worker_died(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    import dask

    log = tmp_path / "marks.txt"
    # Dask gives up on a task at once when its worker dies, not after three.
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                 dashboard_address=":0", scheduler_port=0,
                                 host="127.0.0.1") as cluster,
        distributed.Client(cluster) as client,
    ):  # fmt: skip
        out = chunk(partial(engines.marked, str(log), 0, "exit"),
                    [[x] for x in range(4)], chunk_size=2,
                    executor=client.get_executor(pure=False), errors="return",
                    progress_bar=False)  # fmt: skip
    assert isinstance(out[0], WorkerDied)
    assert "call 0" in str(out[0])
    assert type(out[0].__cause__).__name__ == "KilledWorker"
    assert out[1:] == [1, 2, 3]


def test_a_side_record_that_cannot_be_pickled_ends_the_side_file(
    tmp_path: Path,
) -> None:
    # The worker's side-file thread may write between a failure and its None
    # result. If that record (the failure) cannot be pickled, no later record
    # may go out: its None would be read as call 0's result.
    from thread_chunks._remote import SideFile, _SideWriter

    path = str(tmp_path / "side.pickle")
    results: list[Any] = []
    failures: list[Any] = [(0, engines.HoldsALock("no pickle"), "")]
    writer = _SideWriter.open(path, results, failures)
    assert writer is not None
    try:
        writer.write()  # the failure alone: cannot be pickled
        results += [None, 5]
        writer.write()
    finally:
        writer.close()
    side = SideFile(path)
    assert side.read() == {}
    assert side.failures == []
