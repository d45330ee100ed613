"""``chunk_iter(..., ordered=True)``: results in parameter order, each when ready."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from thread_chunks import CallsFailed, Checkpoint, achunk_iter, chunk, chunk_iter

WAIT = 20  # seconds: only a broken implementation waits this long


def wait(event: threading.Event) -> None:
    if not event.wait(WAIT):
        raise TimeoutError("the event never came")


class FirstWaitsForSecond:
    """Call 0 returns only once call 1 has returned: they complete as 1, 0."""

    def __init__(self) -> None:
        self.second_done = threading.Event()
        self.__qualname__ = "first_waits"

    def __call__(self, x: int) -> int:
        if x == 0:
            wait(self.second_done)
        if x == 1:
            self.second_done.set()
        return x * 10


def test_default_order_is_completion_order() -> None:
    pairs = list(chunk_iter(FirstWaitsForSecond(), [[0], [1]], chunk_size=2,
                            progress_bar=False))  # fmt: skip
    assert pairs == [(1, 10), (0, 0)]


def test_ordered_gives_parameter_order() -> None:
    pairs = list(chunk_iter(FirstWaitsForSecond(), [[0], [1]], chunk_size=2,
                            progress_bar=False, ordered=True))  # fmt: skip
    assert pairs == [(0, 0), (1, 10)]


class Gated:
    """Call ``gate_at`` waits until the reader has received an earlier result.

    A coroutine function: each worker task reports every result the moment
    its call returns (a worker thread reports a slice of calls at a time).
    """

    def __init__(self, gate_at: int, fail_at: int | None = None) -> None:
        self.received = threading.Event()
        self.gate_at = gate_at
        self.fail_at = fail_at
        self.__qualname__ = "gated"

    async def __call__(self, x: int) -> int:
        if x == self.gate_at:
            await anyio.to_thread.run_sync(wait, self.received)
        if x == self.fail_at:
            raise ValueError(f"bad input {x}")
        return x


def read(
    results: Iterator[tuple[int, Any]], func: Gated, at: int, seen: list[int]
) -> None:
    """Put the indices read in ``seen``; once ``at`` is read, ``func``'s gate opens."""
    for index, _ in results:
        seen.append(index)
        if index == at:
            func.received.set()


def test_ordered_gives_each_result_as_soon_as_those_before_are_done() -> None:
    func = Gated(gate_at=3)  # call 3 waits until the reader has result 1
    results = chunk_iter(func, [[x] for x in range(5)], chunk_size=2,
                         progress_bar=False, ordered=True)  # fmt: skip
    seen: list[int] = []
    read(results, func, at=1, seen=seen)
    assert seen == [0, 1, 2, 3, 4]


def test_ordered_skips_a_deferred_failure_at_once() -> None:
    func = Gated(gate_at=3, fail_at=1)  # call 3 waits until the reader has 2
    results = chunk_iter(func, [[x] for x in range(5)], chunk_size=2,
                         progress_bar=False, ordered=True,
                         errors="defer")  # fmt: skip
    seen: list[int] = []
    with pytest.raises(CallsFailed):
        read(results, func, at=2, seen=seen)
    assert seen == [0, 2, 3, 4]


def test_ordered_returns_exceptions_in_order() -> None:
    pairs = list(chunk_iter(Gated(gate_at=-1, fail_at=1), [[x] for x in range(3)],
                            chunk_size=2, progress_bar=False, ordered=True,
                            errors="return"))  # fmt: skip
    assert [index for index, _ in pairs] == [0, 1, 2]
    assert isinstance(pairs[1][1], ValueError)


class FailsAfterTheNext:
    """Call 1 fails once call 2 has returned."""

    def __init__(self) -> None:
        self.two_done = threading.Event()
        self.__qualname__ = "fails_after"

    def __call__(self, x: int) -> int:
        if x == 1:
            wait(self.two_done)
            raise ValueError("bad input 1")
        if x == 2:
            self.two_done.set()
        return x


def test_ordered_gives_what_completed_before_raising() -> None:
    results = chunk_iter(FailsAfterTheNext(), [[x] for x in range(4)],
                         chunk_size=2, progress_bar=False, ordered=True)  # fmt: skip
    seen: list[int] = []
    with pytest.raises(ValueError, match="bad input 1"):
        seen.extend(index for index, _ in results)
    assert seen[:2] == [0, 2]  # call 2 completed after call 1 began; 3 may have
    assert seen == sorted(seen)
    assert 1 not in seen


COMPUTED: list[int] = []
BROKEN = threading.Event()  # set: call 1 fails


def fails_at_1_while_broken(x: int) -> int:
    if BROKEN.is_set() and x == 1:
        raise ValueError("bad input 1")
    COMPUTED.append(x)
    return x


def test_ordered_includes_the_results_of_an_earlier_run(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    params = [[x] for x in range(4)]
    BROKEN.set()
    try:
        chunk(fails_at_1_while_broken, params, errors="return", path=path,
              progress_bar=False)  # fmt: skip
    finally:
        BROKEN.clear()
    assert Checkpoint.load(path).completed == [True, False, True, True]
    COMPUTED.clear()  # the rerun: saved results first, then call 1
    pairs = chunk_iter(fails_at_1_while_broken, params, path=path,
                       progress_bar=False, ordered=True)  # fmt: skip
    assert [index for index, _ in pairs] == [0, 1, 2, 3]
    assert COMPUTED == [1]


@pytest.mark.anyio
async def test_achunk_iter_ordered() -> None:
    out: list[tuple[int, Any]] = []
    async with achunk_iter(FirstWaitsForSecond(), [[0], [1]], chunk_size=2,
                           progress_bar=False, ordered=True) as results:  # fmt: skip
        async for pair in results:
            out.append(pair)
    assert out == [(0, 0), (1, 10)]


def test_ordered_must_be_a_bool() -> None:
    yes: Any = "yes"
    with pytest.raises(TypeError, match=r"ordered must be True or False, got 'yes'"):
        chunk_iter(abs, [[1]], ordered=yes)
