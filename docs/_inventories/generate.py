"""Write the intersphinx inventories that the docs link with.

The docs build offline (CI has no network), so instead of fetching each
project's ``objects.inv`` we ship small ones listing the objects our pages and
docstrings refer to, with their addresses in those projects' documentation.
Run ``python docs/_inventories/generate.py`` after adding an entry.
"""

from __future__ import annotations

import zlib
from pathlib import Path

HERE = Path(__file__).parent

PY = "library/"
INVENTORIES: dict[str, dict[str, tuple[str, str]]] = {
    "python": {
        "concurrent.futures.Executor": ("py:class", PY + "concurrent.futures.html#$"),
        "concurrent.futures.ProcessPoolExecutor": (
            "py:class",
            PY + "concurrent.futures.html#$",
        ),
        "concurrent.futures.ThreadPoolExecutor": (
            "py:class",
            PY + "concurrent.futures.html#$",
        ),
        "functools.partial": ("py:function", PY + "functools.html#$"),
        "logging": ("py:module", PY + "logging.html#module-$"),
        "os.PathLike": ("py:class", PY + "os.html#$"),
        "pickle": ("py:module", PY + "pickle.html#module-$"),
        "warnings": ("py:module", PY + "warnings.html#module-$"),
        "signal": ("py:module", PY + "signal.html#module-$"),
        "asyncio.gather": ("py:function", PY + "asyncio-task.html#$"),
        "ExceptionGroup": ("py:exception", PY + "exceptions.html#$"),
        "KeyboardInterrupt": ("py:exception", PY + "exceptions.html#$"),
        "OSError": ("py:exception", PY + "exceptions.html#$"),
        "RuntimeError": ("py:exception", PY + "exceptions.html#$"),
        "TypeError": ("py:exception", PY + "exceptions.html#$"),
        "ValueError": ("py:exception", PY + "exceptions.html#$"),
        "Warning": ("py:exception", PY + "exceptions.html#$"),
    },
    "anyio": {
        "anyio.CapacityLimiter": ("py:class", "api.html#$"),
        "anyio.Lock": ("py:class", "api.html#$"),
        "anyio.run": ("py:function", "api.html#$"),
        "anyio.to_thread.run_sync": ("py:function", "api.html#$"),
        "anyio.from_thread.start_blocking_portal": ("py:function", "api.html#$"),
    },
    "tqdm": {
        "tqdm.tqdm": ("py:class", "docs/tqdm/"),
        "tqdm.notebook.tqdm": ("py:class", "docs/notebook/"),
    },
    "distributed": {
        "distributed.Client": ("py:class", "api.html#$"),
        "distributed.Client.get_executor": ("py:method", "api.html#$"),
        "distributed.LocalCluster": ("py:class", "api.html#$"),
    },
}


def write(project: str, entries: dict[str, tuple[str, str]]) -> None:
    """Write ``<project>.inv`` in the format of Sphinx inventories, version 2."""
    header = (
        "# Sphinx inventory version 2\n"
        f"# Project: {project}\n"
        "# Version: \n"
        "# The remainder of this file is compressed using zlib.\n"
    )
    lines = "".join(
        f"{name} {role} 1 {uri} -\n" for name, (role, uri) in sorted(entries.items())
    )
    (HERE / f"{project}.inv").write_bytes(
        header.encode() + zlib.compress(lines.encode())
    )


if __name__ == "__main__":
    for project, entries in INVENTORIES.items():
        write(project, entries)
