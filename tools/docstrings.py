"""Check, or rewrite, the options' entries of the docstrings against ``Options``.

``thread_chunks._options.Options`` defines each option once: its numpydoc type
(field metadata ``kind``) and description (``doc``). A public function or
method of ``src/thread_chunks/*.py`` (exported in the package's ``__all__``,
where it has one) with a docstring and options among its
positional-or-keyword or keyword-only parameters must document them, in
signature order, as one contiguous block of Parameters entries rendered from
that metadata; a class documents its ``__init__``'s options in its own
docstring; ``@overload`` stubs are skipped. From the repository root::

    python -m tools.docstrings --check  # the default: report, exit 1 if any differ
    python -m tools.docstrings --write  # rewrite those blocks in place, then check

``--check`` also fails on a ``{options}``, ``{outcome}`` or
``{func_and_parameters}`` line left in a docstring; ``--write`` touches only the
options blocks (and ``{options}`` lines). ``--root PATH`` scans another tree.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import difflib
import importlib
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDERS = ("{options}", "{outcome}", "{func_and_parameters}")
ENTRY_POINTS = frozenset({"chunk", "achunk", "chunk_iter", "achunk_iter", "Chunker"})
"""The functions and classes of the package that take the options (a class's
methods too); other functions may take a ``path`` that is not the option."""
Def = ast.FunctionDef | ast.AsyncFunctionDef
Entry = tuple[str, int, int]  # name, first line, end line (exclusive), 0-based


def render(options: type[Any], names: Sequence[str], indent: str) -> list[str]:
    """Return the lines of the numpydoc entries of the options ``names``.

    Parameters
    ----------
    options : dataclass type
        Its fields' ``kind`` and ``doc`` metadata document the options.
    names : sequence of str
        The options to document, in this order.
    indent : str
        The indentation of the ``name : kind`` lines.
    """
    meta = {f.name: f.metadata for f in dataclasses.fields(options)}
    entries = []
    for name in names:
        paragraphs = [textwrap.fill(p, 72) for p in meta[name]["doc"].split("\n\n")]
        body = textwrap.indent("\n\n".join(paragraphs), "    ")
        entries.append(f"{name} : {meta[name]['kind']}\n{body}")
    return textwrap.indent("\n".join(entries), indent).split("\n")


def _docstring(node: ast.AST) -> ast.Constant | None:
    if isinstance(node, ast.Module | ast.ClassDef | Def) and node.body:
        first = node.body[0]
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            return first.value if isinstance(first.value.value, str) else None
    return None


def _options_of(func: Def, names: frozenset[str]) -> list[str]:
    tags = [getattr(d, "id", getattr(d, "attr", "")) for d in func.decorator_list]
    args = [] if "overload" in tags else func.args.args + func.args.kwonlyargs
    return [a.arg for a in args if a.arg in names]


def _targets(
    body: list[ast.stmt],
    names: frozenset[str],
    prefix: str = "",
    exported: frozenset[str] | None = None,
) -> Iterator[tuple[str, ast.stmt, ast.Constant, list[str]]]:
    """Yield the qualified name, node, docstring and options of each target.

    At the top of a module, only the names the package exports are targets
    (every public name if ``exported`` is ``None``); methods of a class
    that is a target are targets: a private helper may
    well take a ``path`` that is not the option.
    """
    for node in body:
        top = getattr(node, "name", "")
        if not prefix and exported is not None and top not in exported:
            continue
        if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            inits = [
                n for n in node.body if isinstance(n, Def) and n.name == "__init__"
            ]
            found = [o for n in inits for o in _options_of(n, names)]
            if (doc := _docstring(node)) and found:
                yield prefix + node.name, node, doc, found
            yield from _targets(node.body, names, f"{prefix}{node.name}.")
        elif (
            isinstance(node, Def)
            and (node.name == "__call__" or not node.name.startswith("_"))
            and (doc := _docstring(node))
            and (found := _options_of(node, names))
        ):
            yield prefix + node.name, node, doc, found


def _lines(path: Path) -> list[str]:
    return path.read_bytes().decode().split("\n")  # no newline translation


def _files(root: Path) -> list[Path]:
    return sorted((root / "src" / "thread_chunks").glob("*.py"))


def _section(
    lines: list[str], first: int, stop: int
) -> tuple[str, int, list[Entry]] | None:
    """Return the indentation, first line and entries of a Parameters section."""

    def dashes(k: int) -> bool:
        return k < stop and set(lines[k].strip()) == {"-"}

    def depth(k: int) -> int:
        return len(lines[k]) - len(lines[k].lstrip()) if lines[k].strip() else 1 << 30

    span = range(first + 1, stop)
    header = next(
        (k for k in span if lines[k].strip() == "Parameters" and dashes(k + 1)), None
    )
    if header is None:
        return None
    base, entries, k = depth(header), [], header + 2
    while k < stop:
        if not lines[k].strip():
            k += 1
        elif depth(k) < base or dashes(k + 1):
            break  # a dedent, or the header of the next section
        else:  # an entry: its line, then the deeper lines and the blanks among them
            end = next((j for j in range(k + 1, stop) if depth(j) <= base), stop)
            while not lines[end - 1].strip():
                end -= 1
            entries.append((lines[k].strip().partition(":")[0].strip(), k, end))
            k = end
    return lines[header][:base], header + 2, entries


def _examine(
    root: Path, path: Path, options: type[Any], entry_points: frozenset[str] | None
) -> tuple[list[str], list[Any]]:
    """Return the problems of the file ``path`` and the edits fixing those it can."""
    names = frozenset(f.name for f in dataclasses.fields(options))
    lines, problems, edits = _lines(path), [], []
    tree, rel = ast.parse("\n".join(lines), str(path)), path.relative_to(root)
    for node in ast.walk(tree):
        if (doc := _docstring(node)) and doc.end_lineno:
            for k in range(doc.lineno - 1, doc.end_lineno):
                if (line := lines[k].strip()) in PLACEHOLDERS:
                    problems.append(f"{rel}:{k + 1}: template line {line} left")
    for name, node, doc, found in _targets(tree.body, names, "", entry_points):
        where, last = f"{rel}:{node.lineno}: {name}", (doc.end_lineno or 0) - 1
        stop = last if lines[last].strip() in ('"""', "'''") else last + 1
        if (section := _section(lines, doc.lineno - 1, stop)) is None:
            problems.append(f"{where}: no Parameters section for {', '.join(found)}")
            continue
        indent, body, entries = section
        ours = [e for e in entries if e[0] in names or e[0] == "{options}"]
        if ours:
            start, end = ours[0][1], ours[-1][2]
        else:  # none yet: they go at the end of the section
            start = end = entries[-1][2] if entries else body
        expected = render(options, found, indent)
        if lines[start:end] == expected:
            continue
        diff = difflib.unified_diff(lines[start:end], expected, str(rel), "Options")
        problems.append(f"{where}: options section differs from Options")
        problems[-1] += "".join("\n" + d.rstrip("\n") for d in diff)
        if any(start < e[1] < end for e in entries if e not in ours):
            problems.append(f"{where}: other entries among the options; fix by hand")
        elif end > last or any('"""' in x or "\\" in x for x in expected):
            problems.append(f"{where}: --write cannot place the options; fix by hand")
        else:
            edits.append((start, end, expected))
    return problems, edits


