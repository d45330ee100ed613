"""The progress bar: total, resume, closing, and off."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest

from tests.helpers import PARAMS, Counted, interrupted_run
from thread_chunks import chunk, config
from thread_chunks._run import bar_class


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


def test_a_dict_passes_tqdm_options_over_ours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = {"desc": "sweep", "unit": "run", "mininterval": 0, "ascii": True}
    chunk(Counted(), PARAMS, progress_bar=bar)
    err = capsys.readouterr().err
    assert "sweep:" in err
    assert "3/3" in err
    assert "run/s" in err or "s/run" in err


def test_a_dict_can_disable_the_bar(capsys: pytest.CaptureFixture[str]) -> None:
    chunk(Counted(), PARAMS, progress_bar={"disable": True})
    assert capsys.readouterr().err == ""


class _Kernel:
    def __init__(self) -> None:
        self.config: dict[str, dict[str, object]] = {"IPKernelApp": {}}


def _fake_kernel(monkeypatch: pytest.MonkeyPatch, widgets: bool) -> None:
    ipython = types.ModuleType("IPython")
    ipython.get_ipython = _Kernel  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    if not widgets:
        monkeypatch.setitem(sys.modules, "ipywidgets", None)  # import fails


def test_a_kernel_without_ipywidgets_gets_the_text_bar_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tqdm.std import tqdm

    _fake_kernel(monkeypatch, widgets=False)
    assert bar_class() is tqdm
    chunk(Counted(), PARAMS, progress_bar=True)  # warnings are errors here
    assert "3/3" in capsys.readouterr().err


def test_a_kernel_with_ipywidgets_gets_the_widget_bar(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ipywidgets", reason="the notebook extra is not installed")
    from tqdm.notebook import tqdm

    _fake_kernel(monkeypatch, widgets=True)
    assert bar_class() is tqdm
