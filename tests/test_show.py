"""thread-chunks show PATH, and progress(path): how far a checkpoint has got."""

from __future__ import annotations

import io
import json
import re
import signal
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import thread_chunks
from tests.test_crash import Child
from thread_chunks import Progress, chunk, progress


def show(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thread_chunks", "show", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def fails_at_2(x: int) -> int:
    if x == 2:
        raise ValueError("bad input 2")
    return x


def test_show_a_finished_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-i] for i in range(8)], progress_bar=False, path=path)
    out = show(str(path))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "function    abs" in lines
    assert "done        8 of 8 (100.0%)" in lines
    assert "failures    0" in lines
    assert "running     no" in lines
    data = json.loads(show(str(path), "--json").stdout)
    assert {k: data[k] for k in ("function", "done", "total", "failures")} == {
        "function": "abs", "done": 8, "total": 8, "failures": 0,
    }  # fmt: skip
    assert data["running"] is False
    assert data["size_bytes"] == path.stat().st_size
    written = datetime.fromisoformat(data["last_write"])
    assert written.tzinfo is not None
    assert abs((datetime.now(UTC) - written).total_seconds()) < 60
    assert data["rate_per_s"] is None
    assert data["eta_s"] is None


def test_show_failures(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(fails_at_2, [[i] for i in range(5)], errors="return", progress_bar=False,
          path=path)  # fmt: skip
    out = show(str(path))
    assert "failures    1" in out.stdout
    assert "  call 2: ValueError: bad input 2\n    with [2]\n" in out.stdout
    report = progress(path)
    assert (report.done, report.failures) == (4, 1)
    assert report.first_failures == ((2, "ValueError", "bad input 2", "[2]"),)


def test_show_a_running_checkpoint(tmp_path: Path) -> None:
    child = Child(tmp_path, 400, chunk_size=2, delay=0.02)
    try:
        child.wait_for("committed", 20)
        data = json.loads(show(str(child.path), "--json").stdout)
        assert data["running"] is True
        assert 0 < data["done"] < 400
        assert data["total"] == 400
        assert data["rate_per_s"] > 0
        assert data["eta_s"] > 0
    finally:
        child.kill()


def test_show_a_damaged_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-i] for i in range(8)], chunk_size=1, progress_bar=False, path=path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    out = show(str(path), "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["total"] == 8


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", None])
def test_show_something_else_is_a_one_line_error(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "file.pkl"
    if content is not None:
        path.write_bytes(content)
    out = show(str(path))
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith("thread-chunks: ")
    assert "Traceback" not in out.stderr


def test_progress_only_reads(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=path)
    before = path.read_bytes()
    assert progress(path).done == 1
    assert path.read_bytes() == before
    assert chunk(abs, [[-1]], progress_bar=False, path=path) == [1]  # not locked


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).with_name("thread-chunks")
    if not script.exists():
        pytest.skip("the package is not installed with its scripts here")
    out = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert "show" in out.stdout


def thread_chunks_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "thread_chunks", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_version() -> None:
    out = thread_chunks_command("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout == f"thread-chunks {thread_chunks.__version__}\n"
    assert out.stdout == "thread-chunks 2.0.0.dev0\n"


def test_json_failures_are_objects(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(fails_at_2, [[i] for i in range(5)], errors="return", progress_bar=False,
          path=path)  # fmt: skip
    data = json.loads(show(str(path), "--json").stdout)
    assert data["first_failures"] == [
        {
            "index": 2,
            "exception_type": "ValueError",
            "message": "bad input 2",
            "arguments": "[2]",
        }
    ]


def test_show_several_checkpoints_one_line_each(tmp_path: Path) -> None:
    first, second = tmp_path / "first.pkl", tmp_path / "second.pkl"
    chunk(abs, [[-i] for i in range(8)], progress_bar=False, path=first)
    chunk(fails_at_2, [[i] for i in range(4)], errors="return", progress_bar=False,
          path=second)  # fmt: skip
    out = show(str(first), str(second))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == [
        "checkpoint", "function", "done", "failures", "running", "last", "write",
    ]  # fmt: skip
    assert lines[1].split()[:6] == [str(first), "abs", "8/8", "100.0%", "0", "no"]
    assert lines[2].split()[:6] == [
        str(second), "fails_at_2", "3/4", "75.0%", "1", "no",
    ]  # fmt: skip
    assert lines[3] == "total: 11 of 12 calls done (91.7%), 1 failure, 0 of 2 running"
    assert len(lines) == 4


def test_show_several_as_json(tmp_path: Path) -> None:
    first, missing = tmp_path / "first.pkl", tmp_path / "missing.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=first)
    out = show(str(first), str(missing), "--json")
    assert out.returncode == 2  # one of them cannot be read
    data = json.loads(out.stdout)
    assert [c["path"] for c in data["checkpoints"]] == [str(first), str(missing)]
    assert data["checkpoints"][0]["done"] == 1
    assert "No such file" in data["checkpoints"][1]["error"]
    assert data["total"] == {"done": 1, "total": 1, "failures": 0, "running": 0}


def test_show_several_with_one_unreadable(tmp_path: Path) -> None:
    first, missing = tmp_path / "first.pkl", tmp_path / "missing.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=first)
    out = show(str(first), str(missing))
    assert out.returncode == 2
    lines = out.stdout.splitlines()
    assert lines[1].split()[0] == str(first)
    assert lines[2].startswith(f"{missing}  cannot be read: ")
    assert lines[3] == "total: 1 of 1 calls done (100.0%), 0 failures, 0 of 1 running"


def steady(text: str) -> str:
    """``text`` without the time since the last write, which ticks."""
    return re.sub(r"\(\d+ s ago\)", "(... ago)", text)


def test_watch_a_finished_checkpoint_prints_once(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=path)
    out = show(str(path), "--watch", "0.01")
    assert out.returncode == 0, out.stderr
    assert steady(out.stdout) == steady(show(str(path)).stdout)


def test_watch_takes_its_seconds_or_leaves_them_out(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1]], progress_bar=False, path=path)
    once = steady(show(str(path)).stdout)
    # --watch before the path: the path is not taken for the seconds.
    for args in (["--watch", str(path)], [str(path), "--watch"]):
        out = show(*args)
        assert (out.returncode, steady(out.stdout)) == (0, once), out.stderr


def test_watch_a_running_checkpoint_until_it_ends(tmp_path: Path) -> None:
    child = Child(tmp_path, 400, chunk_size=2, delay=0.02)
    watcher = None
    try:
        child.wait_for("committed", 20)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "thread_chunks", "show", str(child.path),
             "--json", "--watch", "0.05"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())
        second = json.loads(watcher.stdout.readline())  # a new block, not a redraw
        assert first["running"] is True
        assert second["total"] == 400
        child.kill()  # the run ends: its lock goes with it
        rest, _ = watcher.communicate(timeout=30)
        assert watcher.returncode == 0
        assert json.loads(rest.splitlines()[-1])["running"] is False
    finally:
        child.kill()
        if watcher is not None and watcher.poll() is None:
            watcher.kill()


