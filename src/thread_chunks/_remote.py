"""What runs in the worker of an executor: a batch of calls, one after another.

This module is sent to the workers by value when the executor uses cloudpickle
(loky, Dask), so that they need not import thread_chunks (over 0.1 s for a
fresh process): it uses the standard library only, and cloudpickle where the
standard pickle fails. Executors that use the standard pickle import it.
"""

from __future__ import annotations

import ctypes
import gc
import os
import pickle
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any

import cloudpickle

__all__ = ["Invocation", "SideFile", "pickle_arguments", "run_batch", "set_up_worker"]

Failure = tuple[int, BaseException, str]
"""``(position in the batch, exception, traceback text)``."""

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_batch(
    func: Callable[..., Any],
    arguments: Sequence[Any] | bytes,
    stop_at_failure: bool,
    other_process: bool | None = None,
    keywords: bool = False,
    budget: float | None = None,
    side: str | None = None,
) -> tuple[list[Any], list[Failure], float] | bytes:
    """In the worker: call ``func(*args)`` for each ``args``, in order.

    With ``keywords``, an ``args`` that is a mapping is keyword arguments:
    ``func(**args)``.

    A failure stops the batch when ``stop_at_failure`` is true (the run stops
    at it) or when it is not an :class:`Exception`; otherwise the next call
    goes on. Once ``budget`` seconds have passed (checked after each call),
    the batch returns what it has: the calls it did not start are those past
    the end of its results. ``arguments`` are pickled by
    :func:`pickle_arguments` for a batch of many calls, or sent as they are
    (one large argument is then not copied once more). When the worker is
    another process (``other_process``, or pickled arguments), the batch goes
    back pickled by us, so that a result that cannot be sent back fails its
    own call only. Sent back: the results, the failures, and the seconds of
    the slowest call.

    With ``side``, the path of a file (a local pool's worker), the results
    also leave the worker as they are computed (:class:`_SideWriter`): the
    driver keeps them while a slow call runs, and if the worker dies it runs
    again only the calls that the file does not hold.
    """
    pickled = isinstance(arguments, bytes)
    if other_process is None:
        other_process = pickled
    calls: Sequence[Any] = (
        _paused_gc(pickle.loads, arguments)
        if isinstance(arguments, bytes)
        else arguments
    )
    results: list[Any] = []
    failures: list[Failure] = []
    clock = time.perf_counter
    started = before = clock()
    deadline = started + (budget if budget is not None else float("inf"))
    slowest = 0.0
    writer = None if side is None else _SideWriter.open(side, results, failures)
    try:
        for position, args in enumerate(calls):
            try:
                if keywords and isinstance(args, Mapping):
                    results.append(func(**args))
                else:
                    results.append(func(*args))
            except BaseException as exc:
                text = traceback.format_exc() if other_process else ""
                failures.append((position, exc, text))  # before its result
                results.append(None)
                if stop_at_failure or not isinstance(exc, Exception):
                    break
            now = clock()
            if now - before > slowest:
                slowest = now - before
            if writer is not None and (
                now - before >= SIDE_SLOW or now - writer.last_write >= SIDE_EVERY
            ):
                writer.write()
            if now >= deadline:
                break
            before = now
    finally:
        if writer is not None:
            writer.close()
    if other_process:
        return _pickle(results, failures, slowest)
    return results, failures, slowest


SIDE_EVERY = 0.001
"""Seconds after which a batch with a side file appends its new results to
it: a worker's death runs again at most about this much of tiny calls."""

SIDE_SLOW = 0.0001
"""Seconds of a call after which its result goes to the side file at once."""


SIDE_STUCK = 0.05
"""Seconds after which the results not yet in the side file go there while a
call runs: a slow call does not hold those finished before it."""


class _SideWriter:
    """Appends a batch's results to its side file as its calls return.

    The batch writes after a call, once :data:`SIDE_EVERY` seconds have
    passed since the last record or when the call was slow; a thread of its
    own writes what is left every :data:`SIDE_STUCK` seconds while a call
    runs. Each record is a pickle of ``(position of its first call, results,
    failures)``. A record that cannot be pickled or written ends the file
    (none after it: a result must not go without the failure listed before
    it); what it held comes back with the batch, or runs again if the worker
    dies.
    """

    def __init__(self, file: Any, results: list[Any], failures: list[Failure]):
        self._file: Any = file
        self._results = results
        self._failures = failures
        self._written = self._failures_written = 0
        self.last_write = time.perf_counter()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(
            target=self._watch, name="thread-chunks side file", daemon=True
        )
        self._thread.start()

    @classmethod
    def open(
        cls, path: str, results: list[Any], failures: list[Failure]
    ) -> _SideWriter | None:
        """A writer of the results and failures appended to these lists."""
        try:
            file = open(path, "ab")  # noqa: SIM115
        except OSError:  # results only sent back then
            return None
        return cls(file, results, failures)

    def write(self) -> None:
        """Append the results and failures not yet written."""
        with self._lock:
            count = len(self._results)  # a failure is listed before its result
            failures = self._failures[self._failures_written :]
            if self._file is None or (count == self._written and not failures):
                return
            try:
                data = _dumps((self._written, self._results[self._written : count],
                               failures))  # fmt: skip
                self._file.write(data)
                self._file.flush()
            except Exception:  # sent back with the batch; run again if it dies
                with suppress(Exception):  # no record after a missing one
                    self._file.close()
                self._file = None
            self._written = count
            self._failures_written += len(failures)
            self.last_write = time.perf_counter()

    def _watch(self) -> None:
        wait = SIDE_STUCK
        while not self._closed.wait(wait):
            idle = time.perf_counter() - self.last_write
            if idle >= SIDE_STUCK:
                self.write()
                idle = 0.0
            wait = SIDE_STUCK - idle

    def close(self) -> None:
        """Stop the thread and close the file."""
        self._closed.set()
        self._thread.join()
        with self._lock:
            if self._file is not None:
                with suppress(OSError):  # what it holds comes back with the batch
                    self._file.close()
                self._file = None


