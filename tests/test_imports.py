"""A run imports what it needs when it needs it (issue 21: a fast cold start).

Each test runs a fresh interpreter: what this one has imported says nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = [
    "numpy",
    "saveable_objects",
    "concurrent.futures.process",
    "loky",
    "cloudpickle",
    "filelock",
    "thread_chunks._checkpoint",
]
"""What a run on threads without a path never needs."""


def imported_after(code: str) -> set[str]:
    """The modules of ``HEAVY`` that a fresh interpreter holds after ``code``."""
    script = (
        f"{code}\nimport json, sys\n"
        f"print(json.dumps([name for name in {HEAVY!r} if name in sys.modules]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout
    return set(json.loads(out.splitlines()[-1]))


def test_import_and_a_run_on_threads_import_nothing_heavy() -> None:
    code = (
        "import thread_chunks\n"
        "assert thread_chunks.chunk(abs, [[-1]], progress_bar=False) == [1]"
    )
    assert imported_after(code) == set()


def test_a_run_with_a_path_needs_only_filelock(tmp_path: Path) -> None:
    path = tmp_path / "ck.pkl"
    code = (
        "from thread_chunks import chunk\n"
        f"assert chunk(abs, [[-1]], progress_bar=False, path={str(path)!r}) == [1]\n"
        # Resumed: the file is read back.
        f"assert chunk(abs, [[-1]], progress_bar=False, path={str(path)!r}) == [1]"
    )
    assert imported_after(code) == {"filelock"}


def test_every_public_name_resolves_in_a_fresh_process() -> None:
    code = (
        "import pydoc, thread_chunks\n"
        "from saveable_objects import SaveableObject\n"
        "for name in thread_chunks.__all__:\n"
        "    getattr(thread_chunks, name)\n"
        "assert set(thread_chunks.__all__) <= set(dir(thread_chunks))\n"
        "namespace = {}\n"
        "exec('from thread_chunks import *', namespace)\n"
        "assert set(thread_chunks.__all__) <= set(namespace)\n"
        "from thread_chunks import Checkpoint\n"
        "assert issubclass(Checkpoint, SaveableObject)\n"
        "assert isinstance(Checkpoint('f', [[1]]), SaveableObject)\n"
        "import thread_chunks._checkpoint as module\n"
        "assert module.Checkpoint is Checkpoint  # 1.x's pickles name it there\n"
        "assert 'class Checkpoint' in pydoc.plain(pydoc.render_doc(thread_chunks))"
    )
    assert "numpy" in imported_after(code)  # Checkpoint imported it, as it should


def test_checkpoint_is_found_by_the_name_that_files_give(tmp_path: Path) -> None:
    """A checkpoint file names ``thread_chunks.Checkpoint``; ``pickle`` finds it."""
    path = tmp_path / "ck.pkl"
    code = (
        "import pickle, thread_chunks\n"
        f"thread_chunks.chunk(abs, [[-1]], progress_bar=False, path={str(path)!r})\n"
        f"with open({str(path)!r}, 'rb') as file:\n"
        "    assert pickle.load(file).output == [1]"
    )
    assert "saveable_objects" in imported_after(code)
