"""Rows of ``parameters``: any sequence is an argument list, a mapping keywords."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

from tests.engines import square
from thread_chunks import (
    Checkpoint,
    Chunker,
    LabelledActor,
    achunk,
    chunk,
    chunk_iter,
)


def line(x: int, y: int = 0, *, scale: int = 1) -> tuple[int, int, int]:
    return x, y, scale


async def aline(x: int, y: int = 0, *, scale: int = 1) -> tuple[int, int, int]:
    return x, y, scale


ROWS: list[Any] = [
    [1, 2],
    {"x": 3, "scale": 5},
    (4,),
    {"y": 7, "x": 6},
    range(8, 10),
]
EXPECTED = [(1, 2, 1), (3, 0, 5), (4, 0, 1), (6, 7, 1), (8, 9, 1)]


def test_a_mapping_row_is_keyword_arguments() -> None:
    assert chunk(line, ROWS, chunk_size=2, progress_bar=False) == EXPECTED


def test_rows_of_a_2d_numpy_array_are_argument_lists() -> None:
    values = np.arange(6).reshape(3, 2)
    out = chunk(line, values, chunk_size=2, progress_bar=False)
    assert out == [(0, 1, 1), (2, 3, 1), (4, 5, 1)]


def test_a_list_of_numpy_rows() -> None:
    rows: list[Any] = [np.array([1.5, 2.5]), [3, 4]]
    out = chunk(line, rows, chunk_size=1, progress_bar=False)
    assert out == [(1.5, 2.5, 1), (3, 4, 1)]


def test_mapping_rows_of_a_coroutine_function() -> None:
    assert chunk(aline, ROWS, chunk_size=2, progress_bar=False) == EXPECTED


@pytest.mark.anyio
async def test_mapping_rows_in_achunk() -> None:
    assert await achunk(line, ROWS, chunk_size=2, progress_bar=False) == EXPECTED


def test_mapping_rows_stream() -> None:
    out = dict(chunk_iter(line, ROWS, chunk_size=2, progress_bar=False))
    assert [out[i] for i in range(len(ROWS))] == EXPECTED


@pytest.fixture(params=["threads", "processes"])
def executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    pool: Executor
    if request.param == "threads":
        pool = ThreadPoolExecutor(2)
    else:
        pool = ProcessPoolExecutor(2)
    with pool:
        yield pool


def test_mapping_rows_on_an_executor(executor: Executor) -> None:
    rows: list[Any] = [[2], {"x": 3}, (4,), {"x": 5}]
    out = chunk(square, rows, executor=executor, chunk_size=2, progress_bar=False)
    assert out == [4, 9, 16, 25]


class Flaky:
    """Fails the first attempt of each call, then returns its keyword arguments."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.lock = threading.Lock()
        self.__qualname__ = "flaky"

    def __call__(self, x: int, **more: int) -> tuple[int, dict[str, int]]:
        with self.lock:
            first = x not in self.seen
            self.seen.add(x)
        if first:
            raise ValueError(f"first attempt at {x}")
        return x, more


class AsyncFlaky(Flaky):
    async def __call__(  # type: ignore[override]
        self, x: int, **more: int
    ) -> tuple[int, dict[str, int]]:
        return super().__call__(x, **more)


@pytest.mark.parametrize("make", [Flaky, AsyncFlaky])
def test_retries_keep_the_keyword_arguments(make: Callable[[], Flaky]) -> None:
    rows: list[Any] = [{"x": 1, "k": 2}, [3], {"x": 4}]
    out = chunk(make(), rows, retries=1, retry_delay=0, chunk_size=2,
                progress_bar=False)  # fmt: skip
    assert out == [(1, {"k": 2}), (3, {}), (4, {})]


def test_retries_on_an_executor_keep_the_keyword_arguments() -> None:
    rows: list[Any] = [{"x": 1, "k": 2}, {"x": 4}]
    with ThreadPoolExecutor(2) as pool:
        out = chunk(Flaky(), rows, executor=pool, retries=1, retry_delay=0,
                    chunk_size=2, progress_bar=False)  # fmt: skip
    assert out == [(1, {"k": 2}), (4, {})]


def test_labelled_actor_passes_keyword_arguments() -> None:
    assert LabelledActor(line).run("a", 1, scale=3) == ("a", (1, 0, 3))