class SideFile:
    """A batch's side file, read by the driver while its worker appends to it.

    Each read takes the records appended since the last one, up to the
    first that is not whole (its worker is writing it, or died writing it).
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.kept: set[int] = set()
        """The positions in the batch whose results the driver has kept."""
        self.failures: list[Failure] = []
        """Every failure read so far."""
        self._failed: set[int] = set()
        self._offset = 0

    def read(self) -> dict[int, Any]:
        """The results appended since the last read, by position in the batch.

        Failures go to :attr:`failures`; a failed call has no result here.
        """
        results: dict[int, Any] = {}
        try:
            file = open(self.path, "rb")  # noqa: SIM115
        except OSError:
            return results
        with file:
            file.seek(self._offset)
            while True:
                try:
                    start, some, failed = pickle.load(file)
                except Exception:  # the end, or a record not whole
                    break
                self._offset = file.tell()
                results.update(enumerate(some, start))
                self.failures.extend(failed)
                self._failed.update(position for position, _, _ in failed)
        for position in self._failed.intersection(results):
            del results[position]
        return results


class Invocation:
    """A call that travels pickled: unpickling it makes the call.

    ``cloudpickle.dumps(Invocation(f, args))`` loaded with the standard
    :func:`pickle.loads` returns ``f(*args)``: a pool that pickles with the
    standard pickle (pebble) then runs ``pickle.loads`` on bytes, and its
    workers need import neither thread_chunks nor ``f``'s module (``f``
    travels by value if cloudpickle says so).
    """

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.func = func
        self.args = args

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        return self.func, self.args


PR_SET_PDEATHSIG = 1
"""``prctl`` option of Linux: the signal a process gets when its parent dies."""


def set_up_worker(driver: int) -> None:
    """In a new worker of our pool: die with the driver, ignore Ctrl-C.

    On Linux the worker asks for SIGKILL when the thread that started it
    (a thread of the driver ``driver`` that lives as long as the pool) ends,
    and exits at once if the driver has already gone. Ctrl-C reaches the
    whole process group: the driver handles it, the workers must not.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc to speak of: no guard
            return
        if os.getppid() != driver:  # the driver died before the prctl
            os._exit(1)


def _pickle(results: list[Any], failures: list[Failure], slowest: float) -> bytes:
    failures = [(p, _sendable(exc), text) for p, exc, text in failures]
    try:
        return _dumps((results, failures, slowest))
    except Exception as whole_batch:
        first_error = whole_batch
    # Slow path: find the results that cannot be pickled; each fails its call.
    results = list(results)
    for position, result in enumerate(results):
        try:
            _dumps(result)
        except Exception as exc:
            results[position] = None
            error = TypeError(
                f"the result of this call cannot be pickled to be sent back from "
                f"the worker ({type(exc).__name__}: {exc}); return something "
                f"that pickle or cloudpickle can serialise"
            )
            failures.append((position, error, ""))
    failures.sort(key=lambda failure: failure[0])
    try:
        return _dumps((results, failures, slowest))
    except Exception as whole:
        # Not one result: the batch as a whole; say what failed first.
        raise whole from first_error


def _sendable(exc: BaseException) -> BaseException:
    """``exc``, or a stand-in if it would not survive the trip back."""
    try:
        pickle.loads(_dumps(exc))
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


def pickle_arguments(arguments: list[Any]) -> bytes:
    """Pickle a batch's arguments in the driver, for :func:`run_batch`."""
    return _dumps(arguments)


def _paused_gc(function: Callable[[Any], Any], argument: Any) -> Any:
    """``function(argument)``, with the garbage collector paused meanwhile.

    Unpickling thousands of argument lists would set off collections that
    walk every object of the worker process, which a forked worker shares
    with the process that forked it (tens of milliseconds, and pages copied).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return function(argument)
    finally:
        if enabled:
            gc.enable()


def _dumps(obj: Any) -> bytes:
    """Pickle ``obj``: by reference where the standard pickle can, else by value."""
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:
        data: bytes = cloudpickle.dumps(obj, protocol=5)
        return data
