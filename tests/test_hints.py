"""Classic mistakes get an error that says the fix: map-style and foreign keywords."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from thread_chunks import Chunker, achunk, achunk_iter, chunk, chunk_iter

calls: list[object] = []


XS: Any = [1, 2]
YS: Any = [3, 4]
ZS: Any = [5, 6]


def g(x: int, y: int) -> int:
    calls.append((x, y))
    return x + y


@pytest.fixture(autouse=True)
def _no_calls() -> Any:
    calls.clear()
    yield
    assert calls == [], "a call ran before the mistake was reported"


def test_map_style_arguments_suggest_zip() -> None:
    with pytest.raises(
        TypeError,
        match=r"chunk\(g, \[1, 2\], \[3, 4\]\) looks like map-style arguments .* "
        r"pass list\(zip\(xs, ys\)\) instead",
    ):
        chunk(g, XS, YS)


def test_map_style_with_three_lists() -> None:
    with pytest.raises(TypeError, match=r"pass list\(zip\(xs, ys, zs\)\) instead"):
        chunk(g, XS, YS, ZS)


def test_map_style_in_a_chunker_run() -> None:
    chunker = Chunker(g, chunk_size=1, progress_bar=False)
    with pytest.raises(TypeError, match=r"pass list\(zip\(xs, ys\)\) instead"):
        chunker(XS, YS)
    with pytest.raises(TypeError, match=r"pass list\(zip\(xs, ys\)\) instead"):
        anyio.run(chunker.achunk, XS, YS)


def test_actors_that_are_not_actors_with_argument_lists() -> None:
    # Not map-style (the rows are argument lists): the actors error stands.
    with pytest.raises(TypeError, match=r"actors\[0\] must be a LabelledActor"):
        chunk(g, [[1, 2]], YS)


def run_achunk(**kwargs: Any) -> None:
    anyio.run(lambda: achunk(g, [[1, 2]], **kwargs))


def run_achunk_iter(**kwargs: Any) -> None:
    achunk_iter(g, [[1, 2]], **kwargs)


def run_chunker_call(**kwargs: Any) -> None:
    Chunker(g, chunk_size=1)([[1, 2]], **kwargs)


def run_chunker_achunk(**kwargs: Any) -> None:
    chunker = Chunker(g, chunk_size=1)
    anyio.run(lambda: chunker.achunk([[1, 2]], **kwargs))


ENTRY_POINTS: dict[str, Callable[..., Any]] = {
    "chunk": lambda **kwargs: chunk(g, [[1, 2]], **kwargs),
    "achunk": run_achunk,
    "chunk_iter": lambda **kwargs: chunk_iter(g, [[1, 2]], **kwargs),
    "achunk_iter": run_achunk_iter,
    "Chunker": lambda **kwargs: Chunker(g, **kwargs),
    "Chunker.__call__": run_chunker_call,
    "Chunker.achunk": run_chunker_achunk,
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("keyword", ["n_jobs", "max_workers", "processes"])
def test_a_worker_count_suggests_chunk_size(entry: str, keyword: str) -> None:
    message = (
        f"{entry}() got an unexpected keyword argument '{keyword}'; to run 2 calls "
        "at once, pass chunk_size=2"
    )
    with pytest.raises(TypeError, match=f"^{re.escape(message)}$"):
        ENTRY_POINTS[entry](**{keyword: 2})


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_backend_suggests_executor(entry: str) -> None:
    with pytest.raises(
        TypeError,
        match=rf"^{re.escape(entry)}\(\) got an unexpected keyword argument "
        r"'backend'; .*pass executor=",
    ):
        ENTRY_POINTS[entry](backend="loky")


def test_other_unknown_keywords() -> None:
    with pytest.raises(
        TypeError, match=r"^chunk\(\) got an unexpected keyword argument 'colour'$"
    ):
        chunk(g, [[1, 2]], colour="red")  # type: ignore[call-overload]
    with pytest.raises(
        TypeError,
        match=r"^chunk\(\) got an unexpected keyword argument 'retry'; did you mean "
        r"retries=\?$",
    ):
        chunk(g, [[1, 2]], retry=3)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"'n_jobs'; to set how many calls run at "):
        chunk(g, [[1, 2]], n_jobs=-1)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    "entry",
    [chunk, achunk, chunk_iter, achunk_iter, Chunker, Chunker.__call__, Chunker.achunk],
)
def test_signatures_show_the_options_only(entry: Callable[..., Any]) -> None:
    kinds = [p.kind for p in inspect.signature(entry).parameters.values()]
    assert inspect.Parameter.VAR_KEYWORD not in kinds
    assert "retry_delay" in inspect.signature(entry).parameters
