"""One run: its worker tasks, its state, and what happens when a call fails.

:func:`run_plan` opens what a run holds (the checkpoint, the executor, the
progress bar), starts ``chunk_size`` worker tasks, and closes everything in
reverse order however the run ends. :class:`Workers` owns the run's state
(one stop flag, the outputs, the failures) and offers the strategies the
narrow :class:`~thread_chunks._actors.Calls` interface. Every attempt at a
call, first or retry, goes through the run's one strategy. A failing call is
tried again ``retries`` times (its worker waits, keeping its place: no more
than ``chunk_size`` calls ever run), then handled as ``errors`` says.
"""

from __future__ import annotations

import heapq
import logging
import random
import reprlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, contextmanager
from itertools import filterfalse, islice
from operator import length_hint
from typing import Any, cast

import anyio
import anyio.lowlevel

from ._actors import Coroutines, LabelledActor, Row, Strategy
from ._executor import Batches, BatchSizes, opened_executor
from ._plan import Plan
from ._ray import RayActors
from ._store import CallFailure, CheckpointStore, Warn
from ._threads import Threads, Watchdog

_RANGE_ITERATOR = type(iter(range(0)))

__all__ = [
    "CallsFailed",
    "Emit",
    "Workers",
    "bar_class",
    "bar_options",
    "in_notebook",
    "logs_clear_of_bars",
    "run_plan",
]

Emit = Callable[[int, Any], None]
"""Called on the event loop with ``(index, result)`` as each call completes
(``(index, exception)`` for a failure, with ``errors="return"``)."""


class CallsFailed(ExceptionGroup[Exception]):
    """The failures of a run with ``errors="defer"``, raised once every call ran.

    An ``ExceptionGroup`` of the exceptions of the failed calls, each with a
    note naming its call; ``except*`` works on it. Every other result is saved,
    and a rerun computes only the failed calls.

    Examples
    --------
    >>> from thread_chunks import CallsFailed, chunk
    >>> def inverse(x):
    ...     return 1 / x
    >>> try:
    ...     chunk(inverse, [[1], [0]], errors="defer", progress_bar=False)
    ... except CallsFailed as failed:
    ...     print(failed.exceptions)
    (ZeroDivisionError('division by zero'),)
    """

    __module__ = "thread_chunks"


async def run_plan(
    plan: Plan,
    warn: Warn,
    emit: Emit | None = None,
    skip: Callable[[int], None] | None = None,
) -> list[Any]:
    """Run a checked :class:`Plan` and return its outputs in order.

    ``warn`` queues the run's warnings for the entry point to issue. ``skip``
    is told the index of each call that failed with ``errors="defer"``: it
    will have no result. ``emit``
    sees each result as it comes: first those of earlier runs, then each new
    one as its call completes.
    """
    n = len(plan.parameters)
    if n == 0:
        return []
    outputs: list[Any] = [None] * n
    store = None
    # Closed in reverse order, however the run ends: the calls, the executor,
    # the progress bar, and last the checkpoint, which saves what they left.
    async with AsyncExitStack() as stack:
        if plan.path is not None:
            # Saved as given: a mapping row stays a mapping (the store's
            # annotation says argument lists only).
            rows = cast("list[Sequence[Any]]", plan.parameters)
            store = await CheckpointStore.open(
                plan.path,
                plan.function,
                rows,
                plan.checkpoint_every,
                warn,
                reuse=plan.reuse,
                plain_rows=plan.plain_rows,
            )
            await stack.enter_async_context(store.running())
            outputs = store.saved_outputs()
        done = 0 if store is None else store.done  # calls saved before
        if emit is not None and done:
            assert store is not None
            saved = enumerate(outputs) if done == n else store.results.items()
            for i, result in saved:
                emit(i, result)
        bar = None
        if (options := bar_options(plan.progress_bar)) is not None:
            bar = open_bar(n, done, plan.func_name, options)
            # Closed first, then the log records go their usual way again.
            stack.enter_context(logs_clear_of_bars())
            stack.callback(bar.close)
        executor = await stack.enter_async_context(
            opened_executor(plan.executor, plan.chunk_size)
        )
        todo: Iterator[int] = iter(range(n))
        if done == n:
            todo = iter(())
        elif done:
            assert store is not None
            todo = filterfalse(store.results.__contains__, range(n))
        workers = Workers(plan, outputs, store, emit, bar, todo, skip)
        limiter = anyio.CapacityLimiter(plan.chunk_size)
        strategy: Strategy
        if executor is not None:
            sizes = BatchSizes(n - done, plan.chunk_size)
            stops = workers.first_failure_stops
            strategy = Batches(
                workers, limiter, executor, sizes, stops, timeout=plan.timeout
            )
        elif plan.on_ray:
            strategy = RayActors(workers, limiter, plan.timeout)
        elif plan.is_async:
            strategy = Coroutines(workers, plan.timeout)
        else:
            watchdog = None
            if plan.timeout is not None:
                watchdog = Watchdog(plan.timeout)
                stack.callback(watchdog.close)
            # Plain LabelledActors only call their function: runs at C speed.
            in_runs = (
                watchdog is None
                and not plan.keywords
                and all(type(actor) is LabelledActor for actor in plan.actors)
            )
            strategy = Threads(workers, limiter, in_runs, watchdog)
        workers.strategy = strategy
        try:
            async with anyio.create_task_group() as keeping:
                ended = anyio.Event()
                if isinstance(strategy, Threads):
                    keeping.start_soon(_stop_when_cancelled, workers, ended)
                if isinstance(strategy, Threads) and strategy.in_runs:
                    # Results before a slow call in a run are kept meanwhile.
                    keeping.start_soon(strategy.keep_results_of_runs, ended)
                async with anyio.create_task_group() as task_group:
                    for actor in plan.actors[: n - done]:
                        task_group.start_soon(strategy.work, actor)
                ended.set()
        finally:
            # The two refer to each other: part now, so that the run's state
            # is freed when the run ends, not by a slow collection later.
            del workers.strategy
    workers.raise_failures()
    return outputs


