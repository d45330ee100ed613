"""One rule for where a checkpoint is, and one run per checkpoint, lock file or not."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock

from thread_chunks import Checkpoint, CheckpointFailedWarning, chunk, progress
from thread_chunks._journal import lock_path


def test_a_path_without_extension_is_found_by_every_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    chunk(abs, [[-1], [-2]], progress_bar=False, path="mysweep")
    assert (tmp_path / "mysweep_Checkpoint.pkl").exists()
    assert progress("mysweep").done == 2
    assert Checkpoint.load("mysweep").output == [1, 2]
    show = subprocess.run(
        [sys.executable, "-m", "thread_chunks", "show", "mysweep"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert show.returncode == 0, show.stderr
    assert "2 of 2" in show.stdout


def test_a_tilde_is_the_home_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    chunk(abs, [[-3]], progress_bar=False, path="~/runs/x.pkl")
    assert (tmp_path / "home" / "runs" / "x.pkl").exists()
    assert not (tmp_path / "~").exists()
    assert progress("~/runs/x.pkl").done == 1
    assert Checkpoint.load("~/runs/x.pkl").output == [3]


def test_a_run_whose_lock_is_stolen_stops_writing_and_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lock file is deleted and another run locks a new one, between two
    writes of this run (deterministically: just before its next check)."""
    from thread_chunks import _journal

    path = tmp_path / "ck.pkl"
    steal = threading.Event()
    others: list[FileLock] = []
    still_ours = _journal.CheckpointLock.still_ours

    def stolen_first(self: Any) -> bool:
        if steal.is_set() and not others:
            os.unlink(self.path)
            other = FileLock(self.path, timeout=0, thread_local=False)
            other.acquire()  # another run takes the path now
            others.append(other)
        return still_ours(self)

    monkeypatch.setattr(_journal.CheckpointLock, "still_ours", stolen_first)

    def f(i: int) -> int:
        if i == 1:
            steal.set()
        return i

    with pytest.warns(CheckpointFailedWarning, match="stops writing"):
        out = chunk(f, [[i] for i in range(5)], chunk_size=1, progress_bar=False,
                    path=path)  # fmt: skip
    assert out == [0, 1, 2, 3, 4]  # every result is still returned
    others[0].release()


def test_a_deleted_lock_file_is_locked_again_when_no_other_run_took_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"

    def f(i: int) -> int:
        if i == 1:
            os.unlink(lock_path(str(path)))
        return i

    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFailedWarning)
        out = chunk(f, [[i] for i in range(50)], chunk_size=1, progress_bar=False,
                    path=path)  # fmt: skip
    assert out == list(range(50))
    assert os.path.exists(lock_path(str(path)))  # locked again, not left unlocked
    assert Checkpoint.load(path).output == out
