"""What counts as the same parameters: type-strict, by value, NaN equal to NaN."""

from __future__ import annotations

import copy
import dataclasses
import enum
import math
import pickle
import struct
from collections import OrderedDict
from decimal import Decimal
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from thread_chunks._identity import same, same_parameters
from thread_chunks._pickling import dumps

NAN = float("nan")


@dataclasses.dataclass
class Point:
    x: float
    y: float


class Model:
    """A plain class without __eq__: compared by its state."""

    def __init__(self, size: int) -> None:
        self.size = size


class Colour(enum.Enum):
    RED = 1
    GREEN = 2


def nan_with_payload() -> float:
    (value,) = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000123))
    return float(value)


def increment() -> Any:
    return lambda x: x + 1


def adder(n: int) -> Any:
    def add(x: int) -> int:
        return x + n

    return add


def rebuilt(value: Any) -> Any:
    return pickle.loads(dumps(value))


MATCH = {
    "nan": (NAN, float("nan")),
    "nan payloads": (NAN, nan_with_payload()),
    "nan in list": ([1, NAN], [1, float("nan")]),
    "nan in set": ({NAN, 1.0}, {float("nan"), 1.0}),
    "nan in dict value": ({"a": NAN}, {"a": float("nan")}),
    "nan complex": (complex(NAN, 1), complex(float("nan"), 1)),
    "nan float32": (np.float32("nan"), np.float32("nan")),
    "nan array": (np.array([1.0, NAN]), np.array([1.0, float("nan")])),
    "NaT": (np.datetime64("NaT", "ns"), np.datetime64("NaT", "ns")),
    "Decimal NaN": (Decimal("NaN"), Decimal("NaN")),
    "nan DataFrame": (
        pd.DataFrame({"a": [1.0, NAN]}),
        pd.DataFrame({"a": [1.0, float("nan")]}),
    ),
    "set order": ({"cat", "dog", "emu"}, {"emu", "dog", "cat"}),
    "dataclass": (Point(1.0, 2.0), Point(1.0, 2.0)),
    "plain object": (Model(3), Model(3)),
    "enum": (Colour.RED, Colour.RED),
    "tuple and list": ((1, 2), (1, 2)),
    "nested": ({"k": [(1, b"x"), {2, 3}]}, {"k": [(1, b"x"), {3, 2}]}),
    "Fraction": (Fraction(1, 3), Fraction(2, 6)),
    "int array": (np.arange(5), np.arange(5)),
    "lambda": (increment(), increment()),  # one definition, made twice
    "closure": (adder(2), adder(2)),
}

DIFFER = {
    "sign of zero": (0.0, -0.0),
    "int and float": (1, 1.0),
    "int and bool": (1, True),
    "set of int and of bool": ({1}, {True}),
    "dict keys int and bool": ({1: "a"}, {True: "a"}),
    "array sign of zero": (np.array([0.0]), np.array([-0.0])),
    "array dtypes": (np.array([1], dtype=np.int64), np.array([1], dtype=np.int32)),
    "int and float DataFrame": (pd.DataFrame({"a": [1]}), pd.DataFrame({"a": [1.0]})),
    "OrderedDict order": (OrderedDict(a=1, b=2), OrderedDict(b=2, a=1)),
    "dict order": ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    "Decimal exponent": (Decimal("1.0"), Decimal("1.00")),
    "complex sign of zero": (complex(0.0, 1), complex(-0.0, 1)),
    "dataclass value": (Point(1.0, 2.0), Point(1.0, 3.0)),
    "plain object state": (Model(3), Model(4)),
    "enum member": (Colour.RED, Colour.GREEN),
    "tuple and list": ((1, 2), [1, 2]),
    "lambda body": (lambda x: x + 1, lambda x: x + 2),
    "closure value": (adder(2), adder(3)),
    "nan and number": (NAN, 1.0),
    "set sizes": ({1, 2}, {1}),
}


@pytest.mark.parametrize(("a", "b"), MATCH.values(), ids=MATCH.keys())
def test_the_same_inputs_match(a: Any, b: Any) -> None:
    assert same(a, b)
    assert same(a, copy.deepcopy(b))
    assert same(rebuilt(a), b)  # as read back from a checkpoint
    assert same_parameters([[a, 1]], [(b, 1)])


@pytest.mark.parametrize(("a", "b"), DIFFER.values(), ids=DIFFER.keys())
def test_other_inputs_never_match(a: Any, b: Any) -> None:
    assert not same(a, b)
    assert not same(b, a)
    assert not same(rebuilt(a), b)
    assert not same_parameters([[a]], [[b]])


def test_rows_sharing_one_large_array_compare_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from thread_chunks import _identity as _equality

    data = np.zeros(100_000)
    old = rebuilt([[data, i] for i in range(500)])
    assert old[0][0] is old[1][0]  # pickle keeps the sharing
    new = [[data, i] for i in range(500)]
    compared: list[int] = []
    compare = _equality._Comparer._same_array

    def counted(self: Any, numpy: Any, a: Any, b: Any) -> bool:
        compared.append(1)
        return compare(self, numpy, a, b)

    monkeypatch.setattr(_equality._Comparer, "_same_array", counted)
    assert same_parameters(old, new)
    assert len(compared) == 1
    new[7] = [data.copy(), 7]  # equal, but another object: compared too
    assert same_parameters(old, new)
    assert len(compared) == 3


def canonical(value: Any) -> Any:
    """A normal form in which equal means the same type and the same value."""
    kind = type(value).__name__
    if isinstance(value, float):
        return (kind, "nan" if math.isnan(value) else struct.pack("<d", value))
    if isinstance(value, list | tuple):
        return (kind, tuple(canonical(v) for v in value))
    if isinstance(value, frozenset | set):
        return (kind, tuple(sorted((canonical(v) for v in value), key=repr)))
    if isinstance(value, dict):
        return (kind, tuple((canonical(k), canonical(v)) for k, v in value.items()))
    return (kind, value)


scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.sampled_from([0.0, -0.0, 1.0, NAN, math.inf])
    | st.text(max_size=2)
    | st.binary(max_size=2)
)
hashables = st.recursive(
    scalars, lambda inner: st.frozensets(inner, max_size=3), max_leaves=4
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(hashables, inner, max_size=3)
        | st.frozensets(hashables, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(values, values)
def test_same_is_equality_of_type_and_value(a: Any, b: Any) -> None:
    assert same(a, b) == (canonical(a) == canonical(b))


@settings(max_examples=300, deadline=None)
@given(values)
def test_a_value_matches_its_copies(value: Any) -> None:
    assert same(value, value)
    assert same(value, copy.deepcopy(value))
    assert same(value, rebuilt(value))
