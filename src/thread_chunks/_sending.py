"""Calls on an executor, sent a batch at a time (see ``_batches``).

Each worker task sends a batch, waits for it without parking a thread, keeps
its results the moment it returns, and sends the next, sized from the time
the last ones took. With one batch per worker task, no more than
``chunk_size`` calls ever run at once, and no call starts once a failure or
a cancellation is seen.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import TYPE_CHECKING, Any

import anyio
import anyio.lowlevel

from ._batches import unpack
from ._executor import wait_for_future
from ._remote import pickle_arguments, run_batch

if TYPE_CHECKING:
    from ._workers import Workers

__all__ = ["work_in_batches"]


async def work_in_batches(
    workers: Workers, actor: Any, todo: Iterator[int], bar: Any
) -> None:
    """Send calls to the executor a batch at a time (see ``_batches``).

    Each batch's results are kept the moment it returns; its failures are
    then retried one call at a time, or handled as ``errors`` says.
    """
    assert workers.executor is not None
    submit, func = workers.executor.submit, actor.get_func()
    # Whether a failure ends the run, and whether the batches cross processes.
    stop_at_failure = workers.first_failure_stops
    pickled = not isinstance(workers.executor, ThreadPoolExecutor)
    while not workers.stopping:
        await anyio.lowlevel.checkpoint_if_cancelled()
        batch = list(islice(todo, workers.batch_sizes.next_size()))
        if not batch:
            return
        arguments: Any = [workers.plan.parameters[i] for i in batch]
        if pickled:
            arguments = pickle_arguments(arguments)
        try:
            async with workers.limiter:
                sent_at = time.perf_counter()
                future = submit(run_batch, func, arguments, stop_at_failure)
                sent = await wait_for_future(future)
                # The round trip: what the batch cost, sending included.
                seconds = time.perf_counter() - sent_at
        except Exception as exc:  # not a call: the batch failed (a dead worker)
            exc.add_note(
                f"raised by the executor running calls {batch[0]} to "
                f"{batch[-1]} as one batch; the results of the calls that "
                "completed before it are saved"
            )
            workers.stopping.append((batch[0], exc))
            return
        if not await _keep_batch(workers, actor, batch, sent, seconds, bar):
            return


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
