"""What identifies a run: its function, and parameters compared strictly.

A checkpoint belongs to one function over one parameter list.

**The function.** The same module and name, and for a ``functools.partial``
or a bound method the same bound arguments or instance, compared by value like
parameters (never by a ``repr`` that holds an address). The code's
fingerprint is recorded too: a resumed run whose code changed keeps its
results (the function's name and the parameters decide) but says so.

**The parameters.** A checkpoint is reused only when its parameters are the
same as the new ones. A false "same" would hand back results computed for
other inputs, so ``==`` is not enough (``0.0 == -0.0``, ``1 == True``,
``{1} == {True}``, ``Decimal('1.0') == Decimal('1.00')``); a false
"different" recomputes everything, so ``==`` is too strict elsewhere
(``nan != nan``, objects without ``__eq__``). :func:`same` compares
type-strictly all the way down, by value:

- numbers by type and bits: the sign of zero counts, and every NaN is the
  same as every other NaN; ``Decimal`` by sign, digits and exponent;
- lists, tuples and dicts item by item, in order (a dict keeps its order, and
  a function may depend on it); sets element by element, in any order;
- numpy arrays and scalars by dtype, shape and bits (NaN the same as NaN);
  pandas objects by their own exact ``equals``, dtypes included;
- functions by module, name, code, defaults and closure; classes, modules and
  enum members by identity;
- any other object by type and pickled state (``__reduce_ex__``), so that
  instances of a script's classes match the same values in another process.

Pairs already compared are remembered, so an object shared by many rows (one
large array in every argument list) is compared once.
"""

from __future__ import annotations

import enum
import pickle
import struct
import sys
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from ._pickling import dumps

__all__ = ["FunctionIdentity", "identify", "same", "same_parameters"]

_ATOMIC = (int, str, bytes, bool, type(None), type(Ellipsis), range, slice)
_BY_IDENTITY = (type, types.ModuleType, enum.Enum, types.BuiltinFunctionType)


def same_parameters(
    old: Sequence[Sequence[Any] | Mapping[str, Any]],
    new: Sequence[Sequence[Any] | Mapping[str, Any]],
) -> bool:
    """Return whether two parameter lists describe the same calls, in order.

    The argument list of one call may be a list in one and a tuple in the
    other: both mean ``func(*args)``. The arguments are compared by :func:`same`.
    A row that is a mapping means ``func(**kwargs)``: it matches a mapping with
    the same keywords, in any order, whose values are the same.
    """
    if len(old) != len(new):
        return False
    comparer = _Comparer()
    for old_args, new_args in zip(old, new, strict=True):
        if isinstance(old_args, Mapping) and isinstance(new_args, Mapping):
            if old_args.keys() != new_args.keys():
                return False
            if not all(comparer.same(old_args[k], new_args[k]) for k in old_args):
                return False
            continue
        if isinstance(old_args, Mapping) or isinstance(new_args, Mapping):
            return False  # keyword arguments against an argument list
        if len(old_args) != len(new_args):
            return False
        if not all(map(comparer.same, old_args, new_args)):
            return False
    return True


def same(a: Any, b: Any) -> bool:
    """Return whether ``a`` and ``b`` are the same value, strictly (see above)."""
    return _Comparer().same(a, b)


