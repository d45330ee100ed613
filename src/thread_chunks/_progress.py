"""The progress bar: a plain tqdm bar driven from the event loop thread."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["bar_class", "open_progress_bar"]


def open_progress_bar(
    total: int, initial: int, description: str, options: Mapping[str, Any]
) -> Any:
    """Open a bar over ``total`` calls of which ``initial`` are already done.

    ``options`` are tqdm keyword arguments, merged over ours. tqdm is imported
    here, so that runs without a bar do not pay for the import.
    """
    arguments = {
        "total": total,
        "initial": initial,
        "desc": description,
        "unit": "call",
    }
    return bar_class()(**(arguments | dict(options)))


def bar_class() -> Any:
    """The widget bar in a Jupyter kernel with ipywidgets, else the text bar.

    ``tqdm.auto`` would warn "IProgress not found" on every run in a kernel
    without ipywidgets, where the text bar works well.
    """
    if _in_notebook():
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            pass
        else:
            from tqdm.notebook import tqdm as notebook_tqdm

            return notebook_tqdm
    from tqdm.std import tqdm

    return tqdm


def _in_notebook() -> bool:
    """Whether this process is a Jupyter kernel, as ``tqdm.autonotebook`` decides."""
    ipython = sys.modules.get("IPython")
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if get_ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})
