"""Shared by the doctests in ``src/`` and the tests in ``tests/``."""

from pathlib import Path
from typing import Any

import pytest

# Example scripts run in subprocesses (tests/test_docs_examples.py), never on import.
collect_ignore_glob = [
    "docs/examples/*",
    "docs/conf.py",
    "docs/_inventories/*",
    "bench/*",
]


@pytest.fixture(autouse=True)
def _doctest_tmp(doctest_namespace: dict[str, Any], tmp_path: Path) -> None:
    """Give doctests a ``tmp`` directory of their own."""
    doctest_namespace["tmp"] = tmp_path
