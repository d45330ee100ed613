"""One definition of the options: signatures, documentation, checking, reprs."""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

import thread_chunks
from thread_chunks import Checkpoint, Chunker, LabelledActor, achunk, chunk, config
from thread_chunks._options import Options

ALL = [f.name for f in fields(Options)]
LEGACY = ["actors", "chunk_size", "progress_bar", "path"]
NEW = [name for name in ALL if name not in LEGACY]

ENTRY_POINTS: dict[str, tuple[Callable[..., Any], list[str], list[str]]] = {
    "chunk": (chunk, ["func", "parameters", *LEGACY], NEW),
    "achunk": (achunk, ["func", "parameters"], ALL),
    "Chunker": (
        Chunker,
        ["func", "actors", "chunk_size", "progress_bar", "persistent", "path"],
        NEW,
    ),
    "Chunker.__call__": (
        Chunker.__call__,
        ["self", "parameters", "func", "progress_bar", "path"],
        NEW,
    ),
    "Chunker.achunk": (
        Chunker.achunk,
        ["self", "parameters", "func", "progress_bar", "path"],
        NEW,
    ),
}


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_signatures_follow_the_one_definition(name: str) -> None:
    entry, positional, keyword_only = ENTRY_POINTS[name]
    parameters = inspect.signature(entry).parameters.values()
    kinds = {p.name: p.kind for p in parameters}
    assert [n for n, k in kinds.items() if k is not k.KEYWORD_ONLY] == positional
    assert [n for n, k in kinds.items() if k is k.KEYWORD_ONLY] == keyword_only
    defaults = {f.name: f.default for f in fields(Options)}
    per_run = name in ("Chunker.__call__", "Chunker.achunk")
    for parameter in parameters:
        if parameter.name in defaults:
            # A Chunker's run takes its options from the Chunker unless given.
            expected = None if per_run else defaults[parameter.name]
            assert parameter.default == expected, parameter.name


@pytest.mark.parametrize("name", [n for n in ENTRY_POINTS if n != "Chunker.achunk"])
def test_every_option_is_documented_once(name: str) -> None:
    entry, positional, keyword_only = ENTRY_POINTS[name]
    doc = inspect.getdoc(entry) or ""
    assert "{options}" not in doc
    for option in keyword_only + [n for n in positional if n in ALL]:
        assert doc.count(f"\n{option} : ") == 1, option


def test_new_options_are_keyword_only_in_chunk() -> None:
    with pytest.raises(TypeError, match="positional"):
        chunk(abs, [[1]], None, 1, False, None, 0.5)  # type: ignore[call-overload]


def test_an_int_in_place_of_actors_suggests_chunk_size() -> None:
    with pytest.raises(TypeError, match=r"got the int 4; .* pass chunk_size=4"):
        chunk(abs, [[1]], 4)  # type: ignore[call-overload]


def test_chunker_takes_every_new_option() -> None:
    chunker = Chunker(abs, chunk_size=1, progress_bar=False, checkpoint_every=2.5)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0"):
        Chunker(abs, checkpoint_every=-1)
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0"):
        chunker([[1]], checkpoint_every=-1)


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_checkpoint_every_must_be_finite(value: float) -> None:
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0 and finite"):
        chunk(abs, [[1]], checkpoint_every=value)


def test_reprs_say_what_each_object_is(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(abs, [[-1], [2]], progress_bar=False, path=path)
    assert (
        repr(Checkpoint.load(path))
        == f"Checkpoint('abs', done=2 of 2, path={str(path)!r})"
    )
    chunker = Chunker(abs, chunk_size=3, path=path)
    assert repr(chunker) == f"Chunker(abs, chunk_size=3, path={path!r})"
    assert repr(LabelledActor(max)) == "LabelledActor(max)"
    assert repr(config).startswith("Config(default_chunk_size=")


def _warn_in_run(path: Path) -> Any:
    import threading

    return lambda i: threading.Lock() if i == 1 else i  # cannot be pickled


def test_chunk_warnings_point_at_the_callers_line(tmp_path: Path) -> None:
    func = _warn_in_run(tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        chunk(func, [[0], [1]], progress_bar=False, path=tmp_path / "a.pkl")
    assert [(Path(w.filename).name, w.lineno) for w in caught] == [
        ("test_options.py", line)
    ]


def test_chunker_warnings_point_at_the_callers_line(tmp_path: Path) -> None:
    chunker = Chunker(_warn_in_run(tmp_path), chunk_size=1, progress_bar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        chunker([[0], [1]], path=tmp_path / "b.pkl")
    assert [(Path(w.filename).name, w.lineno) for w in caught] == [
        ("test_options.py", line)
    ]


@pytest.mark.anyio
async def test_achunk_warnings_point_at_the_callers_line(tmp_path: Path) -> None:
    func = _warn_in_run(tmp_path)
    chunker = Chunker(func, chunk_size=1, progress_bar=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        await achunk(func, [[0], [1]], progress_bar=False, path=tmp_path / "c.pkl")
        await chunker.achunk([[0], [1]], path=tmp_path / "d.pkl")
    assert [(Path(w.filename).name, w.lineno) for w in caught] == [
        ("test_options.py", first),
        ("test_options.py", first + 1),
    ]


def test_public_objects_claim_the_package() -> None:
    for name in thread_chunks.__all__:
        obj = getattr(thread_chunks, name)
        if callable(obj):
            assert obj.__module__ == "thread_chunks", name
