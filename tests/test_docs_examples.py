"""Every code example in the docs runs, and prints what the docs say it prints."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
EXAMPLES = DOCS / "examples"
BIN = Path(sys.executable).parent

# Examples that need a launcher; the others run as `python example.py`.
LAUNCHERS = {
    "mpi.py": [str(BIN / "mpiexec"), "-n", "3", sys.executable, "-m", "mpi4py.futures"],
}
# The engines of the `engines` extra, which only these examples use.
ENGINES = {
    "dask_cluster.py": "distributed",
    "jobqueue.py": "dask_jobqueue",
    "mpi.py": "mpi4py",
    "processes.py": "loky",
    "ray_executor.py": "ray",
    "from_1x_ray.py": "ray",
}


@pytest.mark.parametrize(
    "example", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.stem
)
def test_example_prints_what_the_docs_show(example: Path, tmp_path: Path) -> None:
    if example.name in ENGINES:
        engine = ENGINES[example.name]
        pytest.importorskip(
            engine,
            reason=f"{engine} is not installed: pip install "
            "'thread-chunks[engines]' runs this example",
        )
    launcher = LAUNCHERS.get(example.name, [sys.executable])
    result = subprocess.run(
        [*launcher, str(example)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == example.with_suffix(".out").read_text()


def test_every_example_is_shown_in_a_page() -> None:
    pages = "".join(p.read_text() for p in DOCS.glob("*.md"))
    for example in EXAMPLES.glob("*.py"):
        assert f"examples/{example.name}" in pages, example.name


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.stem)
def test_code_in_pages_is_tested(page: Path) -> None:
    """Python code is either an included example file or a doctest (pycon)."""
    languages = re.findall(r"^```(\S*)", page.read_text(), flags=re.MULTILINE)
    untested = [lang for lang in languages if lang in ("python", "py", "python3")]
    assert untested == [], f"{page.name}: use a docs/examples file or a pycon block"


def test_readme_example_is_the_tested_file() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    assert (EXAMPLES / "readme.py").read_text() in readme