def test_ctrl_c_ends_a_watch_with_status_0(tmp_path: Path) -> None:
    child = Child(tmp_path, 400, chunk_size=2, delay=0.02)
    watcher = None
    try:
        child.wait_for("committed", 20)
        watcher = subprocess.Popen(
            [sys.executable, "-m", "thread_chunks", "show", str(child.path),
             "--watch", "0.05"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert watcher.stdout is not None
        assert watcher.stdout.readline().startswith("checkpoint  ")
        watcher.send_signal(signal.SIGINT)
        _, err = watcher.communicate(timeout=30)
        assert watcher.returncode == 0
        assert "Traceback" not in err
    finally:
        child.kill()
        if watcher is not None and watcher.poll() is None:
            watcher.kill()


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_watch_redraws_in_place_on_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from thread_chunks import _cli

    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1], [-2]], progress_bar=False, path=path)
    real = progress(path)
    states = [True, True, False]  # running twice, then ended

    def reading(where: Any) -> Progress:
        return replace(real, running=states.pop(0))

    terminal = Terminal()
    monkeypatch.setattr(_cli, "progress", reading)
    monkeypatch.setattr(sys, "stdout", terminal)
    assert _cli.main(["show", str(path), "--watch", "0.001"]) == 0
    assert states == []
    text = terminal.getvalue()
    blocks = text.split("\x1b[J")
    assert len(blocks) == 3  # drawn, then redrawn twice
    height = blocks[0].count("\n")
    assert blocks[0].endswith(f"\n\x1b[{height}A\r")  # back up over the block
    assert "running     yes" in blocks[1]
    assert "running     no" in blocks[2]
