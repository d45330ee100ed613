"""Regression tests for defects found in review, through the public API only.

Each test says in its docstring which defect it pins. The child-process tests
run scripts that import the same thread_chunks as these tests.
"""

from __future__ import annotations

import builtins
import inspect
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import anyio
import anyio.from_thread
import pytest
from filelock import FileLock, Timeout

import thread_chunks
from thread_chunks import Checkpoint, CheckpointFailedWarning, achunk, chunk, chunk_iter
from thread_chunks._journal import with_default_extension
from thread_chunks._threads import _LONGEST_RUN


def child_env() -> dict[str, str]:
    """The environment of a child process: it imports the thread_chunks tested."""
    source = str(Path(thread_chunks.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [source, env.get("PYTHONPATH")]))
    return env


def write_script(tmp_path: Path, body: str) -> Path:
    script = tmp_path / "child.py"
    script.write_text(textwrap.dedent(body))
    return script


def fails_at_3(x: int) -> int:
    if x == 3:
        raise ValueError(f"bad input {x}")
    return x * 10


# 1. CallsFailed is public.


def test_calls_failed_is_in_all() -> None:
    """Defect 1: ``CallsFailed`` is public: listed in ``thread_chunks.__all__``."""
    assert "CallsFailed" in thread_chunks.__all__


def test_calls_failed_is_what_errors_defer_raises() -> None:
    """Defect 1: ``from thread_chunks import CallsFailed`` works, and it is the
    ExceptionGroup subclass that ``chunk(..., errors="defer")`` raises."""
    from thread_chunks import CallsFailed

    assert issubclass(CallsFailed, ExceptionGroup)
    assert CallsFailed.__module__ == "thread_chunks"  # like the other public names
    params = [[x] for x in range(6)]
    with pytest.raises(CallsFailed) as info:
        chunk(fails_at_3, params, errors="defer", progress_bar=False)
    assert type(info.value) is CallsFailed
    assert [str(exc) for exc in info.value.exceptions] == ["bad input 3"]


# 2. SIGTERM during chunk() raises SystemExit(143): finally and atexit run.


def test_sigterm_during_chunk_exits_143_running_finally_and_atexit(
    tmp_path: Path,
) -> None:
    """Defect 2: the first SIGTERM during ``chunk()`` lets the running calls
    finish and be saved, then ends the process with a SystemExit(143)-like
    exception: ``finally`` blocks and atexit hooks run, and the exit status is
    143 (not death by the signal, -15)."""
    script = write_script(
        tmp_path,
        """
        import atexit
        import time
        from pathlib import Path

        from thread_chunks import chunk

        here = Path.cwd()
        atexit.register((here / "atexit-ran").touch)

        def slow(i):
            (here / f"started-{i}").touch()
            time.sleep(0.3)  # the work
            return i * i

        try:
            chunk(slow, [[i] for i in range(20)], chunk_size=2, progress_bar=False,
                  path="ck.pkl")
        finally:
            (here / "finally-ran").touch()
        """,
    )

    def started() -> set[int]:
        return {int(p.name.split("-")[1]) for p in tmp_path.glob("started-*")}

    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_path, env=child_env(), stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not started():  # poll for the marker of a started call
            assert process.poll() is None, "the child exited before any call"
            assert time.monotonic() < deadline, "no call started in time"
            time.sleep(0.001)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM, (process.returncode, stderr)
    assert (tmp_path / "finally-ran").exists(), "the finally block did not run"
    assert (tmp_path / "atexit-ran").exists(), "the atexit hook did not run"
    checkpoint = Checkpoint.load(tmp_path / "ck.pkl")
    assert checkpoint.done >= 1
    saved = set(checkpoint.results)
    assert saved == started(), "a running call was not saved"
    assert all(checkpoint.output[i] == i * i for i in saved)


# 3. chunk_iter left unexhausted at the end of a script; chunk_iter as a
#    context manager.


@pytest.mark.parametrize("held_by", ["a global", "an object cycle"])
def test_an_unexhausted_chunk_iter_at_module_level_lets_the_script_end(
    tmp_path: Path, held_by: str
) -> None:
    """Defect 3: a script that takes one result from ``chunk_iter`` at module
    level and ends exits promptly with status 0. Held only by a reference
    cycle, the iterator is closed by the garbage collector during interpreter
    shutdown, when the run's event loop thread can no longer run: closing it
    must not wait for that thread forever."""
    script = write_script(
        tmp_path,
        f"""
        import time

        from thread_chunks import chunk_iter

        def f(i):
            time.sleep(0.05)  # the work
            return i

        it = chunk_iter(f, [[i] for i in range(200)], chunk_size=2,
                        progress_bar=False, path="ck.pkl")
        print(next(it))
        if {held_by == "an object cycle"}:
            holder = [it]
            holder.append(holder)
            del it, holder
        """,
    )
    try:
        out = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=5,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the script did not end within 5 s")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] in {"(0, 0)", "(1, 1)"}


