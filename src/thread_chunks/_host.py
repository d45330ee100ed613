"""Hosting a run for an entry point: its event loop, its warnings, signals, its end.

Every entry point hosts its run the same way. A :class:`HostedRun` runs the
plan on an event loop, collecting in a :class:`Mailbox` what the run reports,
from whichever thread: warnings, results (when streamed) and its outcome. The
entry point, in the caller's thread, takes them out and delivers them: it
issues each warning from its own frame, so that it points at the user's line
(and a warning that a filter turns into an error stops the run like any
exception), hands results to the caller, and at the end returns the outputs
or raises what ended the run.

:func:`chunk` and :func:`chunk_iter` run the event loop in a helper thread (a
blocking portal), which works whether or not a loop is already running in the
caller's thread; :func:`achunk` and :func:`achunk_iter` run it in a task of
the caller's loop. In the caller's main thread, the first Ctrl-C, SIGTERM or
SIGHUP stops the run the orderly way (running calls finish and are saved),
then raises ``KeyboardInterrupt`` or :class:`Terminated` (a ``SystemExit``
with status 143, or 129 for SIGHUP); a second one ends the process within a
second, whatever the calls are doing, keeping every result saved before it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
import warnings
import weakref
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from contextlib import ExitStack, asynccontextmanager, contextmanager, suppress
from types import FrameType
from typing import Any, NoReturn, TypeVar

import anyio
import anyio.from_thread
import anyio.lowlevel
from anyio.from_thread import start_blocking_portal

from ._executor import kill_our_workers
from ._plan import Plan
from ._run import in_notebook, run_plan

__all__ = [
    "END",
    "HostedRun",
    "ResultIterator",
    "ResultStream",
    "Terminated",
    "host",
    "ignore_sigint",
]

logger = logging.getLogger("thread_chunks")

R = TypeVar("R")

END: Any = object()
"""What :meth:`HostedRun.next` returns once the run has ended."""

SIGNAL_CHECK = 0.1
"""Seconds between two wake-ups of a thread that waits for a run. Python runs
signal handlers in the main thread, when it runs, and the kernel may hand a
signal to any thread: a main thread that slept until the next result would
not see a Ctrl-C while the calls hang."""


class Mailbox:
    """What a run reports to its entry point, put from any thread, taken in order."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._items: deque[tuple[str, Any]] = deque()
        self._kinds: set[str] = set()
        self._wake: Callable[[], None] | None = None

    def warn(self, message: str, category: type[Warning], kind: str = "") -> None:
        """Queue a warning; if ``kind`` is given, only the first one of that kind."""
        with self._condition:
            if kind in self._kinds:
                return
            if kind:
                self._kinds.add(kind)
        self.put("warning", (message, category))

    def emit(self, index: int, result: Any) -> None:
        """Queue the result of call ``index``, to be streamed."""
        self.put("result", (index, result))

    def skip(self, index: int) -> None:
        """Queue that call ``index`` will have no result (a deferred failure)."""
        self.put("skip", index)

    def put(self, kind: str, payload: Any) -> None:
        """Queue an item and wake whoever waits for it."""
        with self._condition:
            self._items.append((kind, payload))
            self._condition.notify_all()
            wake, self._wake = self._wake, None
        if wake is not None:
            wake()

    def take_blocking(self) -> list[tuple[str, Any]]:
        """Take every item queued, blocking until there is one (Ctrl-C interrupts)."""
        with self._condition:
            while not self._items:
                self._condition.wait(SIGNAL_CHECK)
            return self._take()

    async def take(self) -> list[tuple[str, Any]]:
        """Take every item queued, waiting on the event loop until there is one."""
        event = anyio.Event()
        token = anyio.lowlevel.current_token()
        loop_thread = threading.get_ident()

        def wake() -> None:
            if threading.get_ident() == loop_thread:
                event.set()
            else:
                with suppress(anyio.RunFinishedError):
                    anyio.from_thread.run_sync(event.set, token=token)

        with self._condition:
            if self._items:
                return self._take()
            self._wake = wake
        await event.wait()
        with self._condition:
            return self._take()

    def _take(self) -> list[tuple[str, Any]]:
        items = list(self._items)
        self._items.clear()
        return items


