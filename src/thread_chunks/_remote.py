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
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle

__all__ = ["Invocation", "pickle_arguments", "run_batch", "set_up_worker"]

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
    also leave the worker as they are computed: each record appended to it
    is a pickle of ``(position of its first call, results, failures)``,
    written once :data:`SIDE_EVERY` seconds have passed since the last one or
    a call took :data:`SIDE_SLOW` seconds or more. If the worker dies, the
    driver keeps what the file holds and runs again only the other calls. A
    record that cannot be pickled is left out: its calls would run again.
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
    file = None
    if side is not None:
        try:
            file = open(side, "ab")  # noqa: SIM115
        except OSError:  # results only sent back then
            file = None
    written = failures_written = 0  # the calls and failures in the file
    last_write = started
    for position, args in enumerate(calls):
        try:
            if keywords and isinstance(args, Mapping):
                results.append(func(**args))
            else:
                results.append(func(*args))
        except BaseException as exc:
            results.append(None)
            text = traceback.format_exc() if other_process else ""
            failures.append((position, exc, text))
            if stop_at_failure or not isinstance(exc, Exception):
                break
        now = clock()
        if now - before > slowest:
            slowest = now - before
        if file is not None and (
            now - before >= SIDE_SLOW or now - last_write >= SIDE_EVERY
        ):
            if not _write_side(file, written, results, failures[failures_written:]):
                file.close()  # a record may be cut short: none after it
                file = None
            written, failures_written = len(results), len(failures)
            last_write = clock()
        if now >= deadline:
            break
        before = now
    if file is not None:
        file.close()
    if other_process:
        return _pickle(results, failures, slowest)
    return results, failures, slowest


SIDE_EVERY = 0.001
"""Seconds after which a batch with a side file appends its new results to
it: a worker's death runs again at most about this much of tiny calls."""

SIDE_SLOW = 0.0001
"""Seconds of a call after which its result goes to the side file at once."""


def _write_side(
    file: Any, start: int, results: list[Any], failures: list[Failure]
) -> bool:
    """Append the results from ``start`` on, and ``failures``, to ``file``.

    Returns whether the file can take more records.
    """
    try:
        data = _dumps((start, results[start:], failures))
    except Exception:  # sent back with the batch; run again if it dies
        return True
    try:
        file.write(data)
        file.flush()
    except OSError:
        return False
    return True


def read_side(path: str) -> tuple[dict[int, Any], list[Failure]]:
    """What a batch's side file holds: results by position, and failures.

    Reads up to the first record that is not whole (its worker died while
    writing it).
    """
    results: dict[int, Any] = {}
    failures: list[Failure] = []
    try:
        file = open(path, "rb")  # noqa: SIM115
    except OSError:
        return results, failures
    with file:
        while True:
            try:
                start, some, failed = pickle.load(file)
            except Exception:  # the end, or a record cut short
                break
            results.update(enumerate(some, start))
            failures.extend(failed)
    for position, _, _ in failures:
        results.pop(position, None)
    return results, failures


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
