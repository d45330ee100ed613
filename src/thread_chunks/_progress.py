"""The progress bar: a plain tqdm bar driven from the event loop thread."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["open_progress_bar"]


def open_progress_bar(
    total: int, initial: int, description: str, options: Mapping[str, Any]
) -> Any:
    """Open a bar over ``total`` calls of which ``initial`` are already done.

    ``options`` are tqdm keyword arguments, merged over ours. tqdm is imported
    here, so that runs without a bar do not pay for the import.
    """
    if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
        from tqdm.notebook import tqdm
    else:
        # tqdm.auto would warn "IProgress not found" on every run in a kernel
        # without ipywidgets: the text bar works there, quietly.
        from tqdm.std import tqdm
    arguments = {
        "total": total,
        "initial": initial,
        "desc": description,
        "unit": "call",
    }
    return tqdm(**(arguments | dict(options)))


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, as ``tqdm.autonotebook`` decides."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
