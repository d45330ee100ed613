import re
import subprocess
import sys

from thread_chunks import chunk


def inverse(x):
    return 1 / x


chunk(inverse, [[x] for x in (4, 2, 0, 1)], errors="return", path="sweep.pkl",
      progress_bar=False)  # fmt: skip
chunk(inverse, [[x] for x in (5, 8, 10)], path="other.pkl", progress_bar=False)


def show(*arguments):
    """Run ``thread-chunks show``; print what it prints."""
    shown = subprocess.run(
        [sys.executable, "-m", "thread_chunks", "show", *arguments],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    # The time and the file sizes differ from run to run: fixed here.
    shown = re.sub(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", "2026-11-29 10:00:00 UTC", shown
    )
    shown = re.sub(r"\d+ s ago", "12 s ago", shown)
    shown = re.sub(
        r'"last_write": "[^"]*"', '"last_write": "2026-11-29T10:00:00+00:00"', shown
    )
    shown = re.sub(r"(size +)\d.*", r"\g<1>1.1 KB", shown)
    shown = re.sub(r'"size_bytes": \d+', '"size_bytes": 1100', shown)
    print(f"$ thread-chunks show {' '.join(arguments)}")
    print(shown)


show("sweep.pkl")
show("sweep.pkl", "--json")
show("sweep.pkl", "other.pkl")
