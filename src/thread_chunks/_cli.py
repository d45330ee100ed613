"""The command line: ``thread-chunks show PATH... [--json] [--watch [SECONDS]]``.

One path gets the detailed report; several get a line each and a total.
``--watch`` reads again every few seconds until no run shown is running:
on a terminal it redraws in place, elsewhere (a log, a pipe) it prints a
new block each time. Ctrl-C ends it with status 0.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from thread_chunks import __version__

from ._report import Progress, progress

__all__ = ["main"]

WATCH_EVERY = 2.0
"""Seconds between two readings with ``--watch`` and no number."""

Reading = tuple[str, Progress | str]
"""A path and its report, or why it cannot be read."""
Render = Callable[[Sequence[Reading]], tuple[str, int]]
"""Readings to the text shown and the exit status."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="thread-chunks",
        description="Inspect thread-chunks checkpoints, or convert old ones.",
    )
    parser.add_argument(
        "--version", action="version", version=f"thread-chunks {__version__}"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser(
        "show", help="how far checkpoints have got (it only reads the files)"
    )
    # "*": ``--watch PATH`` takes the path for the seconds, given back below.
    show.add_argument("paths", nargs="*", metavar="PATH", help="checkpoint files")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument(
        "--watch",
        nargs="?",
        const=str(WATCH_EVERY),
        metavar="SECONDS",
        help=f"read again every SECONDS (default {WATCH_EVERY:g}) until no run "
        "shown is running; Ctrl-C stops",
    )
    convert = commands.add_parser(
        "convert",
        help="rewrite a checkpoint of thread-chunks 1.x or of format 1 in the "
        "current format (it loads the file: only for files you trust)",
    )
    convert.add_argument("path", metavar="PATH", help="the checkpoint file")
    arguments = parser.parse_args(argv)
    if arguments.command == "convert":
        return _convert(arguments.path)
    paths: list[str] = arguments.paths
    every = arguments.watch
    if every is not None:
        try:
            every = float(every)
        except ValueError:  # --watch PATH: a path, not the seconds
            paths, every = [every, *paths], WATCH_EVERY
        if not every > 0:
            show.error(f"--watch takes a number of seconds > 0, got {every}")
    if not paths:
        show.error("the following arguments are required: PATH")
    render: Render = _json if arguments.json else _human
    if every is None:
        readings = _read(paths)
        text, status = render(readings)
        if status and len(paths) == 1:  # one path: a one-line error on stderr
            sys.stderr.write(f"thread-chunks: {readings[0][1]}\n")
            return status
        sys.stdout.write(text + "\n")
        return status
    return _watch(paths, render, every, sys.stdout, arguments.json)


def _read(paths: Sequence[str]) -> list[Reading]:
    readings: list[Reading] = []
    for path in paths:
        try:
            readings.append((path, progress(path)))
        except (OSError, ValueError) as exc:
            readings.append((path, str(exc)))
    return readings


def _watch(
    paths: Sequence[str], render: Render, every: float, out: TextIO, as_json: bool
) -> int:
    """Show the readings again every ``every`` seconds until no run is running."""
    redraw = out.isatty() and not as_json
    height = 0  # of the block shown last
    status = 0
    try:
        while True:
            readings = _read(paths)
            text, status = render(readings)
            if redraw:
                text = _fit(text)
                if height:  # back up over the last block, and clear it
                    out.write(f"\x1b[{height}A\r\x1b[J")
            elif height and not as_json:
                out.write("\n")  # a new block, after a blank line
            out.write(text + "\n")
            out.flush()
            height = text.count("\n") + 1
            if not any(
                isinstance(report, Progress) and report.running
                for _, report in readings
            ):
                return status
            time.sleep(every)
    except KeyboardInterrupt:
        return status


def _fit(text: str) -> str:
    """Cut lines to the terminal's width, so that a redraw counts lines right."""
    width = shutil.get_terminal_size().columns
    return "\n".join(line[:width] for line in text.split("\n"))


def _human(readings: Sequence[Reading]) -> tuple[str, int]:
    """The text of the readings and the exit status (2 if one cannot be read)."""
    status = 2 if any(isinstance(r, str) for _, r in readings) else 0
    if len(readings) == 1:
        _, report = readings[0]
        return (report if isinstance(report, str) else _detailed(report)), status
    return _table(readings), status


def _detailed(report: Progress) -> str:
    lines = [
        f"checkpoint  {report.path}",
        f"function    {report.function}",
        f"done        {report.done} of {report.total} ({_percent(report)})",
        f"failures    {report.failures}",
    ]
    width = shutil.get_terminal_size().columns
    for index, kind, message, arguments in report.first_failures:
        lines.append(f"  call {index}: {kind}: {message}")
        if arguments:  # the parameters of the call, cut to the terminal's width
            lines.append(f"    with {arguments}"[:width])
    lines.append(f"size        {_size(report.size_bytes)}")
    if report.last_write is not None:
        written = report.last_write.strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"last write  {written} ({_ago(report.last_write)})")
    lines.append(f"running     {_running(report)}")
    if report.rate_per_s is not None:
        eta = "unknown" if report.eta_s is None else _duration(report.eta_s)
        lines.append(f"rate        {report.rate_per_s:.3g} calls/s, ETA {eta}")
    return "\n".join(lines)


