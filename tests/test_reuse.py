"""``reuse="calls"``: refining a sweep reuses every saved call it still makes."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.helpers import RunChunk
from thread_chunks import Checkpoint, Chunker, chunk


class Counted:
    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []
        self.__qualname__ = "energy"

    def __call__(self, x: float, y: float) -> float:
        self.calls.append((x, y))
        return x * 10 + y


GRID = [[float(x), float(y)] for x in range(20) for y in range(10)]  # 200 rows


def test_a_sweep_extended_by_one_row_computes_exactly_that_row(
    tmp_path: Path, run_chunk: RunChunk, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "sweep.pkl"
    run_chunk(Counted(), GRID, progress_bar=False, path=path)
    counted = Counted()
    grid = [*GRID, [99.0, 1.0]]
    with caplog.at_level(logging.WARNING, logger="thread_chunks"):
        out = run_chunk(counted, grid, progress_bar=False, path=path, reuse="calls")
    assert counted.calls == [(99.0, 1.0)]
    assert out == [x * 10 + y for x, y in grid]
    assert "reusing the saved results of all its 200 calls" in caplog.text
    assert (tmp_path / "sweep.pkl.previous").exists()
    checkpoint = Checkpoint.load(path)  # rewritten for the new list
    assert checkpoint.parameters == grid
    assert checkpoint.done == 201


def test_reordered_rows_compute_nothing_and_a_changed_row_computes_one(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.pkl"
    chunk(Counted(), GRID, progress_bar=False, path=path)
    counted = Counted()
    reordered = GRID[::-1]
    out = chunk(counted, reordered, progress_bar=False, path=path, reuse="calls")
    assert counted.calls == []
    assert out == [x * 10 + y for x, y in reordered]
    changed = [*reordered[:5], [5.5, 0.0], *reordered[6:]]
    assert chunk(counted, changed, progress_bar=False, path=path, reuse="calls")
    assert counted.calls == [(5.5, 0.0)]


def test_without_the_option_other_parameters_replace_the_checkpoint(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sweep.pkl"
    chunk(Counted(), GRID, progress_bar=False, path=path)
    counted = Counted()
    chunk(counted, [*GRID, [99.0, 1.0]], progress_bar=False, path=path)
    assert len(counted.calls) == 201  # the seed's rule: everything again


def test_reuse_needs_the_same_function(tmp_path: Path) -> None:
    path = tmp_path / "sweep.pkl"
    chunk(Counted(), GRID[:3], progress_bar=False, path=path)

    def other(x: float, y: float) -> float:
        calls.append((x, y))
        return x - y

    calls: list[tuple[float, float]] = []
    assert chunk(other, GRID[:3], progress_bar=False, path=path, reuse="calls") == [
        x - y for x, y in GRID[:3]
    ]
    assert len(calls) == 3


def test_a_chunker_takes_reuse_too(tmp_path: Path) -> None:
    path = tmp_path / "sweep.pkl"
    counted = Counted()
    chunker = Chunker(counted, chunk_size=2, progress_bar=False, path=path,
                      reuse="calls")  # fmt: skip
    chunker(GRID[:4])
    chunker(GRID[:5])
    assert len(counted.calls) == 5


def test_reuse_must_be_run_or_calls() -> None:
    with pytest.raises(ValueError, match="reuse must be 'run' or 'calls'"):
        chunk(abs, [[1]], reuse="rows")  # type: ignore[call-overload]
