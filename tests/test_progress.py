"""The progress bar: total, resume, closing, and off."""

from __future__ import annotations

from pathlib import Path

import pytest

from thread_chunks import chunk, config

from .test_checkpoint import PARAMS, Counted, interrupted_run


def test_bar_counts_every_call_and_closes(capsys: pytest.CaptureFixture[str]) -> None:
    chunk(Counted(), PARAMS, progress_bar=True)
    err = capsys.readouterr().err
    assert "0/3" in err
    assert "3/3" in err
    assert err.endswith("\n")  # closed: the line is finished


def test_bar_starts_at_the_resumed_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "checkpoint.pkl"
    interrupted_run(path, PARAMS, fail_at=2)
    capsys.readouterr()
    chunk(Counted(), PARAMS, progress_bar=True, path=path)
    err = capsys.readouterr().err
    assert "0/3" not in err
    assert "2/3" in err
    assert "resumed, 2 done before" in err
    assert "3/3" in err


def test_bar_is_closed_when_a_call_fails(capsys: pytest.CaptureFixture[str]) -> None:
    def boom(x: int, y: int) -> int:
        raise ArithmeticError

    with pytest.raises(ArithmeticError):
        chunk(boom, PARAMS, chunk_size=1, progress_bar=True)
    err = capsys.readouterr().err
    assert "0/3" in err
    assert err.endswith("\n")


def test_no_output_without_a_bar(capsys: pytest.CaptureFixture[str]) -> None:
    chunk(Counted(), PARAMS, progress_bar=False)
    assert capsys.readouterr() == ("", "")


def test_config_turns_the_bar_off(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(config, "progress_bar", False)
    chunk(Counted(), PARAMS)
    assert capsys.readouterr().err == ""