class InOrder:
    """A reorder buffer: results in, in any order; out in index order.

    A result goes out once every call before it has given its result or
    will give none (a deferred failure, :meth:`skip`).
    """

    def __init__(self) -> None:
        self.next = 0
        """The index of the next result to go out."""
        self._waiting: dict[int, Any] = {}
        self._skipped: set[int] = set()

    def put(self, index: int, result: Any) -> list[tuple[int, Any]]:
        """Take call ``index``'s result; return those that can go out now."""
        self._waiting[index] = result
        return self._ready()

    def skip(self, index: int) -> list[tuple[int, Any]]:
        """Call ``index`` has no result; return the results that can go out now."""
        self._skipped.add(index)
        return self._ready()

    def rest(self) -> list[tuple[int, Any]]:
        """At the end of the run: every result still waiting, in index order."""
        rest = sorted(self._waiting.items())
        self._waiting.clear()
        return rest

    def _ready(self) -> list[tuple[int, Any]]:
        ready = []
        while True:
            if self.next in self._waiting:
                ready.append((self.next, self._waiting.pop(self.next)))
            elif self.next in self._skipped:
                self._skipped.remove(self.next)
            else:
                return ready
            self.next += 1


class HostedRun:
    """One run of a plan, hosted for an entry point.

    :meth:`run` runs it on an event loop; :meth:`next_blocking` (from a
    thread) or :meth:`next` (from a task) deliver what it reports, one result
    at a time (in index order if ``ordered``), issuing its warnings on the
    way; :meth:`result` returns its outputs or raises what ended it.
    """

    def __init__(self, plan: Plan, stream: bool, ordered: bool = False) -> None:
        self.plan = plan
        self.stream = stream
        self.ended = False
        """Whether the entry point has taken the run's outcome."""
        self.finished = threading.Event()
        """Set, from the run's thread, once the run has ended and saved."""
        self._mailbox = Mailbox()
        self._results: deque[tuple[int, Any]] = deque()
        self._in_order = InOrder() if ordered else None
        self._outcome: list[Any] | BaseException | None = None

    async def run(self) -> None:
        """Run the plan; put its outcome in the mailbox, however it ends.

        A ``KeyboardInterrupt`` or ``SystemExit`` that escapes a task stops an
        asyncio event loop on the spot, with a long report of the tasks it left
        behind. So everything but cancellation is kept as the outcome, for the
        entry point to raise from its own task or thread.
        """
        mailbox = self._mailbox
        outcome: list[Any] | BaseException | None = None
        try:
            emit = mailbox.emit if self.stream else None
            skip = mailbox.skip if self._in_order is not None else None
            outcome = await run_plan(self.plan, mailbox.warn, emit, skip)
        except anyio.get_cancelled_exc_class():
            raise
        except BaseException as exc:
            outcome = exc
        finally:
            mailbox.put("end", outcome)
            self.finished.set()

    def next_blocking(self, stacklevel: int) -> Any:
        """The next result, or :data:`END`; warnings issued ``stacklevel`` up."""
        while not self._results and not self.ended:
            self._deliver(self._mailbox.take_blocking(), stacklevel + 1)
        return self._results.popleft() if self._results else END

    async def next(self, stacklevel: int) -> Any:
        """The next result, or :data:`END`; warnings issued ``stacklevel`` up."""
        while not self._results and not self.ended:
            self._deliver(await self._mailbox.take(), stacklevel + 1)
        return self._results.popleft() if self._results else END

    def _deliver(self, items: list[tuple[str, Any]], stacklevel: int) -> None:
        in_order = self._in_order
        for kind, payload in items:
            if kind == "result":
                if in_order is None:
                    self._results.append(payload)
                else:
                    self._results.extend(in_order.put(*payload))
            elif kind == "skip":
                if in_order is not None:
                    self._results.extend(in_order.skip(payload))
            elif kind == "warning":
                message, category = payload
                warnings.warn(message, category, stacklevel=stacklevel + 1)
            else:
                if in_order is not None:  # what completed after a failure
                    self._results.extend(in_order.rest())
                self._outcome, self.ended = payload, True

    def result(self) -> list[Any]:
        """The outputs of the run, or the exception that ended it, raised.

        A run that was cancelled before it ended has no outputs: ``[]``.
        """
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return [] if outcome is None else outcome


