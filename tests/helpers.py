"""Helpers shared by the tests: spies, recording functions, interrupted runs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol, Unpack

import pytest

from thread_chunks import chunk
from thread_chunks._options import OptionsDict


class RunChunk(Protocol):
    """A way to run a call of thread-chunks: ``chunk``, or ``achunk`` on a backend.

    It takes what :func:`chunk` takes, the options by keyword, and returns the
    outputs; see the ``run_chunk`` fixture.
    """

    def __call__(
        self,
        func: Callable[..., Any] | None,
        parameters: Iterable[Sequence[Any]],
        /,
        **options: Unpack[OptionsDict],
    ) -> list[Any]: ...


class Spy:
    """Counts calls running at once and remembers the peak.

    ``gate`` opens when ``open_at`` calls are running at the same time.
    """

    def __init__(self, open_at: int | None = None) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.peak = 0
        self.calls: list[int] = []
        self.open_at = open_at
        self.gate = threading.Event()

    def __enter__(self) -> Spy:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            if self.running == self.open_at:
                self.gate.set()
        return self

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.running -= 1


PARAMS = [[1, 4], [2, 5], [3, 6]]


class Counted:
    """A function that records which argument lists it was called with."""

    def __init__(self, func: Any = None) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.func = func or (lambda x, y: x + y)
        self.__qualname__ = "f"

    def __call__(self, *args: Any) -> Any:
        with self.lock:
            self.calls.append(args)
        return self.func(*args)


def interrupted_run(
    path: Path, params: list[Any], fail_at: int, run: RunChunk = chunk
) -> None:
    """Run ``f`` over ``params`` and crash at call ``fail_at`` (chunk_size 1).

    ``run`` runs it: :func:`chunk` by default, or a ``run_chunk`` fixture's runner.
    """

    def f(x: Any, y: Any) -> Any:
        if [x, y] == params[fail_at]:
            raise RuntimeError("crash")
        return x + y

    f.__qualname__ = "f"
    with pytest.raises(RuntimeError, match="crash"):
        run(f, params, chunk_size=1, progress_bar=False, path=path)
