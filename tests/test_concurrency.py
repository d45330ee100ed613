"""At most chunk_size calls at once, the next starting as soon as one ends."""

from __future__ import annotations

import threading

import anyio
import anyio.lowlevel
import pytest

from tests.helpers import Spy
from thread_chunks import achunk, chunk

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 8])
async def test_peak_concurrency_of_threads_equals_chunk_size(chunk_size: int) -> None:
    spy = Spy(open_at=chunk_size)

    def f(i: int) -> int:
        with spy:
            # Hold every call until chunk_size of them run together: a bound
            # that is too low times out here, one too high shows in the peak.
            assert spy.gate.wait(timeout=10), "never reached chunk_size calls"
        return i

    n = 4 * chunk_size
    out = await achunk(
        f, [[i] for i in range(n)], chunk_size=chunk_size, progress_bar=False
    )
    assert out == list(range(n))
    assert spy.peak == chunk_size


@pytest.mark.parametrize("chunk_size", [1, 3])
async def test_peak_concurrency_of_coroutines_equals_chunk_size(
    chunk_size: int,
) -> None:
    spy = Spy()
    gate = anyio.Event()

    async def f(i: int) -> int:
        with spy:
            if spy.running == chunk_size:
                gate.set()
            await gate.wait()
            await (
                anyio.lowlevel.checkpoint()
            )  # let any call beyond the bound start and show
        return i

    n = 3 * chunk_size
    out = await achunk(
        f, [[i] for i in range(n)], chunk_size=chunk_size, progress_bar=False
    )
    assert out == list(range(n))
    assert spy.peak == chunk_size


async def test_next_call_starts_as_soon_as_one_finishes() -> None:
    third_started = threading.Event()

    def f(i: int) -> int:
        if i == 0:
            # Call 1 is quick; call 2 must start while call 0 still runs.
            # Running chunk by chunk would wait for call 0 and time out here.
            assert third_started.wait(timeout=10), "call 2 waited for call 0"
        if i == 2:
            third_started.set()
        return i

    assert await achunk(f, [[0], [1], [2]], chunk_size=2, progress_bar=False) == [
        0,
        1,
        2,
    ]


async def test_task_count_stays_bounded_by_chunk_size() -> None:
    peak_tasks = 0

    async def f(i: int) -> int:
        nonlocal peak_tasks
        peak_tasks = max(peak_tasks, len(anyio.get_running_tasks()))
        return i

    n = 20_000
    out = await achunk(f, [[i] for i in range(n)], chunk_size=4, progress_bar=False)
    assert out == list(range(n))
    assert peak_tasks <= 4 + 8  # the workers plus a few of the test's own


def test_chunk_with_many_more_threads_than_anyio_default() -> None:
    spy = Spy(open_at=50)

    def f(i: int) -> int:
        with spy:
            assert spy.gate.wait(timeout=10)
        return i

    out = chunk(f, [[i] for i in range(100)], chunk_size=50, progress_bar=False)
    assert out == list(range(100))
    assert spy.peak == 50


SLOTS = 10**9  # one actor per slot: 2.9 GB, then MemoryError


@pytest.mark.parametrize("how", ["chunk", "coroutines"])
def test_a_chunk_size_far_above_the_calls_allocates_nothing_per_slot(
    how: str,
) -> None:
    import tracemalloc

    def f(x: int) -> int:
        return x + 1

    async def g(x: int) -> int:
        return x + 1

    tracemalloc.start()
    try:
        if how == "chunk":
            out = chunk(f, [[1], [2]], chunk_size=SLOTS, progress_bar=False)
        else:
            out = anyio.run(
                lambda: achunk(g, [[1], [2]], chunk_size=SLOTS, progress_bar=False)
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert out == [2, 3]
    assert peak < 10 * 2**20, f"{peak} bytes for 2 calls"
