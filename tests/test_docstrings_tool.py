"""``tools/docstrings.py`` on a fake package: ``--check`` and ``--write``."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from thread_chunks._options import Options
from tools import docstrings
from tools.docstrings import check, main, write


@dataclass(frozen=True, kw_only=True)
class FakeOptions:
    """Two documented options, and one that no signature below takes."""

    size: int = field(
        default=1,
        metadata={
            "kind": "int, optional",
            "doc": "How many calls run at once; the rest wait for a free slot, in "
            "the order they were given, and start as soon as one of the running "
            "calls returns.\n\n.. versionadded:: 2.0",
        },
    )
    path: str | None = field(
        default=None, metadata={"kind": "str, optional", "doc": "A checkpoint file."}
    )
    retries: int = field(
        default=0, metadata={"kind": "int, optional", "doc": "Tries after a failure."}
    )


MODULE = '''\
"""A fake module of the library."""

from typing import overload


@overload
def run(func: int, parameters: list[int], *, size: int = ...) -> int:
    """A stub: its docstring is not checked.

    Parameters
    ----------
    func : int
        Anything.
    """
@overload
def run(func: str, parameters: list[int], *, size: int = ...) -> str: ...
def run(func, parameters, path=None, *, size=1, **kwargs):
    """Run it.

    Parameters
    ----------
    func : callable
        The function.
    {options}
    parameters : list
        One argument list per call.

    Returns
    -------
    list
    """


class Runner:
    """A runner.

    Parameters
    ----------
    func : callable
        The function.
    {options}
    """

    def __init__(self, func, path=None, *, size=1):
        """The class docstring documents the options.

        Parameters
        ----------
        size : int
            Not checked here.
        """


def _private(size=1):
    """Private, so not checked.

    Parameters
    ----------
    size : int
        Anything.
    """
'''

ENTRIES = """\
path : str, optional
    A checkpoint file.
size : int, optional
    How many calls run at once; the rest wait for a free slot, in the order
    they were given, and start as soon as one of the running calls returns.

    .. versionadded:: 2.0"""


def expected_module() -> str:
    """``MODULE`` with its two ``{options}`` lines written out."""
    indented = "\n".join("    " + line if line else "" for line in ENTRIES.split("\n"))
    return MODULE.replace("    {options}\n", indented + "\n")


def make_root(tmp_path: Path, source: str = MODULE) -> Path:
    """A repository root whose ``src/thread_chunks/mod.py`` is ``source``."""
    package = tmp_path / "src" / "thread_chunks"
    package.mkdir(parents=True)
    (package / "mod.py").write_text(source)
    return tmp_path


def test_write_fills_the_placeholders_once(tmp_path: Path) -> None:
    root = make_root(tmp_path)
    module = root / "src" / "thread_chunks" / "mod.py"
    problems = check(root, FakeOptions)
    assert [p.split("\n")[0] for p in problems] == [
        "src/thread_chunks/mod.py:24: template line {options} left",
        "src/thread_chunks/mod.py:41: template line {options} left",
        "src/thread_chunks/mod.py:17: run: options section differs from Options",
        "src/thread_chunks/mod.py:34: Runner: options section differs from Options",
    ]
    assert write(root, FakeOptions) == 1
    assert module.read_text() == expected_module()
    assert check(root, FakeOptions) == []
    assert write(root, FakeOptions) == 0
    assert module.read_text() == expected_module()


def test_an_edited_description_fails_the_check(tmp_path: Path) -> None:
    root = make_root(tmp_path, expected_module())
    assert check(root, FakeOptions) == []
    module = root / "src" / "thread_chunks" / "mod.py"
    edited = expected_module().replace("A checkpoint file.", "A checkpoint.", 1)
    module.write_text(edited)
    [problem] = check(root, FakeOptions)
    assert problem.startswith(
        "src/thread_chunks/mod.py:17: run: options section differs from Options\n"
    )
    assert "\n-        A checkpoint.\n+        A checkpoint file.\n" in problem
    assert write(root, FakeOptions) == 1
    assert module.read_text() == expected_module()


def test_overload_stubs_and_private_functions_are_ignored(tmp_path: Path) -> None:
    root = make_root(tmp_path, expected_module())
    assert check(root, FakeOptions) == []
    assert "    func : int\n        Anything.\n" in expected_module()


def test_a_class_documents_the_options_of_its_init(tmp_path: Path) -> None:
    source = expected_module().replace(
        "func, path=None, *, size=1)", "func, *, size=1)"
    )
    root = make_root(tmp_path, source)
    [problem] = check(root, FakeOptions)
    assert problem.startswith("src/thread_chunks/mod.py:40: Runner: options section")
    assert "\n-    path : str, optional\n" in problem
    assert write(root, FakeOptions) == 1
    text = (root / "src" / "thread_chunks" / "mod.py").read_text()
    runner = text[text.index("class Runner") : text.index("def __init__")]
    assert "path :" not in runner
    assert "    size : int, optional\n" in runner
    assert "        size : int\n            Not checked here.\n" in text


def test_template_lines_fail_the_check(tmp_path: Path) -> None:
    source = expected_module().replace("    Returns\n", "    {outcome}\n    Returns\n")
    root = make_root(tmp_path, source)
    assert check(root, FakeOptions) == [
        "src/thread_chunks/mod.py:34: template line {outcome} left"
    ]


def test_missing_parameters_section_is_reported(tmp_path: Path) -> None:
    root = make_root(tmp_path, 'def go(size=1):\n    """Go."""\n')
    assert check(root, FakeOptions) == [
        "src/thread_chunks/mod.py:1: go: no Parameters section for size"
    ]
    assert write(root, FakeOptions) == 0


def test_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_root(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() prepends root/src
    fake = types.ModuleType("thread_chunks._options")
    fake.Options = FakeOptions  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "thread_chunks._options", fake)
    assert main(["--root", str(root)]) == 1
    assert "run: options section differs from Options" in capsys.readouterr().out
    assert main(["--write", "--root", str(root)]) == 0
    assert capsys.readouterr().out == "rewrote 1 file(s)\nall match\n"
    assert main(["--check", "--root", str(root)]) == 0


def test_the_entry_points_document_the_options_as_options_defines_them() -> None:
    """The real package: every entry point's options section is up to date."""
    assert docstrings.check(docstrings.ROOT, Options, docstrings.ENTRY_POINTS) == []