def test_chunk_iter_is_a_context_manager_that_stops_the_run(tmp_path: Path) -> None:
    """Defect 3: ``with chunk_iter(...) as results:`` works, and leaving the
    block stops the run the orderly way: every call that started finished and
    is saved, and no thread of the run is left."""
    path = tmp_path / "ck.pkl"
    n = 200
    started: list[int] = []
    lock = threading.Lock()

    def work(x: int) -> int:
        with lock:
            started.append(x)
        threading.Event().wait(0.01)  # the work
        return x * 10

    before = set(threading.enumerate())
    with chunk_iter(work, [[x] for x in range(n)], chunk_size=2,
                    progress_bar=False, path=path) as results:  # fmt: skip
        first = next(results)
    deadline = time.monotonic() + 10
    while not set(threading.enumerate()) <= before:
        assert time.monotonic() < deadline, "a thread of the run was left"
        threading.Event().wait(0.01)
    checkpoint = Checkpoint.load(path)
    assert checkpoint.results[first[0]] == first[1]
    assert set(checkpoint.results) == set(started), "a started call was not saved"
    assert all(checkpoint.output[i] == i * 10 for i in started)
    assert len(started) < n, "the run went on after the block was left"


# 4. No SIGTERM handler of ours while chunk_iter is suspended.


def test_sigterm_handler_is_not_installed_while_chunk_iter_is_suspended() -> None:
    """Defect 4: between two ``next()`` calls on a ``chunk_iter`` generator the
    main thread runs the user's code, not the library's: the library's SIGTERM
    handler must not be installed meanwhile."""
    # The library installs its handler only over the default one; another
    # test's library (Dask) may have left one of its own in this process.
    original = signal.signal(signal.SIGTERM, signal.SIG_DFL)
    before = signal.getsignal(signal.SIGTERM)
    seen: list[Any] = []
    results = chunk_iter(abs, [[-x] for x in range(10)], chunk_size=1,
                         progress_bar=False)  # fmt: skip
    try:
        next(results)
        seen.append(signal.getsignal(signal.SIGTERM))
        next(results)
        seen.append(signal.getsignal(signal.SIGTERM))
        assert len(list(results)) == 8  # the end: the run is over
    finally:
        signal.signal(signal.SIGTERM, original)
    assert seen == [before, before]


# 5. os.umask is never called from a worker thread.


