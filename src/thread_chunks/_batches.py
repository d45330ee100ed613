"""Calls sent to an executor in batches, sized from how long calls take.

A submission to a process pool or a cluster costs far more than a tiny call
(a fraction of a millisecond on a local pool, milliseconds on Dask). So each
submitted task runs a batch of calls one after another in the remote worker
and sends their results back together. The first batch holds one call; then
:class:`BatchSizes` aims each batch at about :data:`TARGET` seconds of calls,
learning from the time the last batches took, like joblib's automatic
batching. :func:`run_batch` is what runs remotely, so the workers import
thread_chunks (as they import the module of the function they run).
"""

from __future__ import annotations

import math
import pickle
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ._pickling import dumps

__all__ = [
    "TARGET",
    "Batch",
    "BatchSizes",
    "RemoteTraceback",
    "queues_safely",
    "run_batch",
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
    """What a batch sends back: one result per call it ran, and its failures."""

    results: list[Any]
    """The results in order; ``None`` where the call failed."""
    failures: list[tuple[int, BaseException, str]]
    """``(position in the batch, exception, traceback text)`` for each failure."""


class RemoteTraceback(Exception):
    """The traceback of a call that failed in a worker, as its cause shows it."""

    def __str__(self) -> str:
        return f'\n"""\n{self.args[0]}"""'


def run_batch(
    func: Callable[..., Any],
    arguments: Sequence[Sequence[Any]],
    stop_at_failure: bool,
    pickled: bool,
) -> Batch | bytes:
    """In the worker: call ``func(*args)`` for each ``args``, in order.

    A failure stops the batch when ``stop_at_failure`` is true (the run stops
    at it) or when it is not an :class:`Exception`; otherwise the next call
    goes on. When ``pickled``, the batch comes back pickled by us, so that a
    result that cannot be sent back fails its own call only.
    """
    results: list[Any] = []
    failures: list[tuple[int, BaseException, str]] = []
    for position, args in enumerate(arguments):
        try:
            results.append(func(*args))
        except BaseException as exc:
            results.append(None)
            text = traceback.format_exc() if pickled else ""
            failures.append((position, exc, text))
            if stop_at_failure or not isinstance(exc, Exception):
                break
    batch = Batch(results, failures)
    return _pickle(batch) if pickled else batch


def unpack(sent: Batch | bytes) -> Batch:
    """The :class:`Batch` that :func:`run_batch` returned, with remote tracebacks."""
    batch = pickle.loads(sent) if isinstance(sent, bytes) else sent
    for _, exc, text in batch.failures:
        if text and exc.__cause__ is None:
            exc.__cause__ = RemoteTraceback(text)
    return batch


def _pickle(batch: Batch) -> bytes:
    failures = [(p, _sendable(exc), text) for p, exc, text in batch.failures]
    try:
        return dumps(batch._replace(failures=failures))
    except Exception:
        pass
    # Slow path: find the results that cannot be pickled; each fails its call.
    results = list(batch.results)
    for position, result in enumerate(results):
        try:
            dumps(result)
        except Exception as exc:
            results[position] = None
            error = TypeError(
                f"the result of this call cannot be pickled to be sent back from "
                f"the worker ({type(exc).__name__}: {exc}); return something "
                f"that pickle or cloudpickle can serialise"
            )
            failures.append((position, error, ""))
    failures.sort(key=lambda failure: failure[0])
    return dumps(Batch(results, failures))


def _sendable(exc: BaseException) -> BaseException:
    """``exc``, or a stand-in if it would not survive the trip back."""
    try:
        pickle.loads(dumps(exc))
    except Exception as error:
        stand_in = RuntimeError(
            f"{type(exc).__module__}.{type(exc).__qualname__}: {exc}"
        )
        stand_in.add_note(
            f"the call raised the exception above, which cannot be sent back "
            f"from the worker ({type(error).__name__}: {error}); make it "
            f"picklable to see it as it is"
        )
        return stand_in
    return exc


def queues_safely(executor: object, chunk_size: int) -> bool:
    """Whether a batch may wait in ``executor``'s queue behind a running one.

    Only if the executor has no more workers than ``chunk_size``: then a
    queued batch cannot start early on an idle worker, and no more than
    ``chunk_size`` calls ever run at once. The standard library's pools and
    loky's say how many workers they have; other executors run one batch per
    worker task at a time.
    """
    workers = getattr(executor, "_max_workers", None)
    return type(workers) is int and workers <= chunk_size


class BatchSizes:
    """How many calls the next batch takes, learnt from the batches so far.

    Starts at one call. A batch shorter than ``TARGET / 2`` makes the next
    ones larger (at most ``_GROWTH`` times), one longer than ``TARGET * 2``
    makes them smaller. No batch takes more than an even share of the calls
    left (unless that share would take under ``_SHORTEST`` seconds), so the
    last calls spread over all the workers.
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
