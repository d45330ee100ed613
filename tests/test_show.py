"""thread-chunks show PATH, and progress(path): how far a checkpoint has got."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.test_crash import Child
from thread_chunks import chunk, progress


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
    assert "  call 2: ValueError: bad input 2" in out.stdout
    report = progress(path)
    assert (report.done, report.failures) == (4, 1)
    assert report.first_failures == ((2, "ValueError", "bad input 2"),)


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
