"""The package is built in layers: each module imports only modules below it.

Read from the source with ``ast``, every import counted (those under
``TYPE_CHECKING`` and inside functions too). The layers are those of the
contributors' page "How the code is organised" (docs/internals.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "thread_chunks"

LAYERS: list[tuple[str, set[str]]] = [
    ("entry points", {"__init__", "__main__", "_api", "_chunker", "_cli"}),
    ("host", {"_host"}),
    ("run", {"_run"}),
    ("plan", {"_plan"}),
    ("strategies", {"_threads", "_executor", "_ray"}),
    ("checkpoint", {"_store", "_report", "_checkpoint", "_identity"}),
    ("file format", {"_journal", "_pickling"}),
    ("base", {"_options", "_actors", "_remote"}),
]
LAYER_OF = {module: k for k, (_, modules) in enumerate(LAYERS) for module in modules}


def imports_in(path: Path) -> set[str]:
    """The package's modules that the module at ``path`` imports, anywhere."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level == 1 and node.module:
                found.add(node.module.split(".")[0])
            elif node.level == 1:  # from . import _x
                found.update(alias.name for alias in node.names)
            elif node.module and node.module.startswith("thread_chunks."):
                found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("thread_chunks."):
                    found.add(alias.name.split(".")[1])
    return found


MODULES = sorted(path.stem for path in PACKAGE.glob("*.py"))
GRAPH = {module: imports_in(PACKAGE / f"{module}.py") for module in MODULES}


def test_every_module_has_a_layer_and_there_are_at_most_20() -> None:
    assert set(MODULES) == set(LAYER_OF)
    assert len(MODULES) <= 20


@pytest.mark.parametrize("module", MODULES)
def test_no_module_imports_one_of_a_higher_layer(module: str) -> None:
    higher = {
        imported for imported in GRAPH[module] if LAYER_OF[imported] < LAYER_OF[module]
    }
    assert not higher, f"{module} imports {higher}, above its layer"


def test_there_is_no_import_cycle() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            pytest.fail(f"import cycle: {' -> '.join(cycle)}")
        if module in done:
            return
        for imported in sorted(GRAPH[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


def test_the_batch_runner_imports_nothing_of_ours() -> None:
    """``_remote`` is sent to executors by value: workers need no thread_chunks."""
    assert GRAPH["_remote"] == set()


def test_the_graph_sees_imports_under_type_checking_and_in_functions(
    tmp_path: Path,
) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import _plan\n"
        "import thread_chunks._host\n"
        "if TYPE_CHECKING:\n"
        "    from ._run import Workers\n"
        "def f():\n"
        "    from thread_chunks._api import chunk\n"
    )
    (tmp_path / "m.py").write_text(source)
    assert imports_in(tmp_path / "m.py") == {"_plan", "_host", "_run", "_api"}
