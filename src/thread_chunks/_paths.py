"""Where a checkpoint goes: checking and resolving ``path`` before a run."""

from __future__ import annotations

import os

from ._atomic import LONGEST_SIBLING
from ._checkpoint import Checkpoint

__all__ = ["resolve_path"]


def resolve_path(path: str) -> str:
    """Check ``path`` as a place for a checkpoint; return it with links resolved.

    A path without an extension gets ``_Checkpoint.pkl``, as saveable-objects
    does. Symbolic links are followed once, here: the lock and every write
    then use the file itself, and the link stays. Raises ``ValueError`` for a
    directory, a path below a file, or a name the file system cannot hold with
    the files kept beside it.
    """
    if os.path.isdir(path):
        raise ValueError(
            f"path {path!r} is a directory; pass a file name inside it, such "
            f"as {os.path.join(path, 'checkpoint.pkl')!r}"
        )
    given = str(Checkpoint._updatepathroot(path))
    resolved = os.path.realpath(given)
    directory, name = os.path.split(resolved)
    existing = directory
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError(
            f"path {given!r} is below {existing!r}, which is a file, not a "
            "directory; choose a path in a directory"
        )
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        name_max = 255
    if len(name) + LONGEST_SIBLING > name_max:
        raise ValueError(
            f"path's file name {name!r} has {len(name)} characters, and the "
            f"files kept beside a checkpoint add up to {LONGEST_SIBLING}: more "
            f"than the {name_max} this file system allows. Choose a name of at "
            f"most {name_max - LONGEST_SIBLING} characters"
        )
    return resolved