class _Comparer:
    """One comparison, remembering the pairs of objects already compared."""

    def __init__(self) -> None:
        self.memo: dict[tuple[int, int], bool] = {}
        self.kept: list[Any] = []  # keeps compared objects alive: ids stay unique

    def same(self, a: Any, b: Any) -> bool:
        if a is b:
            return True
        kind = type(a)
        if kind is not type(b):
            return False
        if kind in _ATOMIC:
            return bool(a == b)
        if kind is float:
            return _same_float(a, b)
        if kind is complex:
            return _same_float(a.real, b.real) and _same_float(a.imag, b.imag)
        key = (id(a), id(b))
        if key in self.memo:
            return self.memo[key]
        self.memo[key] = True  # a cycle that leads back here: decided above
        self.kept.append((a, b))
        result = self._compare(kind, a, b)
        self.memo[key] = result
        return result

    def _compare(self, kind: type, a: Any, b: Any) -> bool:
        if issubclass(kind, _BY_IDENTITY):
            return False  # not the same object
        decimal = sys.modules.get("decimal")  # no Decimal unless it is imported
        if decimal is not None and issubclass(kind, decimal.Decimal):
            return bool(a.as_tuple() == b.as_tuple())
        if issubclass(kind, list | tuple):
            return len(a) == len(b) and all(map(self.same, a, b))
        if issubclass(kind, dict):
            return len(a) == len(b) and all(
                self.same(ka, kb) and self.same(va, vb)
                for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True)
            )
        if issubclass(kind, set | frozenset):
            return self._same_set(a, b)
        if issubclass(kind, types.FunctionType):
            return self._same_function(a, b)
        numpy = sys.modules.get("numpy")
        if numpy is not None and isinstance(a, numpy.ndarray | numpy.generic):
            return self._same_array(numpy, a, b)
        pandas = sys.modules.get("pandas")
        if pandas is not None and isinstance(a, pandas.Series | pandas.DataFrame):
            return self._same_pandas(a, b)
        if pandas is not None and isinstance(a, pandas.Index):
            return a.dtype == b.dtype and bool(a.equals(b))
        return self._same_state(a, b)

    def _same_set(self, a: Any, b: Any) -> bool:
        if len(a) != len(b):
            return False
        # Pair each element with the equal one in the other set, then compare
        # the pair strictly ({1} and {True} hash alike but differ). Elements
        # that find no partner (NaN is not equal to itself) are paired by hand.
        partners = {element: element for element in b}
        lone_a, matched = [], set()
        for element in a:
            partner = partners.get(element, partners)
            if partner is partners:
                lone_a.append(element)
            elif not self.same(element, partner):
                return False
            else:
                matched.add(id(partner))
        lone_b = [element for element in b if id(element) not in matched]
        while lone_a:
            element = lone_a.pop()
            for k, other in enumerate(lone_b):
                if self.same(element, other):
                    del lone_b[k]
                    break
            else:
                return False
        return not lone_b

    def _same_function(self, a: types.FunctionType, b: types.FunctionType) -> bool:
        return (
            (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)
            and a.__code__ == b.__code__
            and self.same(a.__defaults__, b.__defaults__)
            and self.same(a.__kwdefaults__, b.__kwdefaults__)
            and self.same(_cells(a), _cells(b))
        )

    def _same_array(self, numpy: Any, a: Any, b: Any) -> bool:
        a, b = numpy.asarray(a), numpy.asarray(b)
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        if a.dtype.hasobject:
            return all(map(self.same, a.ravel().tolist(), b.ravel().tolist()))
        if a.tobytes() == b.tobytes():
            return True
        if a.dtype.kind not in "fc":
            return False
        # Bits differ: equal only where both are NaN, whatever their payload.
        both_nan = numpy.isnan(a) & numpy.isnan(b)
        a, b = numpy.where(both_nan, 0, a), numpy.where(both_nan, 0, b)
        return bool(a.tobytes() == b.tobytes())

    def _same_pandas(self, a: Any, b: Any) -> bool:
        dtypes_a = a.dtypes if hasattr(a, "columns") else [a.dtype]
        dtypes_b = b.dtypes if hasattr(b, "columns") else [b.dtype]
        return (
            list(dtypes_a) == list(dtypes_b)
            and self._compare(type(a.index), a.index, b.index)
            and bool(a.equals(b))
        )

    def _same_state(self, a: Any, b: Any) -> bool:
        """Compare two objects of one class by what pickling would store."""
        try:
            reduced_a, reduced_b = a.__reduce_ex__(5), b.__reduce_ex__(5)
        except Exception:
            return bool(a == b)
        if isinstance(reduced_a, str) or isinstance(reduced_b, str):
            return bool(reduced_a == reduced_b)  # a global, referenced by name
        return self.same(_listed(reduced_a), _listed(reduced_b))


def _same_float(a: float, b: float) -> bool:
    if a != a:  # NaN: the same as any other NaN
        return b != b
    return struct.pack("<d", a) == struct.pack("<d", b)


def _cells(func: types.FunctionType) -> tuple[Any, ...]:
    return tuple(cell.cell_contents for cell in func.__closure__ or ())


def _listed(parts: tuple[Any, ...]) -> list[Any]:
    """The parts of a reduce tuple, with its item iterators made into lists."""
    return [list(part) if isinstance(part, Iterator) else part for part in parts]


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
    import hashlib  # not for a builtin function

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