class Offset(LabelledActor):
    """Overrides ``run``, with keyword arguments."""

    def __init__(self) -> None:
        super().__init__(line)

    def run(self, label: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        label, (x, y, scale) = super().run(label, *args, **kwargs)
        return label, (x + 100, y, scale)


class Positional(LabelledActor):
    """Overrides ``run`` as 1.x documented it: positional arguments only."""

    def run(self, label: Any, *args: Any) -> tuple[Any, Any]:
        return label, self.get_func()(*args)


def test_labelled_actor_subclasses_get_keyword_arguments() -> None:
    actors = [Offset(), Offset()]
    out = chunk(None, [{"x": 1}, [2, 3]], actors, progress_bar=False)
    assert out == [(101, 0, 1), (102, 3, 1)]
    assert Chunker(None, [Offset()], progress_bar=False)([{"x": 5}]) == [(105, 0, 1)]


def test_a_run_without_keywords_cannot_take_a_mapping_row() -> None:
    with pytest.raises(
        TypeError,
        match=r"actors\[0\] \(Positional\) overrides run\(\) without \*\*kwargs, "
        r"so it cannot take the keyword arguments of parameters\[1\]",
    ):
        chunk(None, [[1], {"x": 2}], [Positional(line)], progress_bar=False)
    # Argument lists alone still work with it.
    assert chunk(None, [[1]], [Positional(line)], progress_bar=False) == [(1, 0, 1)]


def fails_on_keyword(x: int, y: int = 0) -> int:
    if x == 2:
        raise ValueError("bad x")
    return x


def test_the_note_of_a_failure_shows_keyword_arguments() -> None:
    with pytest.raises(ValueError, match="bad x") as info:
        chunk(fails_on_keyword, [[1], {"x": 2, "y": 3}], chunk_size=1,
              progress_bar=False)  # fmt: skip
    assert info.value.__notes__ == [
        "raised by call 1: fails_on_keyword(**parameters[1]) with "
        "parameters[1] = {'x': 2, 'y': 3}"
    ]


class Count:
    def __init__(self) -> None:
        self.calls = 0
        self.lock = threading.Lock()
        self.__qualname__ = "count"

    def __call__(self, **row: int) -> int:
        with self.lock:
            self.calls += 1
        return sum(row.values())


def test_mapping_rows_are_saved_as_given_and_resume(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    rows = [{"a": 1, "b": 2}, {"a": 3, "b": 4}]
    first = Count()
    assert chunk(first, rows, path=path, progress_bar=False) == [3, 7]
    saved = Checkpoint.load(path)
    parameters: list[Any] = list(saved.parameters)
    assert parameters == rows
    assert all(type(row) is dict for row in parameters)
    again = Count()
    assert chunk(again, [dict(row) for row in rows], path=path,
                 progress_bar=False) == [3, 7]  # fmt: skip
    assert again.calls == 0  # resumed: nothing recomputed


def test_other_values_under_the_same_keys_are_another_run(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(Count(), [{"a": 1}, {"a": 2}], path=path, progress_bar=False)
    other = Count()
    out = chunk(other, [{"a": 1}, {"a": 20}], path=path, progress_bar=False)
    assert out == [1, 20]
    assert other.calls == 2


COUNTED: list[int] = []


def counted_line(x: int, y: int) -> int:
    COUNTED.append(x)
    return x + y


def test_numpy_rows_resume(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    values = np.arange(6).reshape(3, 2)
    COUNTED.clear()
    assert chunk(counted_line, values, path=path, progress_bar=False) == [1, 5, 9]
    assert len(COUNTED) == 3
    again = chunk(counted_line, values.copy(), path=path, progress_bar=False)
    assert again == [1, 5, 9]
    assert len(COUNTED) == 3  # resumed: nothing recomputed


@pytest.mark.parametrize(
    ("row", "shown"),
    [
        ("ab", r"'ab' \(str\)"),
        (b"ab", r"b'ab' \(bytes\)"),
        (7, r"7 \(int\)"),
        (2.5, r"2\.5 \(float\)"),
        ({1, 2}, r"\{1, 2\} \(set\)"),
        (None, r"None \(NoneType\)"),
        (np.float64(1.5), r"(np\.float64\()?1\.5\)? \(float64\)"),
        (np.array(3), r"array\(3\) \(ndarray\)"),
    ],
)
def test_a_row_that_is_not_an_argument_list(row: Any, shown: str) -> None:
    with pytest.raises(
        TypeError,
        match=rf"parameters\[1\] must be an argument list \(a list, tuple or other "
        rf"sequence\) or a dict of keyword arguments, got {shown}; to call "
        r"func\(x\) for each x, pass \[\[x\] for x in values\]",
    ):
        chunk(line, [[1], row], progress_bar=False)


def test_keyword_names_must_be_strings() -> None:
    bad: Any = [{1: 2}]
    with pytest.raises(
        TypeError,
        match=r"parameters\[0\] is a dict of keyword arguments, whose keys must be "
        r"strings: got 1 \(int\)",
    ):
        chunk(line, bad, progress_bar=False)


def test_an_anyio_run_over_mapping_rows() -> None:
    async def main() -> list[Any]:
        return await achunk(aline, [{"x": 1}], progress_bar=False)

    assert anyio.run(main) == [(1, 0, 1)]


def test_a_mapping_as_parameters_suggests_a_list_of_it() -> None:
    with pytest.raises(
        TypeError, match=r"got a dict; to call func\(\*\*kwargs\) once, pass \[kwargs\]"
    ):
        chunk(line, {"x": 1}, progress_bar=False)


def test_keyword_arguments_in_another_order_resume(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    chunk(Count(), [{"a": 1, "b": 2}], path=path, progress_bar=False)
    again = Count()
    assert chunk(again, [{"b": 2, "a": 1}], path=path, progress_bar=False) == [3]
    assert again.calls == 0  # the same call: f(a=1, b=2)
    other = Count()
    assert chunk(other, [{"a": 1, "c": 2}], path=path, progress_bar=False) == [3]
    assert other.calls == 1  # another keyword: another call