def test_the_umask_is_never_set_from_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 5: reading the umask by setting it (``os.umask``) changes it for
    the whole process for a moment; from a worker thread, during a run, that
    races with every file the user's other threads create. With no
    ``/proc/self/status`` to read it from, a run must not call ``os.umask``
    from any thread but the main one (reading it once at import time, never
    during a run, is fine)."""
    real_open, real_umask = builtins.open, os.umask
    from_main_thread: list[bool] = []

    def no_proc(file: Any, *args: Any, **kwargs: Any) -> Any:
        if file == "/proc/self/status":  # as on a system without /proc
            raise FileNotFoundError(2, "No such file or directory", file)
        return real_open(file, *args, **kwargs)

    def recording_umask(mask: int) -> int:
        from_main_thread.append(threading.current_thread() is threading.main_thread())
        return real_umask(mask)

    monkeypatch.setattr(builtins, "open", no_proc)
    monkeypatch.setattr(os, "umask", recording_umask)
    out = chunk(abs, [[-1], [-2], [-3]], chunk_size=2, progress_bar=False,
                path=tmp_path / "c.pkl")  # fmt: skip
    monkeypatch.undo()
    assert out == [1, 2, 3]
    assert all(from_main_thread), (
        f"os.umask was called {from_main_thread.count(False)} times from a "
        "worker thread during the run"
    )
    assert Checkpoint.load(tmp_path / "c.pkl").output == [1, 2, 3]


# 6. A checkpoint deleted during a run is written again, its lock kept.


class ShownWarnings:
    """Records the warnings shown; ``deleted`` is set by the "deleted" one."""

    def __init__(self) -> None:
        self.categories: list[type[Warning]] = []
        self.messages: list[str] = []
        self.deleted = threading.Event()

    def show(
        self,
        message: Warning | str,
        category: type[Warning],
        filename: str,
        lineno: int,
        file: TextIO | None = None,
        line: str | None = None,
    ) -> None:
        self.categories.append(category)
        self.messages.append(str(message))
        if "was deleted during the run" in str(message):
            self.deleted.set()


def test_a_deleted_lock_file_then_checkpoint_are_written_again(tmp_path: Path) -> None:
    """Defect 6: the lock file of a checkpoint, then the checkpoint itself,
    deleted during a run: the run completes with the right results, the
    checkpoint is written again with every result, and nothing escapes but the
    warning that says so."""
    path, lock_path = tmp_path / "c.pkl", tmp_path / ".c.pkl.lock"
    shown = ShownWarnings()

    def f(i: int) -> int:
        if i == 0:  # the files exist: the run opened them before any call
            lock_path.unlink()
            path.unlink()
        elif i == 1:  # the checkpoint has been written again
            assert shown.deleted.wait(timeout=10)
        return i * 10

    params = [[i] for i in range(6)]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown.show
        out = chunk(f, params, chunk_size=1, progress_bar=False, path=path)
    assert out == [i * 10 for i in range(6)]
    assert shown.categories == [CheckpointFailedWarning], shown.messages
    checkpoint = Checkpoint.load(path)
    assert checkpoint.output == out  # the first result too
    assert checkpoint.done == len(params)
    with FileLock(str(lock_path), timeout=0):  # released at the end
        pass
    calls: list[int] = []

    def again(i: int) -> int:
        calls.append(i)
        return i * 10

    again.__qualname__ = f.__qualname__
    assert chunk(again, params, progress_bar=False, path=path) == out
    assert calls == []  # the rerun resumed from the checkpoint written again


def test_rewriting_a_deleted_checkpoint_never_lets_another_run_take_the_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defect 6: writing a deleted checkpoint again, the writer released the
    checkpoint's lock and took it again, leaving a gap in which another run
    could take it. Every time a lock is released while calls still run, another
    ``FileLock`` on the lock file tries to take it at once: it must never
    succeed while the run is alive."""
    fcntl = pytest.importorskip("fcntl")
    path, lock_path = tmp_path / "c.pkl", tmp_path / ".c.pkl.lock"
    shown = ShownWarnings()
    calls_running = threading.Event()
    probing = threading.local()
    taken_in_a_gap: list[bool] = []
    real_flock = fcntl.flock

    def flock(fd: Any, operation: int) -> None:
        real_flock(fd, operation)
        if not (operation & fcntl.LOCK_UN and calls_running.is_set()):
            return
        if getattr(probing, "active", False):  # the probe's own lock
            return
        probing.active = True
        try:
            other = FileLock(str(lock_path), timeout=0)
            try:
                other.acquire()
            except Timeout:
                taken_in_a_gap.append(False)
            else:
                taken_in_a_gap.append(True)
                other.release()
        finally:
            probing.active = False

    def f(i: int) -> int:
        if i == 0:
            calls_running.set()
            path.unlink()  # the writer writes it again with the next result
        elif i == 1:
            assert shown.deleted.wait(timeout=10)
        elif i == 2:
            calls_running.clear()  # the lock is released when the run ends
        return i * 10

    monkeypatch.setattr(fcntl, "flock", flock)
    params = [[i] for i in range(4)]
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = shown.show
        out = chunk(f, params, chunk_size=1, progress_bar=False, path=path)
    monkeypatch.undo()
    assert out == [0, 10, 20, 30]
    assert shown.categories == [CheckpointFailedWarning], shown.messages
    assert Checkpoint.load(path).output == out
    assert True not in taken_in_a_gap, (
        "another FileLock took the checkpoint's lock while the run was writing it"
    )


# 7. errors="raise" on an executor: a batch's failure is not lost.


def unsendable_then_failing(marker: str, x: int) -> Any:
    """Call 1500 returns a lock (it cannot be sent back); call 1501 fails."""
    if x == 1500:
        return threading.Lock()
    if x == 1501:
        Path(marker).touch()
        raise ValueError(f"bad input {x}")
    return x


