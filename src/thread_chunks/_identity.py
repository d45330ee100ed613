"""What identifies the function of a run, and a fingerprint of its code.

A checkpoint belongs to one function: the same module and name, and for a
``functools.partial`` or a bound method the same bound arguments or instance,
compared by value like parameters (never by a ``repr`` that holds an
address). The code's fingerprint is recorded too: a resumed run whose code
changed keeps its results (the function's name and the parameters decide)
but says so.
"""

from __future__ import annotations

import hashlib
import pickle
import types
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ._equality import same
from ._pickling import dumps

__all__ = ["FunctionIdentity", "identify"]


@dataclass(frozen=True)
class FunctionIdentity:
    """The function of a run, as a checkpoint records it.

    Attributes
    ----------
    module : str or None
        The module that defines the function.
    name : str
        Its qualified name, as shown in ``Checkpoint.func_name``.
    bound : tuple
        What is bound to it: a partial's arguments, a method's instance.
    code : str or None
        A fingerprint of its code (``None`` for functions written in C).
    bound_error : str or None
        Why ``bound`` could not be loaded from a checkpoint (a proxy to a
        process that has gone, say): such a function matches no other.
    """

    module: str | None
    name: str
    bound: tuple[Any, ...] = ()
    code: str | None = None
    bound_error: str | None = None

    def same_function(self, other: FunctionIdentity) -> bool:
        """Whether ``other`` is the same function with the same bound values."""
        return (
            (self.module, self.name) == (other.module, other.name)
            and self.bound_error is None
            and same(self.bound, other.bound)
        )

    def to_state(self) -> tuple[Any, ...]:
        """Plain data to pickle: what is bound is a pickle of its own.

        So a checkpoint loads even where the bound values do not.
        """
        return (self.module, self.name, self.code, dumps(self.bound))

    @classmethod
    def from_state(cls, state: tuple[Any, ...]) -> FunctionIdentity:
        """Rebuild an identity from :meth:`to_state`, whether or not it loads."""
        module, name, code, bound_pickle = state
        try:
            return cls(module, name, pickle.loads(bound_pickle), code)
        except Exception as exc:
            return cls(module, name, (), code, f"{type(exc).__name__}: {exc}")


def identify(func: Callable[..., Any]) -> FunctionIdentity:
    """Return the identity of ``func``: module, name, what is bound, code."""
    if isinstance(func, partial):
        inner = identify(func.func)
        bound = ("partial", func.args, func.keywords, *inner.bound)
        return FunctionIdentity(inner.module, inner.name, bound, inner.code)
    if isinstance(func, types.MethodType):
        inner = identify(func.__func__)
        bound = ("method", func.__self__, *inner.bound)
        return FunctionIdentity(inner.module, inner.name, bound, inner.code)
    name = getattr(func, "__qualname__", None)
    if isinstance(func, types.FunctionType | types.BuiltinFunctionType | type):
        code = getattr(func, "__code__", None)
        return FunctionIdentity(func.__module__, str(name), (), _fingerprint(code))
    # A callable object: its class's __call__, named as the object says.
    call = getattr(type(func), "__call__", None)  # noqa: B004
    return FunctionIdentity(
        type(func).__module__,
        name if isinstance(name, str) else type(func).__qualname__,
        (),
        _fingerprint(getattr(call, "__code__", None)),
    )


def _fingerprint(code: types.CodeType | None) -> str | None:
    """A digest of what ``code`` does, not where it is: line numbers left out."""
    if code is None:
        return None
    digest = hashlib.sha256()
    _feed(digest, code)
    return digest.hexdigest()[:16]


def _feed(digest: Any, code: types.CodeType) -> None:
    digest.update(code.co_code)
    digest.update(repr((code.co_names, code.co_varnames, code.co_freevars)).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _feed(digest, const)
        elif isinstance(const, frozenset):  # set order follows the hash seed
            digest.update(repr(sorted(map(repr, const))).encode())
        else:
            digest.update(repr(const).encode())