async def host(plan: Plan) -> list[Any]:
    """Run ``plan`` in a task of the current event loop; return its outputs.

    Its warnings point two frames up: the caller of the entry point.
    """
    hosted = HostedRun(plan, stream=False)
    with unwrapped_exception_groups():
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(hosted.run)
            while await hosted.next(stacklevel=3) is not END:
                pass
    return hosted.result()


class ResultStream:
    """The results of a run hosted in a task, as an async iterator.

    ``async for index, result in stream`` gives each result as its call
    completes; the run's warnings are issued at the ``async for`` line.
    """

    def __init__(self, hosted: HostedRun) -> None:
        self._hosted = hosted

    def __aiter__(self) -> ResultStream:
        return self

    async def __anext__(self) -> tuple[int, Any]:
        item = await self._hosted.next(stacklevel=2)
        if item is END:
            raise StopAsyncIteration
        result: tuple[int, Any] = item
        return result


class ResultIterator(Iterator[tuple[int, R]]):
    """A run on a private event loop in a helper thread, as an iterator.

    Nothing runs until the first ``next()``. Leaving early (``close()``,
    leaving a ``with`` block, dropping the iterator, or the interpreter
    exiting) stops the run the orderly way: running calls finish and are
    saved, and nothing of the run is left running.
    """

    def __init__(
        self,
        plan: Plan,
        stream: bool = True,
        stacklevel: int = 1,
        ordered: bool = False,
    ) -> None:
        """``stacklevel``: how many frames above ``__next__`` the user's line is."""
        self._hosted = HostedRun(plan, stream, ordered)
        self._stacklevel = stacklevel
        self._stack: ExitStack | None = None
        self._future: Future[None] | None = None
        self._closed = not plan.parameters

    def __iter__(self) -> ResultIterator[R]:
        return self

    def __next__(self) -> tuple[int, R]:
        if self._closed:
            raise StopIteration
        with signals_stop_the_run(), unwrapped_exception_groups():
            try:
                if self._future is None:
                    self._start()
                item = self._hosted.next_blocking(self._stacklevel + 1)
            except (KeyboardInterrupt, Terminated) as exc:
                # From now on, a second signal ends the process.
                with signals_end_the_process(self._hosted.finished):
                    _log_stopping(exc)
                    self.close()
                raise
            except BaseException:  # a warning turned into an error
                self.close()
                raise
            if item is END:
                self.close()
                self._hosted.result()  # raises what ended the run, if anything
                raise StopIteration
        result: tuple[int, R] = item
        return result

    def outputs(self) -> list[Any]:
        """Run to the end and return the outputs in order (for :func:`chunk`)."""
        for _ in self:
            pass
        return self._hosted.result()

    def _start(self) -> None:
        self._stack = ExitStack()
        portal = self._stack.enter_context(
            start_blocking_portal("asyncio", name="thread-chunks")
        )
        self._future = portal.start_task_soon(self._hosted.run)
        _exit_watcher.watch(self)

    def close(self) -> None:
        """Stop the run the orderly way, if it runs; wait until it has stopped.

        Meanwhile, in the main thread, a Ctrl-C, SIGTERM or SIGHUP ends the
        process (:func:`end_now`): a call may hang.
        """
        if self._closed:
            return
        self._closed = True
        if self._future is not None:
            self._future.cancel()
        if self._stack is not None:
            with signals_end_the_process(self._hosted.finished):
                if self._future is not None and in_main_thread():
                    # In slices (see SIGNAL_CHECK); never on the loop's thread
                    # (a __del__ there), where the run could not end meanwhile.
                    while not self._hosted.finished.wait(SIGNAL_CHECK):
                        pass
                self._stack.close()

    def stop_at_exit(self) -> None:
        """At interpreter exit, from another thread: stop the run, wait for it."""
        self.close()  # the portal is stopped here, while its thread still runs

    def __enter__(self) -> ResultIterator[R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if sys.is_finalizing():  # the helper threads are gone: nothing to wait for
            return
        with suppress(Exception):
            self.close()


class _ExitWatcher:
    """Stops unfinished result iterators when the interpreter exits.

    The interpreter waits for its non-daemon threads before it exits, but a
    suspended iterator's run would never end by itself. One non-daemon thread
    waits for the main thread to finish, which happens at the start of
    interpreter exit, then stops every iterator still running, the orderly
    way, so that the process exits once their running calls are saved.
    """

    def __init__(self) -> None:
        self._iterators: weakref.WeakSet[ResultIterator[Any]] = weakref.WeakSet()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def watch(self, iterator: ResultIterator[Any]) -> None:
        with self._lock:
            self._iterators.add(iterator)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._wait, name="thread-chunks-exit", daemon=False
                )
                self._thread.start()

    def _wait(self) -> None:
        threading.main_thread().join()
        with self._lock:
            iterators = list(self._iterators)
        for iterator in iterators:
            iterator.stop_at_exit()


