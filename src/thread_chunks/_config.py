"""Library-wide defaults, read whenever an argument is left as ``None``."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Config", "config"]


def _available_cpus() -> int:
    """Return the number of CPUs this process may run on (at least 1)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Config:
    """Defaults used by :func:`chunk`, :func:`achunk` and :class:`Chunker`.

    Change the attributes of the shared instance :data:`thread_chunks.config`;
    an argument passed explicitly always wins over these defaults.

    Attributes
    ----------
    default_chunk_size : int
        How many calls run at once when ``chunk_size`` is not given. Defaults
        to the number of CPUs this process may use.
    progress_bar : bool
        Whether a progress bar is shown when ``progress_bar`` is not given.
        Defaults to ``True``.
    ray_config : dict
        The keyword arguments of ``ray.init`` when thread-chunks starts Ray
        itself, which it does only when a ``RemoteLabelledActor`` is created
        and Ray is not running. Defaults to ``{"num_cpus": default_chunk_size}``.

    Examples
    --------
    >>> import thread_chunks
    >>> thread_chunks.config.progress_bar = False
    >>> thread_chunks.chunk(pow, [[2, 3], [3, 2]], chunk_size=2)
    [8, 9]
    >>> thread_chunks.config.progress_bar = True
    """

    default_chunk_size: int = field(default_factory=_available_cpus)
    progress_bar: bool = True
    ray_config: dict[str, Any] = field(
        default_factory=lambda: {"num_cpus": _available_cpus()}
    )


config = Config()
