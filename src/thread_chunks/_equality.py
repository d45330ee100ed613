"""Value equality that also works for numpy arrays, NaN and containers of them.

A checkpoint is reused only when its parameters equal the new ones; ``==`` alone
is not enough because ``array == array`` is an array and ``nan != nan``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["same_parameters", "same_value"]


def same_parameters(old: Sequence[Sequence[Any]], new: Sequence[Sequence[Any]]) -> bool:
    """Return whether two parameter lists describe the same calls in order.

    The argument list of one call may be a list in one and a tuple in the other:
    both mean ``func(*args)``. The arguments themselves are compared strictly.
    """
    if len(old) != len(new):
        return False
    for old_args, new_args in zip(old, new, strict=True):
        if len(old_args) != len(new_args):
            return False
        if not all(map(same_value, old_args, new_args)):
            return False
    return True


def same_value(a: Any, b: Any) -> bool:
    """Return whether ``a`` and ``b`` are equal values, looking inside containers."""
    if a is b:
        return True
    if type(a) is not type(b):
        # Strict on purpose: f(1) and f(1.0) may differ, and a false match would
        # return stale results where a false mismatch only recomputes.
        return False
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, np.ndarray):
        return _same_array(a, b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(map(same_value, a, b))
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    try:
        equal = a == b
        return equal if isinstance(equal, bool) else bool(np.array_equal(a, b))
    except (TypeError, ValueError):
        return False


def _same_array(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    try:
        return bool(np.array_equal(a, b, equal_nan=True))
    except TypeError:  # equal_nan needs a numeric dtype
        if a.dtype == object:
            return all(map(same_value, a.ravel().tolist(), b.ravel().tolist()))
        return bool(np.array_equal(a, b))
