"""Warnings raised during a run, issued from the entry point at the user's line.

The checkpoint writer runs in a worker thread, and ``chunk()`` runs its event
loop in a helper thread: a warning issued there would point at a library file.
Instead the run queues each warning in :class:`Notices`, and the entry point,
which waits for the run, issues it from its own frame, so that ``warnings``
shows the user's ``chunk(...)`` line. A warning turned into an error by a
filter then stops the run like any exception: running calls finish and are
saved, and everything the run holds is released before the error propagates.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable
from contextlib import suppress

import anyio
import anyio.from_thread
import anyio.lowlevel

__all__ = ["Notices"]


class Notices:
    """The warnings of one run, queued from any thread, issued by the entry point."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._pending: list[tuple[str, type[Warning]]] = []
        self._kinds: set[str] = set()
        self._wake: Callable[[], None] | None = None
        self.ended = False

    def warn(self, message: str, category: type[Warning], kind: str = "") -> None:
        """Queue a warning; if ``kind`` is given, only the first one of that kind."""
        with self._condition:
            if kind in self._kinds:
                return
            if kind:
                self._kinds.add(kind)
            self._pending.append((message, category))
            self._condition.notify_all()
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def end(self) -> None:
        """Say that the run is over: the waits return at once from now on."""
        with self._condition:
            self.ended = True
            self._condition.notify_all()
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def wait_blocking(self) -> None:
        """Block until a warning is queued or the run is over (Ctrl-C interrupts)."""
        with self._condition:
            self._condition.wait_for(lambda: self._pending or self.ended)

    async def wait(self) -> None:
        """Wait on the event loop until a warning is queued or the run is over."""
        event = anyio.Event()
        token = anyio.lowlevel.current_token()
        loop_thread = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == loop_thread:
                event.set()
            else:
                with suppress(anyio.RunFinishedError):
                    anyio.from_thread.run_sync(event.set, token=token)

        with self._condition:
            if self._pending or self.ended:
                return
            self._wake = wake
        await event.wait()

    def issue(self, stacklevel: int) -> None:
        """Issue the queued warnings as if from ``stacklevel`` frames above here."""
        with self._condition:
            pending, self._pending = self._pending, []
        for message, category in pending:
            warnings.warn(message, category, stacklevel=stacklevel + 1)
