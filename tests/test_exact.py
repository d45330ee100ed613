"""Exact checkpoints: a resume returns what a fresh run would, for the same run."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import RunChunk
from thread_chunks import Checkpoint, CheckpointFailedWarning, chunk

SCRIPT_HEAD = """
import dataclasses, enum, sys
from functools import partial
from thread_chunks import chunk

calls = []
"""


def run_script(tmp_path: Path, body: str, seed: str = "0") -> list[str]:
    """Run a user script (as ``__main__``) in a child process; return its lines."""
    script = tmp_path / "script.py"
    script.write_text(SCRIPT_HEAD + textwrap.dedent(body))
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_enum_results_are_the_scripts_members_after_a_resume(tmp_path: Path) -> None:
    body = """
    class Status(enum.Enum):
        OK = 1
        FAILED = 2

    def check(x):
        calls.append(x)
        return Status.OK if x else Status.FAILED

    out = chunk(check, [[1], [0]], progress_bar=False, path="ck.pkl")
    print(out[0] is Status.OK, out[1] == Status.FAILED, sorted(calls))
    """
    assert run_script(tmp_path, body) == ["True True [0, 1]"]
    assert run_script(tmp_path, body) == ["True True []"]  # resumed, same members


def test_dataclass_results_and_parameters_resume(tmp_path: Path) -> None:
    body = """
    @dataclasses.dataclass
    class Point:
        x: float
        y: float

    def norm(p):
        calls.append(p)
        return Point(abs(p.x), abs(p.y))

    out = chunk(norm, [[Point(-1.0, 2.0)], [Point(3.0, -4.0)]],
                progress_bar=False, path="ck.pkl")
    print(type(out[0]) is Point, out[1] == Point(3.0, 4.0), len(calls))
    """
    assert run_script(tmp_path, body) == ["True True 2"]
    assert run_script(tmp_path, body) == ["True True 0"]


def test_a_partial_of_an_object_resumes_and_another_object_does_not(
    tmp_path: Path,
) -> None:
    body = """
    class Model:
        def __init__(self, size):
            self.size = size

    def predict(model, x):
        calls.append(x)
        return model.size * x

    size = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    out = chunk(partial(predict, Model({size})), [[1], [2]],
                progress_bar=False, path="ck.pkl")
    print(out, len(calls))
    """
    assert run_script(tmp_path, body.replace("{size}", "3")) == ["[3, 6] 2"]
    assert run_script(tmp_path, body.replace("{size}", "3")) == ["[3, 6] 0"]
    assert run_script(tmp_path, body.replace("{size}", "4")) == ["[4, 8] 2"]


def test_a_set_in_a_partial_resumes_under_another_hash_seed(tmp_path: Path) -> None:
    body = """
    def has(x, labels):
        calls.append(x)
        return x in labels

    labels = {"cat", "dog", "emu", "fox", "gnu", "hen"}
    out = chunk(partial(has, labels=labels), [["cat"], ["cow"]],
                progress_bar=False, path="ck.pkl")
    print(out, len(calls))
    """
    assert run_script(tmp_path, body, seed="1") == ["[True, False] 2"]
    assert run_script(tmp_path, body, seed="2") == ["[True, False] 0"]


def test_a_result_that_cannot_be_loaded_costs_only_itself(tmp_path: Path) -> None:
    # In a script of its own: importing dask.distributed (as other tests do)
    # teaches pickle to rebuild such exceptions.
    body = """
    import warnings
    from thread_chunks import Checkpoint

    class FitError(Exception):  # pickles fine, cannot be unpickled
        def __init__(self, x, reason):
            super().__init__(f"{x}: {reason}")

    def fit(x):
        calls.append(x)
        return FitError(x, "did not converge") if x == 2 else x * 10

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = chunk(fit, [[x] for x in range(5)], progress_bar=False, path="ck.pkl")
    checkpoint = Checkpoint.load("ck.pkl")
    print(type(out[2]).__name__, out[:2], sorted(calls))
    print(checkpoint.completed, list(checkpoint.unreadable))
    print([str(w.message) for w in caught])
    """
    first = run_script(tmp_path, body)
    assert first == [
        "FitError [0, 10] [0, 1, 2, 3, 4]",
        "[True, True, False, True, True] [2]",
        "[]",
    ]
    again = run_script(tmp_path, body)
    assert again[0] == "FitError [0, 10] [2]"  # only the unloadable one again
    assert "1 saved results in " in again[2]
    assert "ck.pkl' cannot be loaded (call 2: TypeError" in again[2]


class HalfRead:
    """Like a half-read HTTP body: pickling it raises an OSError."""

    def __reduce__(self) -> Any:
        raise ConnectionError("the connection was closed")


def flaky_body(x: int) -> Any:
    return HalfRead() if x == 3 else x


def test_a_result_whose_pickling_raises_oserror_is_no_disk_error(
    tmp_path: Path, run_chunk: RunChunk
) -> None:
    path = tmp_path / "ck.pkl"
    with pytest.warns(CheckpointFailedWarning, match="call 3 cannot be pickled"):
        out = run_chunk(flaky_body, [[x] for x in range(30)], chunk_size=1,
                        progress_bar=False, path=path)  # fmt: skip
    assert isinstance(out[3], HalfRead)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.done == 29
    assert not checkpoint.completed[3]


def test_functions_of_two_modules_with_one_name_are_different(
    tmp_path: Path,
) -> None:
    for name in ("a", "b"):
        (tmp_path / f"{name}.py").write_text(
            f"def process(x):\n    return '{name}' + str(x)\n"
        )
    sys.path.insert(0, str(tmp_path))
    try:
        import a  # type: ignore[import-not-found]
        import b  # type: ignore[import-not-found]

        path = tmp_path / "ck.pkl"
        assert chunk(a.process, [[1]], progress_bar=False, path=path) == ["a1"]
        assert chunk(b.process, [[1]], progress_bar=False, path=path) == ["b1"]
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("a", None)
        sys.modules.pop("b", None)


class Scaler:
    def __init__(self, factor: int) -> None:
        self.factor = factor

    def scale(self, x: int) -> int:
        return self.factor * x


def test_methods_of_two_objects_are_different_and_equal_ones_the_same(
    tmp_path: Path,
) -> None:
    path = tmp_path / "ck.pkl"
    assert chunk(Scaler(2).scale, [[5]], progress_bar=False, path=path) == [10]
    assert chunk(Scaler(3).scale, [[5]], progress_bar=False, path=path) == [15]
    assert Checkpoint.load(path).matches(Scaler(3).scale, [[5]])
    assert not Checkpoint.load(path).matches(Scaler(2).scale, [[5]])


def test_zero_and_minus_zero_are_other_inputs(tmp_path: Path) -> None:
    import math

    def sign(x: float) -> float:
        return math.copysign(1.0, x)

    path = tmp_path / "ck.pkl"
    assert chunk(sign, [[0.0]], progress_bar=False, path=path) == [1.0]
    assert chunk(sign, [[-0.0]], progress_bar=False, path=path) == [-1.0]