_exit_watcher = _ExitWatcher()


@contextmanager
def unwrapped_exception_groups() -> Iterator[None]:
    """Re-raise a group holding a single exception as that exception.

    So that ``except KeyboardInterrupt`` or ``except ValueError`` works for
    callers on every backend, where task groups would wrap it.
    """
    try:
        yield
    except BaseExceptionGroup as group:
        if type(group) not in (BaseExceptionGroup, ExceptionGroup):
            raise  # a group of our own making, such as errors="defer"'s
        exc: BaseException = group
        while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
            exc = exc.exceptions[0]
        if exc is group:
            raise
        raise exc from exc.__cause__


def ignore_sigint() -> None:
    """Make this process ignore SIGINT: the initializer of a worker process.

    A Ctrl-C in a terminal interrupts every process of the foreground group,
    worker processes included, and a worker interrupted in the middle of a
    call loses it. With this initializer the workers carry on, and the
    process running :func:`chunk` handles the Ctrl-C: running calls finish
    and are saved, then ``KeyboardInterrupt`` is raised once.
    ``executor="processes"`` uses it already; give it to a process pool of
    your own.

    Examples
    --------
    >>> from concurrent.futures import ProcessPoolExecutor
    >>> from thread_chunks import chunk, ignore_sigint
    >>> with ProcessPoolExecutor(2, initializer=ignore_sigint) as pool:
    ...     chunk(abs, [[-1], [-2]], executor=pool, progress_bar=False)
    [1, 2]
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class Terminated(SystemExit):
    """Raised in the main thread by the first SIGTERM (or SIGHUP) during a run.

    A ``SystemExit`` whose code is 128 plus the signal's number, as a batch
    scheduler or a shell expects: 143 for SIGTERM, 129 for SIGHUP (a closed
    terminal, a dropped ssh connection). ``finally`` blocks and ``atexit``
    hooks run, and the process exits with that status unless the exception is
    caught.
    """

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__(128 + signum)
        self.signum = signum
        """The number of the signal received."""


_STOPPING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""The signals that stop a run as a first Ctrl-C does (SIGHUP: not on Windows)."""

GRACE = 0.5
"""Seconds that a second signal leaves the run to end and save before the
process ends: the checkpoint's writer saves what is queued within
milliseconds."""


@contextmanager
def signals_stop_the_run() -> Iterator[None]:
    """Turn the first SIGTERM or SIGHUP into :class:`Terminated`.

    Batch schedulers (SLURM, PBS, Kubernetes) send SIGTERM some time before
    SIGKILL; a closed terminal or a dropped ssh connection sends SIGHUP. The
    first one raises :class:`Terminated` in the main thread, which the entry
    point handles like a first Ctrl-C (running calls finish and are saved)
    before it propagates; a second signal meanwhile ends the process
    (:func:`end_now`). Does nothing outside the main thread, and leaves alone
    a signal that is ignored or handled by someone else.
    """
    received = False

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal received
        if received:  # the second one, before the orderly stop began
            end_now(signum, None)
        received = True
        raise Terminated(signum)

    with _handlers(dict.fromkeys(_STOPPING_SIGNALS, on_signal)):
        yield


