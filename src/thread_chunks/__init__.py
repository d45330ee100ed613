"""Run one function over many argument lists, a bounded number at a time,
with every finished result checkpointed to disk.

Examples
--------
>>> from thread_chunks import chunk
>>> chunk(pow, [[2, 3], [3, 2]], chunk_size=2, progress_bar=False)
[8, 9]
"""

from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

from ._actors import LabelledActor as LabelledActor
from ._api import achunk as achunk
from ._api import achunk_iter as achunk_iter
from ._api import chunk as chunk
from ._api import chunk_iter as chunk_iter
from ._chunker import Chunker as Chunker
from ._executor import WorkerDied as WorkerDied
from ._host import ignore_sigint as ignore_sigint
from ._options import config as config
from ._report import Progress as Progress
from ._report import progress as progress
from ._run import CallsFailed as CallsFailed
from ._store import CallFailure as CallFailure
from ._store import CheckpointFailedWarning as CheckpointFailedWarning

if _TYPE_CHECKING:  # imported on first use: see __getattr__
    from ._checkpoint import Checkpoint as Checkpoint

__version__ = "2.0.0.dev0"

# Public objects say where users import them from (like trio does).
for _obj in (
    CallFailure,
    CallsFailed,
    CheckpointFailedWarning,
    Chunker,
    LabelledActor,
    achunk,
    achunk_iter,
    chunk,
    chunk_iter,
    ignore_sigint,
    Progress,
    progress,
    WorkerDied,
):
    _obj.__module__ = __name__
del _obj


def __getattr__(name: str) -> _Any:
    # Checkpoint, a saveable_objects.SaveableObject, is imported on first use:
    # saveable-objects imports numpy, which no run needs (runs, with a path or
    # not, keep their checkpoint in a _store.CheckpointData).
    if name == "Checkpoint":
        from ._checkpoint import Checkpoint

        globals()[name] = Checkpoint  # found here from now on
        return Checkpoint
    # RemoteLabelledActor, 1.x's Ray actor class, needs Ray: it is made on first
    # use, so that importing thread_chunks never imports Ray. It is left out of
    # __all__ so that `from thread_chunks import *` works without Ray.
    if name == "RemoteLabelledActor":
        from ._ray import remote_labelled_actor

        return remote_labelled_actor()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), "Checkpoint"})


__all__ = [
    "CallFailure",
    "CallsFailed",
    "Checkpoint",
    "CheckpointFailedWarning",
    "Chunker",
    "LabelledActor",
    "Progress",
    "WorkerDied",
    "__version__",
    "achunk",
    "achunk_iter",
    "chunk",
    "chunk_iter",
    "config",
    "ignore_sigint",
    "progress",
]
