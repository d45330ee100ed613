"""A child process for the crash tests: a checkpointed run that logs what it does.

Usage: python child.py PATH LOG N CHUNK_SIZE DELAY [PAD [RUNNER [HANG_FROM]]]

Each call ``work(i)`` logs ``start i``, waits ``DELAY`` seconds (the work), logs
``done i`` and returns ``i * i``. Each journal write logs ``committed i,j,...``
once its fsync has returned. Lines are appended with one ``write`` each. With
``PAD`` > 0 every argument list carries ``PAD`` extra bytes, for a large header.
``RUNNER`` is ``chunk`` (the default), ``iter`` (``chunk_iter``),
``coroutine`` (``chunk`` of a coroutine function that calls ``work``), or
``asyncio`` or ``trio`` to run ``achunk`` under ``anyio.run`` with that
backend, or ``processes`` or ``pool`` to run the calls with ``chunk`` on
``executor="processes"`` or on a standard ``ProcessPoolExecutor`` whose
initializer is ``ignore_sigint``. With ``HANG_FROM`` >= 0, calls before it
return at once and the others wait ``DELAY`` seconds in C code
(``time.sleep``), where no Python line runs.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from typing import Any


def process_work(
    log_path: str, delay: float, hang_from: int, i: int, *padding: bytes
) -> int:
    """``work`` for worker processes: the log is opened by its path."""
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, f"start {i}\n".encode())
        time.sleep(0 if 0 <= i < hang_from else delay)
        os.write(fd, f"done {i}\n".encode())
    finally:
        os.close(fd)
    return i * i


def main(
    path: str,
    log_path: str,
    n: int,
    chunk_size: int,
    delay: float,
    pad: int = 0,
    runner: str = "chunk",
    hang_from: int = -1,
) -> None:
    from functools import partial

    import anyio

    from thread_chunks import _journal, achunk, chunk

    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def log(line: str) -> None:
        os.write(log_fd, f"{line}\n".encode())

    class ToLog(logging.Handler):
        """The library's log messages, as lines ``logged <message>``."""

        def emit(self, record: logging.LogRecord) -> None:
            log(f"logged {record.getMessage()}")

    logging.getLogger("thread_chunks").addHandler(ToLog())

    append = _journal.Journal.append_runs

    def logged_append(self: Any, runs: Any, before_commit: Any = None) -> Any:
        unpicklable = append(self, runs, before_commit)
        indices = [i for run, _ in runs for i in run if i >= 0]
        log("committed " + ",".join(map(str, indices)))
        return unpicklable

    _journal.Journal.append_runs = logged_append  # type: ignore[method-assign]
    pause = threading.Event()

    def work(i: int, *padding: bytes) -> int:
        log(f"start {i}")
        if hang_from < 0:
            pause.wait(delay)
        elif i >= hang_from:
            time.sleep(delay)
        log(f"done {i}")
        return i * i

    async def coroutine_work(i: int, *padding: bytes) -> int:
        """``work`` as a coroutine; a hung one blocks the event loop itself."""
        await anyio.sleep(0.01)  # the writer starts meanwhile
        return work(i, *padding)

    parameters = [[i, bytes(pad)] if pad else [i] for i in range(n)]
    options: dict[str, Any] = {
        "chunk_size": chunk_size,
        "progress_bar": False,
        "path": path,
    }
    if runner == "chunk":
        chunk(work, parameters, **options)
    elif runner == "coroutine":
        chunk(coroutine_work, parameters, **options)
    elif runner == "iter":
        from thread_chunks import chunk_iter

        for _ in chunk_iter(work, parameters, **options):
            pass
    elif runner == "processes":
        func = partial(process_work, log_path, delay, hang_from)
        chunk(func, parameters, executor="processes", **options)
    elif runner == "pool":
        from concurrent.futures import ProcessPoolExecutor

        from thread_chunks import ignore_sigint

        func = partial(process_work, log_path, delay, hang_from)
        with ProcessPoolExecutor(chunk_size, initializer=ignore_sigint) as pool:
            chunk(func, parameters, executor=pool, **options)
    else:
        anyio.run(partial(achunk, work, parameters, **options), backend=runner)
    log("finished")


if __name__ == "__main__":
    # As a terminal's foreground process: Ctrl-C raises KeyboardInterrupt even
    # when the tests run as a background job, whose SIGINT is ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    main(
        sys.argv[1],
        sys.argv[2],
        int(sys.argv[3]),
        int(sys.argv[4]),
        float(sys.argv[5]),
        int(sys.argv[6]) if len(sys.argv) > 6 else 0,
        sys.argv[7] if len(sys.argv) > 7 else "chunk",
        int(sys.argv[8]) if len(sys.argv) > 8 else -1,
    )
