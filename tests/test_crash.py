"""Real child processes, killed with SIGKILL or interrupted with SIGINT mid-run."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from thread_chunks import Checkpoint

CHILD = Path(__file__).with_name("child.py")

RUNNERS = ["chunk", "asyncio", "trio"]
"""How ``child.py`` runs: with ``chunk``, or ``achunk`` on that anyio backend."""


def seeds_and_runners(n: int) -> list[tuple[int, str]]:
    """``n`` seeds, each with a runner in turn: every runner, without n * 3 runs."""
    return [(seed, RUNNERS[seed % len(RUNNERS)]) for seed in range(n)]


class Child:
    """One run of ``child.py`` and the log it writes."""

    def __init__(
        self,
        tmp_path: Path,
        n: int,
        chunk_size: int,
        delay: float,
        log_name: str = "log.txt",
        pad: int = 0,
        runner: str = "chunk",
        new_session: bool = False,
        hang_from: int = -1,
    ) -> None:
        self.path = tmp_path / "checkpoint.pkl"
        self.log = tmp_path / log_name
        self.log.touch()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(CHILD),
                str(self.path),
                str(self.log),
                str(n),
                str(chunk_size),
                str(delay),
                str(pad),
                runner,
                str(hang_from),
            ],
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=new_session,  # a process group of its own
        )

    def lines(self, kind: str) -> list[int]:
        values = []
        for line in self.log.read_text().splitlines():
            word, _, rest = line.partition(" ")
            if word == kind:
                values += [int(v) for v in rest.split(",") if v]
        return values

    def wait_for(self, kind: str, count: int, timeout: float = 30) -> None:
        wait_until(self, lambda: len(self.lines(kind)) >= count, timeout)

    def finish(self) -> tuple[int, str]:
        _, stderr = self.process.communicate(timeout=60)
        return self.process.returncode, stderr

    def kill(self) -> None:
        self.process.kill()
        self.finish()


def check_resume(tmp_path: Path, first: Child, n: int, runner: str = "chunk") -> None:
    """The checkpoint left by ``first`` loads and a rerun repeats nothing saved."""
    committed = set(first.lines("committed"))
    checkpoint = Checkpoint.load(first.path)
    saved = {i for i, done in enumerate(checkpoint.completed) if done}
    assert committed <= saved, "a committed result is missing after the kill"
    assert all(checkpoint.output[i] == i * i for i in saved)
    rerun = Child(tmp_path, n, 2, 0.0, log_name="rerun.txt", runner=runner)
    assert rerun.finish()[0] == 0
    repeated = set(rerun.lines("start"))
    assert not repeated & saved, "a saved call ran again"
    assert repeated == set(range(n)) - saved
    final = Checkpoint.load(first.path)
    assert final.output == [i * i for i in range(n)]


@pytest.mark.parametrize(("seed", "runner"), seeds_and_runners(30))
def test_sigkill_at_a_random_instant_loses_no_committed_result(
    tmp_path: Path, seed: int, runner: str
) -> None:
    rng = random.Random(seed)
    n = 20_000  # tiny calls run fast: enough that the kill comes mid-run
    delay = rng.choice([0.0, 0.001, 0.005])
    child = Child(tmp_path, n, chunk_size=2, delay=delay, runner=runner)
    child.wait_for("done", rng.randrange(1, 100))
    time.sleep(rng.uniform(0, 0.005))  # a random instant, not a synchronisation
    child.process.send_signal(signal.SIGKILL)
    assert child.finish()[0] == -signal.SIGKILL
    assert "finished" not in child.log.read_text(), "killed too late to test"
    check_resume(tmp_path, child, n, runner)


@pytest.mark.parametrize("runner", ["chunk", "asyncio", "trio", "iter"])
def test_sigint_lets_running_calls_finish_then_exits(
    tmp_path: Path, runner: str
) -> None:
    n = 20
    child = Child(tmp_path, n, chunk_size=2, delay=0.3, runner=runner)
    child.wait_for("start", 4)  # calls 2 and 3 are running
    child.process.send_signal(signal.SIGINT)
    returncode, stderr = child.finish()
    assert returncode in (-signal.SIGINT, 130), stderr
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr  # not a group
    started, done = child.lines("start"), child.lines("done")
    assert sorted(started) == sorted(done), "a running call was abandoned"
    assert len(done) < n, "the run went on after Ctrl-C"
    checkpoint = Checkpoint.load(child.path)
    assert [i for i, d in enumerate(checkpoint.completed) if d] == sorted(done)
    check_resume(tmp_path, child, n)


@pytest.mark.parametrize("runner", ["processes", "pool"])
def test_ctrl_c_in_a_terminal_lets_worker_processes_finish(
    tmp_path: Path, runner: str
) -> None:
    n = 20
    child = Child(tmp_path, n, 2, delay=0.5, runner=runner, new_session=True)
    child.wait_for("start", 2)  # calls 0 and 1 run in the worker processes
    # A terminal sends SIGINT to the whole foreground process group.
    os.killpg(child.process.pid, signal.SIGINT)
    returncode, stderr = child.finish()
    assert returncode in (-signal.SIGINT, 130), stderr
    assert stderr.count("Traceback") == 1, stderr
    assert stderr.rstrip().endswith("KeyboardInterrupt"), stderr
    started, done = child.lines("start"), child.lines("done")
    assert sorted(started) == sorted(done), "a running call was lost"
    assert len(done) < n, "the run went on after Ctrl-C"
    checkpoint = Checkpoint.load(child.path)
    assert [i for i, d in enumerate(checkpoint.completed) if d] == sorted(done)


def test_sigterm_lets_running_calls_finish_and_saves(tmp_path: Path) -> None:
    n = 20
    child = Child(tmp_path, n, chunk_size=2, delay=0.5)
    child.wait_for("start", 2)
    child.process.send_signal(signal.SIGTERM)  # what a batch scheduler sends
    returncode, stderr = child.finish()
    # SystemExit(143): the status a scheduler expects, after finally and atexit.
    assert returncode == 128 + signal.SIGTERM, stderr
    assert "logged SIGTERM: waiting for the running calls" in child.log.read_text()
    started, done = child.lines("start"), child.lines("done")
    assert sorted(started) == sorted(done), "a running call was lost"
    assert len(done) < n, "the run went on after SIGTERM"
    checkpoint = Checkpoint.load(child.path)
    assert [i for i, d in enumerate(checkpoint.completed) if d] == sorted(done)
    check_resume(tmp_path, child, n)


def test_a_second_sigterm_stops_at_once(tmp_path: Path) -> None:
    child = Child(tmp_path, 20, chunk_size=2, delay=30)
    child.wait_for("start", 2)
    child.process.send_signal(signal.SIGTERM)
    wait_until(child, lambda: "logged SIGTERM" in child.log.read_text())
    child.process.send_signal(signal.SIGTERM)
    returncode, _ = child.finish()
    assert returncode == -signal.SIGTERM
    assert child.lines("done") == []  # the 30-second calls were not waited for


def wait_until(
    child: Child, condition: Callable[[], bool], timeout: float = 30
) -> None:
    """Poll ``condition`` while the child runs; fail if it exits or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        if child.process.poll() is not None:
            raise AssertionError(f"the child exited early: {child.finish()[1]}")
        if time.monotonic() > deadline:
            child.kill()
            raise AssertionError("the child did not get there in time")
        time.sleep(0.001)