def _table(readings: Sequence[Reading]) -> str:
    """One line per checkpoint under a header, then a total line."""
    header = ["checkpoint", "function", "done", "", "failures", "running"]
    rows: list[list[str] | str] = []
    for path, report in readings:
        if isinstance(report, str):
            rows.append(f"{path}  cannot be read: {report}")
            continue
        row = [
            path,
            report.function,
            f"{report.done}/{report.total}",
            _percent(report),
            str(report.failures),
            _running(report),
            "" if report.last_write is None else _ago(report.last_write),
        ]
        if report.rate_per_s is not None:
            eta = "unknown" if report.eta_s is None else _duration(report.eta_s)
            row.append(f"{report.rate_per_s:.3g} calls/s, ETA {eta}")
        rows.append(row)
    cells = [header] + [row for row in rows if isinstance(row, list)]
    widths = [max(len(row[k]) for row in cells) for k in range(len(header))]

    def line(row: list[str]) -> str:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        return "  ".join(padded + row[len(widths) :]).rstrip()

    lines = [line([*header, "last write"])]
    lines += [row if isinstance(row, str) else line(row) for row in rows]
    reports = [r for _, r in readings if isinstance(r, Progress)]
    done, total = sum(r.done for r in reports), sum(r.total for r in reports)
    failures = sum(r.failures for r in reports)
    running = sum(bool(r.running) for r in reports)
    percent = f"{100 * done / total:.1f}%" if total else "100.0%"
    lines.append(
        f"total: {done} of {total} calls done ({percent}), {failures} "
        f"failure{'' if failures == 1 else 's'}, {running} of {len(reports)} "
        "running"
    )
    return "\n".join(lines)


def _json(readings: Sequence[Reading]) -> tuple[str, int]:
    """One JSON document: an object for one path; for several, a list and a total."""
    status = 2 if any(isinstance(r, str) for _, r in readings) else 0
    if len(readings) == 1 and isinstance(readings[0][1], Progress):
        return json.dumps(as_json(readings[0][1])), status
    reports = [r for _, r in readings if isinstance(r, Progress)]
    data = {
        "checkpoints": [
            as_json(report) if isinstance(report, Progress)
            else {"path": path, "error": report}
            for path, report in readings
        ],
        "total": {
            "done": sum(r.done for r in reports),
            "total": sum(r.total for r in reports),
            "failures": sum(r.failures for r in reports),
            "running": sum(bool(r.running) for r in reports),
        },
    }  # fmt: skip
    return json.dumps(data), status


def as_json(report: Progress) -> dict[str, Any]:
    """``report`` as JSON data, each of its first failures an object."""
    return report.as_json()


def _convert(path: str) -> int:
    """Rewrite the checkpoint at ``path`` in the current format, in place.

    The file is loaded (which runs code from it: only for trusted files),
    then saved atomically; a checkpoint that is in the current format already
    is left as it is.
    """
    from ._checkpoint import Checkpoint
    from ._journal import OPENING, locate

    resolved = locate(path)
    try:
        with open(resolved, "rb") as file:
            current = file.read(len(OPENING)) == OPENING
        if current:
            sys.stdout.write(f"{resolved}: in the current format already\n")
            return 0
        checkpoint = Checkpoint.load(resolved)
        checkpoint.save(resolved)
    except Exception as exc:
        sys.stderr.write(f"thread-chunks: cannot convert {resolved!r}: {exc}\n")
        return 2
    sys.stdout.write(
        f"{resolved}: converted, {checkpoint.done} of "
        f"{len(checkpoint.parameters)} calls done\n"
    )
    return 0


def _percent(report: Progress) -> str:
    return f"{100 * report.done / report.total if report.total else 100.0:.1f}%"


def _running(report: Progress) -> str:
    return {True: "yes", False: "no", None: "unknown"}[report.running]


def _ago(when: datetime) -> str:
    return f"{_duration((datetime.now(UTC) - when).total_seconds())} ago"


def _size(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"  # pragma: no cover


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