async def _stop_when_cancelled(workers: Workers, ended: anyio.Event) -> None:
    """Until ``ended``: stop the calls once the event loop sees the run cancelled.

    A worker thread checks for cancellation itself only after a slow call and
    after 32 tiny ones: one that is between calls when the run is cancelled
    would start tiny calls until then. The stop flag is checked before each
    call, or each run of tiny calls.
    """
    try:
        await ended.wait()
    except anyio.get_cancelled_exc_class():
        workers.stop()
        raise


class Workers:
    """The state of one run, shared by its worker tasks (see :class:`Calls`)."""

    strategy: Strategy

    def __init__(
        self,
        plan: Plan,
        outputs: list[Any],
        store: CheckpointStore | None,
        emit: Emit | None,
        bar: Any,
        todo: Iterator[int],
        skip: Callable[[int], None] | None = None,
    ) -> None:
        self.plan = plan
        self.outputs = outputs
        self.store = store
        self.emit = emit
        self.skip = skip
        self.bar = bar
        self._todo = todo
        self._given_back: list[int] = []
        """A heap of the calls taken and given back unstarted: taken first."""
        self._todo_lock = threading.Lock()
        self._stopped = False
        """Set, from any thread, when no further call may start."""
        self.stop_reasons: list[tuple[int, BaseException]] = []
        """The failures that stopped the run, first first."""
        self.deferred: list[tuple[int, Exception]] = []

    @property
    def parameters(self) -> Sequence[Row]:
        """The rows of the run: argument lists, or mappings of keyword arguments."""
        return self.plan.parameters

    @property
    def keywords(self) -> bool:
        """Whether any row is a mapping of keyword arguments."""
        return self.plan.keywords

    @property
    def streaming(self) -> bool:
        """Whether :meth:`reported` needs each result, not only how many."""
        return self.emit is not None

    @property
    def stopped(self) -> bool:
        """Whether no further call may start."""
        return self._stopped

    def stop(self, because: tuple[int, BaseException] | None = None) -> None:
        """Start no further call; ``because`` is the failure that ends the run."""
        self._stopped = True
        if because is not None:
            self.stop_reasons.append(because)

    def take(self, most: int) -> list[int]:
        """Take the indices of up to ``most`` calls to make, from any thread.

        Calls given back come first; the indices are in ascending order.
        """
        with self._todo_lock:
            return self._take(most)

    def _take(self, most: int) -> list[int]:
        back = self._given_back
        if not back:
            return list(islice(self._todo, most))
        taken = [heapq.heappop(back) for _ in range(min(most, len(back)))]
        return taken + list(islice(self._todo, most - len(taken)))

    def take_one(self) -> int | None:
        """Take the index of the next call to make, from any thread."""
        with self._todo_lock:
            if self._given_back:
                return heapq.heappop(self._given_back)
            return next(self._todo, None)

    def take_run(self, most: int) -> Sequence[int]:
        """Take up to ``most`` indices at once, from any thread, in order.

        While no call was done before, they are consecutive: a ``range``.
        """
        with self._todo_lock:
            todo = self._todo
            if self._given_back or type(todo) is not _RANGE_ITERATOR:
                return self._take(most)
            n = len(self.plan.parameters)
            first = n - length_hint(todo)
            last = min(first + most, n)
            self._todo = iter(range(last, n))  # the rest: skipped at once
            return range(first, last)

    def give_back(self, indices: Sequence[int]) -> None:
        """Give back calls taken but not started: the next taken, in order."""
        with self._todo_lock:
            for i in indices:
                heapq.heappush(self._given_back, i)

    @property
    def first_failure_stops(self) -> bool:
        """Whether the first failure of a call (an Exception) ends the run."""
        return self.plan.errors == "raise" and self.plan.retries == 0

    def stops_the_run(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by a call's first attempt, ends the run."""
        return not isinstance(exc, Exception) or self.first_failure_stops

    def completed(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """Keep the results of the calls ``indices`` (in ascending order)."""
        first, outputs = indices[0], self.outputs
        if indices[-1] - first + 1 == len(indices):  # a run of calls: at C speed
            outputs[first : first + len(indices)] = results
        else:
            for i, result in zip(indices, results, strict=True):
                outputs[i] = result
        if self.store is not None:
            self.store.record_many(indices, results)

    def completed_one(self, index: int, result: Any) -> None:
        """Keep the result of call ``index``, as :meth:`completed` does."""
        self.outputs[index] = result
        if self.store is not None:
            self.store.record(index, result)

    def reported(self, indices: Sequence[int], results: Sequence[Any]) -> None:
        """Show kept results: stream them, and move the progress bar."""
        if self.emit is not None:
            for i, result in zip(indices, results, strict=True):
                self.emit(i, result)
        if self.bar is not None:
            self.bar.update(len(indices))

    async def failed(self, actor: Any, index: int, exc: BaseException) -> bool:
        """Retry call ``index``, which raised ``exc`` once; return whether to go on."""
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit...
            self.stop((index, exc))
            return False
        attempts = 1
        # Once the run stops, no attempt starts: the failure is kept as it is.
        while attempts <= self.plan.retries and not self._stopped:
            # Exponential backoff with jitter; cancellation cuts it short.
            delay = self.plan.retry_delay * 2 ** (attempts - 1)
            await anyio.sleep(delay * random.uniform(0.5, 1.5))
            try:
                result = await self.strategy.call(actor, index)
            except anyio.get_cancelled_exc_class():
                raise
            except Exception as again:
                exc, attempts = again, attempts + 1
            except BaseException as stopping:
                self.stop((index, stopping))
                return False
            else:
                self.completed([index], [result])
                self.reported([index], [result])
                return True
        if attempts <= self.plan.retries:  # cut short: if cancelled, not a failure
            await anyio.lowlevel.checkpoint_if_cancelled()
        return self._give_up(index, exc, attempts)

    def _give_up(self, index: int, exc: Exception, attempts: int) -> bool:
        """Handle call ``index``'s failure after ``attempts`` as ``errors`` says.

        Returns whether the run goes on.
        """
        self._note(index, exc)
        if self.store is not None:
            self.store.record_failure(index, CallFailure.of(exc, attempts))
        if self.plan.errors == "raise":
            self.stop((index, exc))
            return False
        if self.plan.errors == "defer":
            self.deferred.append((index, exc))
            if self.skip is not None:
                self.skip(index)
        else:  # "return"
            self.outputs[index] = exc
            if self.emit is not None:
                self.emit(index, exc)
        if self.bar is not None:
            self.bar.update()
        return True

    def _note(self, i: int, exc: BaseException) -> None:
        row = self.plan.parameters[i]
        stars = "**" if isinstance(row, Mapping) else "*"
        exc.add_note(
            f"raised by call {i}: {self.plan.func_name}({stars}parameters[{i}]) "
            f"with parameters[{i}] = {reprlib.repr(row)}"
        )

    def raise_failures(self) -> None:
        """Raise what stopped the run, or the deferred failures as a group."""
        if self.stop_reasons:
            i, exc = self.stop_reasons[0]
            if not isinstance(exc, Exception):
                self._note(i, exc)
            for j, other in self.stop_reasons[1:]:
                exc.add_note(f"call {j} failed too: {type(other).__name__}: {other}")
            raise exc
        if self.deferred:
            n = len(self.plan.parameters)
            failed = sorted(self.deferred, key=lambda pair: pair[0])
            raise CallsFailed(
                f"{len(failed)} of {n} calls failed; every other result is "
                "saved, and a rerun computes only the failed ones",
                [exc for _, exc in failed],
            )


# The progress bar. By default a bar is shown where someone watches: when
# stderr is a terminal, or in a Jupyter kernel; not when stderr is a file or a
# pipe (a batch job's log, a web app's logs), as tqdm's own ``disable=None``
# decides. While a bar is shown, the records of the ``thread_chunks`` logger
# reach the handlers they would have reached anyway, with the bars cleared
# first and redrawn after, so that a record never glues onto a bar's line. In
# a notebook, the widget's text form, which a saved notebook shows, is left in
# its final state.

_logger = logging.getLogger("thread_chunks")


def bar_options(
    progress_bar: bool | Mapping[str, Any] | None,
) -> Mapping[str, Any] | None:
    """The tqdm keyword arguments of the bar, or ``None`` for no bar.

    ``None`` (``config.progress_bar``'s default) shows one on a terminal or
    in a notebook; ``True`` or a dict always does; ``False`` never.
    """
    if isinstance(progress_bar, Mapping):
        return dict(progress_bar)
    if progress_bar is None:
        progress_bar = in_notebook() or _is_terminal(sys.stderr)
    return {} if progress_bar else None


def _is_terminal(stream: Any) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if isatty is not None else False
    except (OSError, ValueError):  # a closed or detached stream
        return False


def open_bar(
    total: int, already_done: int, name: str, options: Mapping[str, Any]
) -> Any:
    """A bar of ``total`` calls, ``already_done`` of them before; tqdm's options."""
    description = name
    if already_done:
        description += f" (resumed, {already_done} done before)"
    arguments = {
        "total": total,
        "initial": already_done,
        "desc": description,
        "unit": "call",
    }
    return bar_class()(**(arguments | dict(options)))


def bar_class() -> Any:
    """The widget bar in a Jupyter kernel with ipywidgets, else the text bar.

    ``tqdm.auto`` would warn "IProgress not found" on every run in a kernel
    without ipywidgets, where the text bar works well.
    """
    if in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            return _notebook_bar()
    from tqdm.std import tqdm

    return tqdm


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, as ``tqdm.autonotebook`` decides."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


_NotebookBar: Any = None


def _notebook_bar() -> Any:
    """``tqdm.notebook.tqdm``, whose saved output shows where it ended.

    tqdm's widget shows itself once, so the text that a saved notebook
    shows in place of the widget is the bar as it started (``0/n``). This
    one shows itself with a display id and, when closed, updates that
    display, text included, to the bar's final state.
    """
    global _NotebookBar
    if _NotebookBar is not None:
        return _NotebookBar
    from tqdm.notebook import tqdm as notebook_tqdm

    class NotebookBar(notebook_tqdm):  # type: ignore[misc]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            here = kwargs.pop("display", True)
            super().__init__(*args, display=False, **kwargs)
            self._display_handle: Any = None
            if here and not self.disable and self.delay <= 0:
                from IPython.display import display as untyped

                display: Any = untyped
                self._display_handle = display(self.container, display_id=True)
                self.displayed = True

        def close(self) -> None:
            super().close()
            handle, self._display_handle = self._display_handle, None
            if handle is not None:
                if self.leave:
                    handle.update(self.container)
                else:
                    handle.update({"text/plain": ""}, raw=True)

    _NotebookBar = NotebookBar
    return NotebookBar


class _AroundBars(logging.Handler):
    """The one handler of the ``thread_chunks`` logger while bars are shown.

    It hands each record to the handlers that would have had it (the
    logger's own, then its ancestors' as propagation goes, or Python's last
    resort if there are none), with every bar cleared meanwhile.
    """

    def __init__(self, handlers: list[logging.Handler], propagate: bool) -> None:
        super().__init__()
        self.handlers = handlers
        self.propagate = propagate

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm.std import tqdm

        with tqdm.external_write_mode(file=sys.stderr):
            found = 0
            handlers = self.handlers
            parent = _logger.parent if self.propagate else None
            while True:
                for handler in handlers:
                    found += 1
                    if record.levelno >= handler.level:
                        handler.handle(record)
                if parent is None:
                    break
                handlers = parent.handlers
                parent = parent.parent if parent.propagate else None
            last = logging.lastResort
            if not found and last is not None and record.levelno >= last.level:
                last.handle(record)


_lock = threading.Lock()
_runs_with_bars = 0
_saved: tuple[list[logging.Handler], bool] = ([], True)


@contextmanager
def logs_clear_of_bars() -> Iterator[None]:
    """While inside, records of ``thread_chunks`` never glue onto a bar's line.

    Runs at the same time share one routing; the last to leave restores the
    logger's handlers and propagation as they were.
    """
    global _runs_with_bars, _saved
    with _lock:
        if _runs_with_bars == 0:
            _saved = (_logger.handlers, _logger.propagate)
            _logger.handlers = [_AroundBars(*_saved)]
            _logger.propagate = False
        _runs_with_bars += 1
    try:
        yield
    finally:
        with _lock:
            _runs_with_bars -= 1
            if _runs_with_bars == 0:
                _logger.handlers, _logger.propagate = _saved
