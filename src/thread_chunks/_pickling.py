"""The one serialiser of everything a checkpoint file holds.

The standard pickle stores functions and classes by reference (module and
name), so a rerun of the same script gets its own classes back: an enum
member read from the checkpoint *is* the script's member. What the standard
pickle cannot reference (a lambda, a function or class defined inside a
function) is stored by value with cloudpickle, object by object, instead of
failing the whole write.
"""

from __future__ import annotations

import importlib
import io
import pickle
import sys
import types
from typing import IO, Any

import cloudpickle

__all__ = ["PROTOCOL", "Pickler", "dump", "dumps"]

PROTOCOL = 5


class _Pickler(pickle.Pickler):
    """A standard pickler that falls back to cloudpickle per object."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, types.FunctionType | type) and not _importable(obj):
            return pickle.loads, (cloudpickle.dumps(obj, protocol=PROTOCOL),)
        return NotImplemented


def Pickler(file: IO[bytes] | Any) -> pickle.Pickler:
    """Our pickler, writing to ``file``: reuse it (``clear_memo`` in between)."""
    return _Pickler(file, protocol=PROTOCOL)


def dump(obj: Any, file: IO[bytes] | Any) -> None:
    """Pickle ``obj`` to ``file`` (anything with a ``write`` method)."""
    _Pickler(file, protocol=PROTOCOL).dump(obj)


def dumps(obj: Any) -> bytes:
    """Pickle ``obj`` to bytes."""
    buffer = io.BytesIO()
    dump(obj, buffer)
    return buffer.getvalue()


def _importable(obj: types.FunctionType | type) -> bool:
    """Whether ``module.qualname`` of ``obj`` finds ``obj`` itself."""
    module_name = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    if not isinstance(module_name, str) or "<" in qualname:
        return False  # "<lambda>", "<locals>"
    module = sys.modules.get(module_name)
    if module is None:
        try:
            module = importlib.import_module(module_name)
        except Exception:
            return False
    found: Any = module
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return found is obj
