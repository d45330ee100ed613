"""Quickstart: chunking with a checkpoint and a progress bar, then a resume.

Run it with ``python examples/quickstart.py``. The first run is interrupted on
purpose halfway through; the second run picks up where it stopped.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from thread_chunks import Checkpoint, chunk

logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")


crash_at: int | None = 20  # pretend the machine dies at this call


def simulate(x: int, y: int) -> int:
    """A stand-in for real work: slow, memory-light, releases the GIL."""
    if x == crash_at:
        raise RuntimeError(f"simulated crash at x == {x}")
    time.sleep(0.05)
    return x * y


parameters = [[x, x + 1] for x in range(40)]
path = Path(tempfile.mkdtemp()) / "quickstart.pkl"

print(f"First run, checkpointing to {path}; it will crash partway.")
try:
    # progress_bar=True: a bar even where stderr is not a terminal (a pipe, a
    # log file), where it is hidden by default.
    chunk(simulate, parameters, chunk_size=4, path=path, progress_bar=True)
except RuntimeError as exc:
    print(f"Crashed: {exc}")

checkpoint = Checkpoint.load(path)
print(f"Saved before the crash: {checkpoint.done} of {len(parameters)} results.")

print("Second run: only the missing calls are computed.")
crash_at = None
results = chunk(simulate, parameters, chunk_size=4, path=path, progress_bar=True)
assert results == [x * (x + 1) for x in range(40)]
print(f"Done: {results[:5]} ... {results[-1]}")
print(f"Checkpoint now holds {Checkpoint.load(path).done} results.")
