"""Every example in the docs runs and prints what the docs say it prints."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).parent.parent / "docs" / "examples"


@pytest.mark.parametrize(
    "example", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.stem
)
def test_example_prints_what_the_docs_show(example: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(example)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == example.with_suffix(".out").read_text()


def test_every_example_is_shown_in_a_page() -> None:
    pages = "".join(p.read_text() for p in EXAMPLES.parent.glob("*.md"))
    for example in EXAMPLES.glob("*.py"):
        assert f"examples/{example.name}" in pages, example.name
