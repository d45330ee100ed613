"""Signals: SIGTERM during ``chunk()``, and Ctrl-C kept away from pool workers."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["Terminated", "ignore_sigint", "sigterm_stops_the_run"]

logger = logging.getLogger("thread_chunks")


def ignore_sigint() -> None:
    """Make this process ignore SIGINT: the initializer of a worker process.

    A Ctrl-C in a terminal interrupts every process of the foreground group,
    worker processes included, and a worker interrupted in the middle of a
    call loses it. With this initializer the workers carry on, and the
    process running :func:`chunk` handles the Ctrl-C: running calls finish
    and are saved, then ``KeyboardInterrupt`` is raised once.
    ``executor="processes"`` uses it already; give it to a process pool of
    your own.

    Examples
    --------
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> from thread_chunks import chunk, ignore_sigint
    >>> with ProcessPoolExecutor(2, initializer=ignore_sigint) as pool:
    ...     chunk(abs, [[-1], [-2]], executor=pool, progress_bar=False)
    [1, 2]
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Terminated(SystemExit):
    """Raised in the main thread by the first SIGTERM during ``chunk()``."""

    def __init__(self) -> None:
        super().__init__(128 + signal.SIGTERM)


@contextmanager
def sigterm_stops_the_run() -> Iterator[None]:
    """Turn the first SIGTERM into :class:`Terminated`; end the process after.

    Batch schedulers (SLURM, PBS, Kubernetes) send SIGTERM some time before
    SIGKILL. The first one raises :class:`Terminated` in the main thread,
    which the caller handles like a first Ctrl-C (running calls finish and
    are saved); leaving, the previous handler comes back and the signal is
    raised again, so that the process ends as SIGTERM ends it. A second
    SIGTERM ends the process at once. Does nothing outside the main thread,
    or where SIGTERM is ignored or handled by someone else.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is not signal.SIG_DFL:
        yield
        return
    received = False

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:  # the second one: stop at once
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
        received = True
        raise Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    except Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)  # ends the process, as SIGTERM does
        raise
    finally:
        signal.signal(signal.SIGTERM, previous)
