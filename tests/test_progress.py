"""The progress bar: total, resume, closing, and off."""

from __future__ import annotations

import logging
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
    assert issubclass(bar_class(), tqdm)


def test_by_default_no_bar_when_stderr_is_not_a_terminal(
    capfd: pytest.CaptureFixture[str],
) -> None:
    chunk(Counted(), PARAMS)  # stderr is a file here, as in a batch job's log
    assert capfd.readouterr().err == ""


def test_by_default_the_bar_on_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    chunk(Counted(), PARAMS)
    assert "3/3" in capsys.readouterr().err


def test_true_shows_the_bar_in_a_log_file(capfd: pytest.CaptureFixture[str]) -> None:
    chunk(Counted(), PARAMS, progress_bar=True)
    assert "3/3" in capfd.readouterr().err


def test_config_true_shows_the_bar_in_a_log_file(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(config, "progress_bar", True)
    chunk(Counted(), PARAMS)
    assert "3/3" in capfd.readouterr().err


def test_config_defaults_to_auto() -> None:
    assert config.progress_bar is None


def _logs_during_the_run(x: int, y: int) -> int:
    logging.getLogger("thread_chunks").warning("call with x=%d", x)
    return x + y


class ToStderr(logging.Handler):
    """Writes to ``sys.stderr`` as it is when a record comes (captured by pytest)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


@pytest.fixture
def stderr_handler() -> Iterator[logging.Handler]:
    """A handler of the user's on the root logger, as logging.basicConfig adds."""
    handler = ToStderr()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    yield handler
    root.removeHandler(handler)


def test_log_records_never_glue_onto_the_bar(
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    stderr_handler: logging.Handler,
) -> None:
    bar = {"mininterval": 0, "miniters": 0}
    chunk(_logs_during_the_run, PARAMS, chunk_size=1, progress_bar=bar)
    err = capsys.readouterr().err
    assert "0/3" in err  # the bar was drawn before the first record
    for x in (1, 2, 3):
        record = f"WARNING call with x={x}\n"
        at = err.index(record)
        assert err[at - 1] in "\r\n", repr(err[at - 60 : at + len(record)])
        assert err.count(record) == 1
    # Every handler got each record once, the test's capture included.
    assert [r.getMessage() for r in caplog.records] == [
        f"call with x={x}" for x in (1, 2, 3)
    ]
    assert logging.getLogger("thread_chunks").handlers == []  # left as it was


def test_log_records_as_usual_without_a_bar(
    capsys: pytest.CaptureFixture[str], stderr_handler: logging.Handler
) -> None:
    chunk(_logs_during_the_run, PARAMS, chunk_size=1, progress_bar=False)
    assert capsys.readouterr().err == "".join(
        f"WARNING call with x={x}\n" for x in (1, 2, 3)
    )


def test_the_notebook_bar_leaves_its_final_state_in_the_saved_output(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pytest.importorskip("ipywidgets", reason="the notebook extra is not installed")
    import IPython.display

    shown: list[Any] = []

    class Handle:
        def update(self, obj: Any) -> None:
            shown.append(repr(obj))

    def display(obj: Any, display_id: bool = False) -> Handle:
        shown.append(repr(obj))
        return Handle()

    monkeypatch.setattr(IPython.display, "display", display)
    _fake_kernel(monkeypatch, widgets=True)
    chunk(Counted(), PARAMS, progress_bar=True)
    assert "0/3" in shown[0]
    assert "3/3" in shown[-1]  # the text that a saved notebook shows
