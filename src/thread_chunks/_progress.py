"""The progress bar: a plain tqdm bar driven from the event loop thread."""

from __future__ import annotations

from typing import Any

__all__ = ["open_progress_bar"]


def open_progress_bar(total: int, initial: int, description: str) -> Any:
    """Open a bar over ``total`` calls of which ``initial`` are already done.

    ``tqdm.auto`` shows a widget in Jupyter and a text bar elsewhere. It is
    imported here so that runs without a bar do not pay for the import.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="call")
