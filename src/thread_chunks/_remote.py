"""What runs in the worker of an executor: a batch of calls, one after another.

This module is sent to the workers by value when the executor uses cloudpickle
(loky, Dask), so that they need not import thread_chunks (over 0.1 s for a
fresh process): it uses the standard library only, and cloudpickle where the
standard pickle fails. Executors that use the standard pickle import it.
"""

from __future__ import annotations

import gc
import pickle
import sys
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cloudpickle

__all__ = ["pickle_arguments", "run_batch"]

Failure = tuple[int, BaseException, str]
"""``(position in the batch, exception, traceback text)``."""

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def run_batch(
    func: Callable[..., Any],
    arguments: Sequence[Any] | bytes,
    stop_at_failure: bool,
    other_process: bool | None = None,
    keywords: bool = False,
) -> tuple[list[Any], list[Failure]] | bytes:
    """In the worker: call ``func(*args)`` for each ``args``, in order.

    With ``keywords``, an ``args`` that is a mapping is keyword arguments:
    ``func(**args)``.

    A failure stops the batch when ``stop_at_failure`` is true (the run stops
    at it) or when it is not an :class:`Exception`; otherwise the next call
    goes on. ``arguments`` are pickled by :func:`pickle_arguments` for a batch
    of many calls, or sent as they are (one large argument is then not copied
    once more). When the worker is another process (``other_process``, or
    pickled arguments), the batch goes back pickled by us, so that a result
    that cannot be sent back fails its own call only.
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
    return _pickle(results, failures) if other_process else (results, failures)


def _pickle(results: list[Any], failures: list[Failure]) -> bytes:
    failures = [(p, _sendable(exc), text) for p, exc, text in failures]
    try:
        return _dumps((results, failures))
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
        return _dumps((results, failures))
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
