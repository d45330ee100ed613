"""Calls on an executor, sent a batch at a time (see ``_batches``).

Each worker task sends a batch, waits for it without parking a thread, keeps
its results the moment it returns, and sends the next, sized from the time
the last ones took. A batch can wait in the executor's queue behind the one
running, when that cannot make more than ``chunk_size`` calls run at once.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._batches import queues_safely, unpack
from ._executor import wait_for_future
from ._remote import run_batch

if TYPE_CHECKING:
    from ._workers import Workers

__all__ = ["work_in_batches"]


async def work_in_batches(
    workers: Workers, actor: Any, todo: Iterator[int], bar: Any
) -> None:
    """Send calls to the executor in batches (see ``_batches``).

    Each batch's results are kept the moment it returns; its failures are
    then retried one call at a time, or handled as ``errors`` says. When
    the executor has no more workers than ``chunk_size``, the next batch
    waits in its queue while one runs, so that no worker idles while our
    process sends and receives batches.
    """
    assert workers.executor is not None
    submit, func = workers.executor.submit, actor.get_func()
    # Whether a failure ends the run, and whether results must be pickled.
    stop_at_failure = workers.first_failure_stops
    pickled = not isinstance(workers.executor, ThreadPoolExecutor)
    depth = 2 if queues_safely(workers.executor, workers.plan.chunk_size) else 1
    in_flight: deque[tuple[list[int], Future[Any]]] = deque()

    def withdraw_next() -> None:
        for _, queued in list(in_flight)[1:]:
            queued.cancel()

    since = time.perf_counter()
    try:
        while True:
            while len(in_flight) < depth and not workers.stopping:
                await anyio.lowlevel.checkpoint_if_cancelled()
                batch = list(islice(todo, workers.batch_sizes.next_size()))
                if not batch:
                    break
                arguments = [workers.plan.parameters[i] for i in batch]
                future = submit(run_batch, func, arguments, stop_at_failure, pickled)
                in_flight.append((batch, future))
            if not in_flight:
                return
            batch, future = in_flight[0]
            try:
                async with workers.limiter:
                    # Cancelled: withdraw the batch queued behind this one now.
                    sent = await wait_for_future(future, on_cancel=withdraw_next)
            except Exception as exc:  # not a call: the batch failed (a dead worker)
                exc.add_note(
                    f"raised by the executor running calls {batch[0]} to "
                    f"{batch[-1]} as one batch; the results of the calls that "
                    "completed before it are saved"
                )
                workers.stopping.append((batch[0], exc))
                return
            in_flight.popleft()
            # What the batch cost: from its sending, or from the end of
            # the one before it, which it waited behind.
            now = time.perf_counter()
            seconds, since = now - since, now
            if not await _keep_batch(workers, actor, batch, sent, seconds, bar):
                return
    finally:
        with anyio.CancelScope(shield=True):
            await _settle(workers, in_flight)


async def _keep_batch(
    workers: Workers,
    actor: Any,
    batch: list[int],
    sent: Any,
    seconds: float,
    bar: Any,
) -> bool:
    """Keep what a batch sent back; return whether to go on."""
    outcome = unpack(sent)
    ran, results = batch[: len(outcome.results)], outcome.results
    workers.batch_sizes.learn(len(ran), seconds)
    if outcome.failures:  # keep the others' results first
        failed = {position for position, _, _ in outcome.failures}
        kept = [p for p in range(len(ran)) if p not in failed]
        ran, results = [ran[p] for p in kept], [results[p] for p in kept]
    workers.completed_many(ran, results)
    if bar is not None:
        bar.update(len(ran))
    for position, exc, _ in outcome.failures:
        if not await workers.after_failure(actor, batch[position], exc, bar):
            return False
    return True


async def _settle(
    workers: Workers, in_flight: deque[tuple[list[int], Future[Any]]]
) -> None:
    """The run stops: withdraw the batches still queued, keep the others'
    results once they end (their failures are left for a rerun)."""
    for batch, future in in_flight:
        if future.cancel():
            continue
        try:
            outcome = unpack(await wait_for_future(future, withdraw=False))
        except Exception:
            continue  # the batch itself failed (a broken pool): nothing to keep
        failed = {position for position, _, _ in outcome.failures}
        kept = [p for p in range(len(outcome.results)) if p not in failed]
        workers.completed_many(
            [batch[p] for p in kept], [outcome.results[p] for p in kept]
        )
