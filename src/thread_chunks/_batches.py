"""Calls sent to an executor in batches, sized from how long calls take.

A submission to a process pool or a cluster costs far more than a tiny call
(a fraction of a millisecond on a local pool, milliseconds on Dask). So each
submitted task runs a batch of calls one after another in the remote worker
and sends their results back together. The first batch holds one call; then
:class:`BatchSizes` aims each batch at about :data:`TARGET` seconds of calls,
learning from the time the last batches took, like joblib's automatic
batching. What runs in the worker is in ``_remote``.
"""

from __future__ import annotations

import math
import pickle
from typing import Any, NamedTuple

__all__ = [
    "TARGET",
    "Batch",
    "BatchSizes",
    "RemoteTraceback",
    "unpack",
]

TARGET = 0.1
"""Seconds of calls a batch aims at. Between 0.05 and 0.2 s the size stays as
it is: long enough that a submission's cost is a few percent at most on a
cluster, short enough that the progress bar moves several times a second and
a cancelled run waits little for the batches already running."""

_LOW, _HIGH = TARGET / 2, TARGET * 2
_GROWTH = 64  # a batch is at most this many times the size of the one measured
_SHORTEST = 0.005  # seconds: the even shares of the last calls are no shorter


class Batch(NamedTuple):
    """What a batch sent back: one result per call it ran, and its failures."""

    results: list[Any]
    """The results in order; ``None`` where the call failed."""
    failures: list[tuple[int, BaseException, str]]
    """``(position in the batch, exception, traceback text)`` for each failure."""


class RemoteTraceback(Exception):
    """The traceback of a call that failed in a worker, as its cause shows it."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def unpack(sent: Any) -> Batch:
    """The :class:`Batch` that ``run_batch`` sent back, with remote tracebacks."""
    batch = Batch(*(pickle.loads(sent) if isinstance(sent, bytes) else sent))
    for _, exc, text in batch.failures:
        if text and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(text)
    return batch


class BatchSizes:
    """How many calls the next batch takes, learnt from the batches so far.

    Starts at one call. A batch shorter than ``TARGET / 2`` makes the next
    ones larger (at most ``_GROWTH`` times), one longer than ``TARGET * 2``
    makes them smaller. No batch takes more than an even share of the calls
    left (unless that would take under ``_SHORTEST`` seconds), so that the
    last calls spread over all the workers and they finish together.
    """

    def __init__(self, calls: int, workers: int) -> None:
        self.size = 1
        self.shortest = 1
        self.left = calls
        self.workers = workers

    def next_size(self) -> int:
        """The size of the next batch; counts its calls as taken."""
        share = max(math.ceil(self.left / self.workers), self.shortest)
        size = max(min(self.size, share), 1)
        self.left -= size
        return size

    def learn(self, calls: int, seconds: float) -> None:
        """Adjust to a batch of ``calls`` calls that took ``seconds``."""
        if calls == 0:
            return
        ideal = TARGET * calls / seconds if seconds > 0 else math.inf
        self.shortest = int(min(ideal * _SHORTEST / TARGET, 2**31))
        if _LOW <= seconds <= _HIGH:
            return
        if seconds < _LOW:
            self.size = max(self.size, int(min(ideal, calls * _GROWTH)))
        else:
            self.size = min(self.size, max(1, int(ideal)))
