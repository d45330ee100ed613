"""The docs never tell a user to install 1.0.5 from the package index."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)
FROM_INDEX = re.compile(r"pip install\s+['\"]?thread-chunks\b")


def test_no_command_installs_thread_chunks_from_the_package_index() -> None:
    for page in PAGES:
        for block in FENCE.findall(page.read_text()):
            assert not FROM_INDEX.search(block), (page.name, block)


def test_the_readme_and_getting_started_say_how_to_install_this_version() -> None:
    for page in (ROOT / "README.md", ROOT / "docs" / "getting-started.md"):
        text = page.read_text()
        assert "not on PyPI" in text, page.name
        assert "pip install ." in text, page.name