@contextmanager
def signals_end_the_process(finished: threading.Event) -> Iterator[None]:
    """While a run stops the orderly way: any Ctrl-C, SIGTERM or SIGHUP ends now.

    ``finished`` is set once the run has ended and saved (see :func:`end_now`).
    Not in a Jupyter kernel, which must survive: there a second interrupt
    raises ``KeyboardInterrupt`` and leaves the calls that hang running.
    """
    if in_notebook():
        yield
        return

    def on_signal(signum: int, frame: FrameType | None) -> None:
        end_now(signum, finished)

    signals = (signal.SIGINT, *_STOPPING_SIGNALS)
    with _handlers(dict.fromkeys(signals, on_signal)):
        yield


def end_now(signum: int, finished: threading.Event | None) -> NoReturn:
    """End the process at once, as ``signum`` does by default: the second signal.

    The calls may hang (in C code, in a worker process): nothing waits for
    them. Our worker processes are killed; the run gets :data:`GRACE` seconds
    to end and save (``finished`` is set when it has), which lets the
    checkpoint's writer save every result kept before the signal; then the
    process ends, killed by ``signum`` (exit status ``-signum`` as seen by its
    parent, ``128 + signum`` in a shell).
    """
    name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
    # From a thread of its own, waited for briefly: this handler may run while
    # the main thread holds a logging handler's lock (a QueueHandler's is not
    # reentrant), and logging here would then wait forever.
    said = threading.Thread(
        target=logger.warning,
        args=("second %s: stopping now, without waiting for the calls", name),
        daemon=True,
    )
    said.start()
    said.join(0.1)
    with suppress(Exception):  # our pools' workers, hung or not
        kill_our_workers()
    # Not finished.wait(): this handler may run while the main thread holds
    # that event's lock, in its own wait (close() waits for it in slices).
    deadline = time.monotonic() + GRACE
    while finished is not None and not finished.is_set():
        if time.monotonic() > deadline:
            break
        time.sleep(0.005)
    signal.signal(signum, signal.SIG_DFL)
    signal.raise_signal(signum)
    os._exit(128 + signum)  # if the signal could not end the process


_Handler = Callable[[int, FrameType | None], None]


def in_main_thread() -> bool:
    """Whether this is the main thread, the one where signal handlers run."""
    return threading.current_thread() is threading.main_thread()


@contextmanager
def _handlers(handlers: dict[int, _Handler]) -> Iterator[None]:
    """Handle these signals meanwhile, each where its handler is the default
    or one of ours; in the main thread only (where ``signal.signal`` works)."""
    if not in_main_thread():
        yield
        return
    previous: dict[int, Any] = {}
    for signum, handler in handlers.items():
        current = signal.getsignal(signum)
        if signum == signal.SIGINT:
            default: Any = signal.default_int_handler  # SIG_DFL ends at once
        else:
            default = signal.SIG_DFL
        if current is default or current in _ours:
            previous[signum] = current
            _ours.add(handler)
            signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            _ours.discard(signal.getsignal(signum))
            signal.signal(signum, handler)


_ours: set[Any] = set()
"""Our handlers installed now: a nested :func:`_handlers` may replace them."""


def _log_stopping(signal_: KeyboardInterrupt | Terminated) -> None:
    """Say that the first Ctrl-C or SIGTERM is stopping the run, and how."""
    if isinstance(signal_, KeyboardInterrupt):
        name = "interrupted"
    else:
        name = signal.Signals(signal_.signum).name
    logger.warning(
        "%s: waiting for the running calls to finish and saving the checkpoint; "
        "a second Ctrl-C, SIGTERM or SIGHUP stops at once",
        name,
    )


@asynccontextmanager
async def hosted_stream(
    plan: Plan, ordered: bool = False
) -> AsyncIterator[ResultStream]:
    """The body of :func:`achunk_iter`: host ``plan`` in a task, stream results.

    Leaving, however early, stops the run the orderly way; then the
    remaining warnings are issued and what ended the run is raised.
    """
    hosted = HostedRun(plan, stream=True, ordered=ordered)
    with unwrapped_exception_groups():
        async with anyio.create_task_group() as task_group:
            task_group.start_soon(hosted.run)
            try:
                yield ResultStream(hosted)
            finally:
                if not hosted.ended:  # left before the end: stop the run
                    task_group.cancel_scope.cancel()
        while await hosted.next(stacklevel=4) is not END:
            pass  # results nobody reads any more; warnings are issued
    hosted.result()
