"""The command line: ``thread-chunks show PATH [--json]``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from ._report import Progress, progress

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = argparse.ArgumentParser(
        prog="thread-chunks", description="Inspect thread-chunks checkpoints."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser(
        "show", help="how far a checkpoint has got (it only reads the file)"
    )
    show.add_argument("path", help="the checkpoint file")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    arguments = parser.parse_args(argv)
    try:
        report = progress(arguments.path)
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"thread-chunks: {exc}\n")
        return 2
    # A command's output: the one place where the library writes to stdout.
    output = json.dumps(report.as_json()) if arguments.json else _human(report)
    sys.stdout.write(output + "\n")
    return 0


def _human(report: Progress) -> str:
    percent = 100 * report.done / report.total if report.total else 100.0
    lines = [
        f"checkpoint  {report.path}",
        f"function    {report.function}",
        f"done        {report.done} of {report.total} ({percent:.1f}%)",
        f"failures    {report.failures}",
    ]
    lines += [
        f"  call {index}: {kind}: {message}"
        for index, kind, message in report.first_failures
    ]
    lines.append(f"size        {_size(report.size_bytes)}")
    if report.last_write is not None:
        ago = (datetime.now(UTC) - report.last_write).total_seconds()
        written = report.last_write.strftime("%Y-%m-%d %H:%M:%S UTC")
        lines.append(f"last write  {written} ({_duration(ago)} ago)")
    running = {True: "yes", False: "no", None: "unknown"}[report.running]
    lines.append(f"running     {running}")
    if report.rate_per_s is not None:
        eta = "unknown" if report.eta_s is None else _duration(report.eta_s)
        lines.append(f"rate        {report.rate_per_s:.3g} calls/s, ETA {eta}")
    return "\n".join(lines)


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