@pytest.mark.parametrize(("seed", "runner"), seeds_and_runners(10))
def test_sigkill_while_replacing_a_checkpoint_leaves_the_old_or_the_new(
    tmp_path: Path, seed: int, runner: str
) -> None:
    rng = random.Random(seed)
    n = 40
    old = Child(tmp_path, n, chunk_size=2, delay=0.0, runner=runner)
    assert old.finish()[0] == 0
    # Other parameters (each padded with 4 MB): the checkpoint is replaced by a
    # new 160 MB file, written aside and renamed over the old one.
    new = Child(tmp_path, n, chunk_size=2, delay=0.0, log_name="new.txt",
                pad=4 << 20, runner=runner)  # fmt: skip

    def temporary_files() -> list[Path]:
        return list(tmp_path.glob(".checkpoint.pkl.*.tmp"))

    wait_until(new, lambda: bool(temporary_files()) or bool(new.lines("start")))
    time.sleep(rng.uniform(0, 0.3))  # a random instant, not a synchronisation
    new.kill()
    checkpoint = Checkpoint.load(old.path)
    if len(checkpoint.parameters[0]) == 1:  # the old one, whole
        assert checkpoint.output == [i * i for i in range(n)]
    else:  # the new one, with whatever it had saved
        assert all(len(p[1]) == 4 << 20 for p in checkpoint.parameters)
        saved = [i for i, done in enumerate(checkpoint.completed) if done]
        assert all(checkpoint.output[i] == i * i for i in saved)
    rerun = Child(tmp_path, n, chunk_size=2, delay=0.0, log_name="rerun.txt",
                  runner=runner)  # fmt: skip
    assert rerun.finish()[0] == 0
    assert temporary_files() == []


def test_another_process_cannot_write_the_same_checkpoint(tmp_path: Path) -> None:
    from thread_chunks import chunk

    child = Child(tmp_path, 20, chunk_size=1, delay=0.2)
    child.wait_for("start", 1)
    try:
        with pytest.raises(RuntimeError, match="is being written by another run"):
            chunk(abs, [[-1]], path=child.path, progress_bar=False)
    finally:
        child.kill()
    # The kill released the lock with the process.
    assert chunk(abs, [[-1]], path=child.path, progress_bar=False) == [1]
