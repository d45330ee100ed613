"""Hardening: base exceptions from calls, signals, shared pools, odd paths."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from thread_chunks import Chunker, achunk, chunk


def run_child(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt"])
@pytest.mark.parametrize("runner", ["chunk", "asyncio", "trio"])
def test_a_call_raising_a_base_exception_stops_the_run_cleanly(
    tmp_path: Path, kind: str, runner: str
) -> None:
    body = f"""
    import threading, anyio
    from functools import partial
    from thread_chunks import Checkpoint, achunk, chunk

    other_started = threading.Event()

    def f(i):
        if i == 0:  # runs while call 1 raises, then finishes and is saved
            assert other_started.wait(10)
            return "zero"
        if i == 1:
            other_started.set()
            raise {kind}("from call 1")
        return i

    params = [[i] for i in range(6)]
    options = dict(chunk_size=2, progress_bar=False, path="ck.pkl")
    try:
        if "{runner}" == "chunk":
            chunk(f, params, **options)
        else:
            anyio.run(partial(achunk, f, params, **options), backend="{runner}")
    except {kind} as exc:
        print("caught", type(exc).__name__, exc.__notes__[0])
    print(Checkpoint.load("ck.pkl").completed)
    print("threads", threading.active_count())
    """
    out = run_child(tmp_path, body)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert (
        lines[0]
        == f"caught {kind} raised by call 1: f(*parameters[1]) with parameters[1] = [1]"
    )
    completed = lines[1]
    # Call 0 finished after call 1 raised: saved. Call 2 may have started in
    # the instant before the failure reached the event loop; no call after it.
    assert completed.startswith("[True, False, ")
    assert completed.endswith(", False, False, False]")
    assert "Traceback" not in out.stderr
    assert "unhandled exception" not in out.stderr


def test_chunk_restores_the_sigterm_handler_and_leaves_others_alone() -> None:
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert chunk(abs, [[-1]], progress_bar=False) == [1]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

    def mine(signum: int, frame: Any) -> None:
        raise AssertionError("not sent")

    signal.signal(signal.SIGTERM, mine)
    try:
        seen: list[Any] = []

        def where(x: int) -> int:
            seen.append(signal.getsignal(signal.SIGTERM))
            return x

        assert chunk(where, [[1]], progress_bar=False) == [1]
        assert seen == [mine]  # a handler of the user's own is left in place
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_two_processes_runs_at_once_with_different_chunk_sizes() -> None:
    from tests import engines

    results: dict[int, list[int]] = {}

    def run(size: int) -> None:
        parameters = [[x] for x in range(12)]
        results[size] = chunk(
            engines.square, parameters, chunk_size=size, progress_bar=False,
            executor="processes",
        )  # fmt: skip

    threads = [threading.Thread(target=run, args=(size,)) for size in (1, 2, 3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {size: [x * x for x in range(12)] for size in (1, 2, 3)}


def test_a_lambda_in_the_parameters_is_saved_and_resumes(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    parameters = [[lambda x: x + 1, 1], [lambda x: x * 10, 2]]

    def apply(f: Any, x: int) -> int:
        return int(f(x))

    assert chunk(apply, parameters, progress_bar=False, path=path) == [2, 20]
    calls: list[int] = []

    def counted(f: Any, x: int) -> int:
        calls.append(x)
        return int(f(x))

    counted.__qualname__ = apply.__qualname__
    assert chunk(counted, parameters, progress_bar=False, path=path) == [2, 20]
    assert calls == []


@pytest.mark.parametrize("value", [float("inf"), float("nan")])
def test_checkpoint_every_rejects_infinity_and_nan(value: float) -> None:
    with pytest.raises(ValueError, match="checkpoint_every must be >= 0 and finite"):
        chunk(abs, [[1]], checkpoint_every=value)


def test_a_warning_turned_error_releases_the_checkpoint_first(tmp_path: Path) -> None:
    import warnings

    from thread_chunks import CheckpointFailedWarning

    path = tmp_path / "ck.pkl"
    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointFailedWarning)
        with pytest.raises(CheckpointFailedWarning) as info:
            chunk(lambda i: threading.Lock(), [[0]], progress_bar=False, path=path)
    kept = info.value  # like Jupyter, keep the exception (and its frames) alive
    assert chunk(abs, [[-1]], progress_bar=False, path=path) == [1]  # not locked
    del kept


@pytest.mark.anyio
async def test_an_async_callable_object_is_awaited() -> None:
    class Fetch:
        async def __call__(self, x: int) -> int:
            await anyio.lowlevel.checkpoint()
            return x * 2

    assert await achunk(Fetch(), [[1], [2]], progress_bar=False) == [2, 4]
    assert chunk(Fetch(), [[3]], progress_bar=False) == [6]


def test_two_threads_cannot_both_run_one_chunker() -> None:
    inside, release = threading.Event(), threading.Event()

    def slow(x: int) -> int:
        inside.set()
        assert release.wait(timeout=10)
        return x

    chunker = Chunker(slow, chunk_size=1, progress_bar=False)
    first = threading.Thread(target=chunker, args=([[1]],))
    first.start()
    try:
        assert inside.wait(timeout=10)
        with pytest.raises(RuntimeError, match="already running"):
            chunker([[2]])
    finally:
        release.set()
        first.join()
