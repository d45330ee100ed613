from __future__ import annotations

import threading

import pytest


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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


@pytest.fixture
def spy() -> Spy:
    return Spy()