def test_errors_raise_keeps_the_failure_of_a_call_in_a_batch(tmp_path: Path) -> None:
    """Defect 7: with ``errors="raise"`` on a process pool, a batch that ran
    call 1500 (its result cannot be sent back) and then call 1501 (which
    raised and stopped the batch) lost the ValueError of call 1501: only the
    TypeError of call 1500 was raised, with no word of call 1501. The run must
    raise the failure of call 1501 or name it in a note."""
    marker = tmp_path / "1501-ran"
    func = partial(unsendable_then_failing, str(marker))
    with (
        ProcessPoolExecutor(1) as pool,
        pytest.raises((TypeError, ValueError)) as info,
    ):
        chunk(func, [[x] for x in range(3000)], chunk_size=1, executor=pool,
              progress_bar=False)  # fmt: skip
    if not marker.exists():
        pytest.skip("calls 1500 and 1501 ran in different batches this time")
    told = [str(info.value), *getattr(info.value, "__notes__", [])]
    assert any("bad input 1501" in text for text in told), told


# 8. Cancellation is not swallowed by the threads running tiny calls.


async def cancel_tiny_calls_mid_stream(chunk_size: int, n: int) -> tuple[bool, int]:
    """Cancel ``achunk`` over ``n`` tiny calls from inside call 5000.

    Returns whether the cancel scope caught the cancellation, and how many
    calls started after it was cancelled.
    """
    lock = threading.Lock()
    started = [0]
    at_cancel: list[int] = []
    scope = anyio.CancelScope()

    def cancel() -> None:  # on the event loop
        with lock:
            at_cancel.append(started[0])
        scope.cancel()

    def tiny(x: int) -> int:
        with lock:
            started[0] += 1
            count = started[0]
        if count == 5_000:  # mid-stream, from this worker thread
            anyio.from_thread.run_sync(cancel)
        return x

    with scope:
        await achunk(tiny, [[x] for x in range(n)], chunk_size=chunk_size,
                     progress_bar=False)  # fmt: skip
    assert started[0] < n, "the run was not stopped"
    (seen,) = at_cancel
    return scope.cancelled_caught, started[0] - seen


@pytest.mark.anyio
async def test_cancelling_tiny_calls_in_threads_stops_within_a_few_calls() -> None:
    """Defect 8: a worker thread running a slice of tiny calls must not
    swallow the cancellation it checks for: the cancel scope catches it, and
    each worker starts at most the rest of its run of calls after the
    cancellation (a run lasts at most ``RUN_TIME``: at most ``_LONGEST_RUN``
    tiny calls), not the rest of its time slice (about 5 ms of calls).
    Whether a slice was about to end anyway depends on timing: five runs."""
    chunk_size = 2
    with anyio.fail_after(60):
        outcomes = [await cancel_tiny_calls_mid_stream(chunk_size, 50_000)
                    for _ in range(5)]  # fmt: skip
    assert all(caught for caught, _ in outcomes), outcomes
    bound = chunk_size * _LONGEST_RUN
    assert all(after <= bound for _, after in outcomes), outcomes


# The one private hook of saveable-objects we rely on, and its path rule.


def test_checkpoint_shows_its_own_signature() -> None:
    """``inspect.signature(Checkpoint)`` shows 1.x's arguments, not ``*args``."""
    parameters = list(inspect.signature(Checkpoint).parameters)
    assert parameters == [
        "func_name",
        "parameters",
        "output",
        "completed",
        "index",
        "done",
        "path",
    ]


@pytest.mark.parametrize("name", ["run", "run_", "dir/run", "run.pkl", "a.b/run"])
def test_our_default_extension_is_the_rule_of_saveable_objects(name: str) -> None:
    """A path without an extension gets ``_Checkpoint.pkl``: saveable-objects'
    rule, which its public ``path`` setter applies, and which ours repeats."""
    from saveable_objects import SaveableObject

    class Checkpoint(SaveableObject):  # type: ignore[misc]  # named as ours
        pass

    theirs = Checkpoint()
    theirs.path = name
    assert Checkpoint.__name__ == "Checkpoint"
    assert with_default_extension(name) == theirs.path


def test_saveable_objects_save_goes_through_our_format(tmp_path: Path) -> None:
    """``SaveableObject.save`` calls the ``_save`` hook we override: what it
    writes is our journal format (it opens with the loader's name), atomically."""
    checkpoint = Checkpoint("f", [[1], [2]], output=[3, None],
                            completed=[True, False])  # fmt: skip
    checkpoint.save(str(tmp_path / "c.pkl"))
    data = (tmp_path / "c.pkl").read_bytes()
    assert data.startswith(Checkpoint.file_opening())
    assert Checkpoint.load(tmp_path / "c.pkl").output == [3, None]