def check(
    root: Path, options: type[Any], entry_points: frozenset[str] | None = None
) -> list[str]:
    """Return one message per problem (with a diff if a block differs); ``[]`` if none.

    Parameters
    ----------
    root : pathlib.Path
        The repository root: ``src/thread_chunks/*.py`` under it are checked.
    options : dataclass type
        The definition of the options, ``thread_chunks._options.Options``.
    """
    found = (_examine(root, path, options, entry_points)[0] for path in _files(root))
    return [message for messages in found for message in messages]


def write(
    root: Path, options: type[Any], entry_points: frozenset[str] | None = None
) -> int:
    """Rewrite in place the blocks that differ; return how many files changed.

    The parameters are those of :func:`check`; what ``--write`` cannot fix
    (a missing Parameters section, say) is left for :func:`check` to report.
    """
    changed = 0
    for path in _files(root):
        lines, edits = _lines(path), _examine(root, path, options, entry_points)[1]
        for start, end, new in sorted(edits, reverse=True):
            lines[start:end] = new
        if edits:
            path.write_bytes("\n".join(lines).encode())
            changed += 1
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m tools.docstrings [--check | --write] [--root PATH]``."""
    parser = argparse.ArgumentParser(
        "python -m tools.docstrings",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report (the default)")
    mode.add_argument("--write", action="store_true", help="fix, then check")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.root / "src"))  # the Options of the tree scanned
    # This repository's entry points; in another tree, every public function.
    entry_points = ENTRY_POINTS if args.root.resolve() == ROOT else None
    options = importlib.import_module("thread_chunks._options").Options
    if args.write:
        rewrote = write(args.root, options, entry_points)
        sys.stdout.write(f"rewrote {rewrote} file(s)\n")
    problems = check(args.root, options, entry_points)
    sys.stdout.write("\n".join(problems) + "\n" if problems else "all match\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
