"""The signatures and docstrings of the entry points, made from :class:`Options`.

Each entry point writes ``**options`` once; :func:`takes_options` turns it
into one keyword-only parameter per option in the runtime signature (what
``help()``, IDEs and the API reference show), and fills the docstring's
``{options}`` line with the options' documentation, its ``{outcome}`` line
with what every run returns, raises and warns, and its
``{func_and_parameters}`` line with the two arguments every entry point has.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import MISSING, fields
from typing import Any, TypeVar

from ._options import OPTION_NAMES, Options

__all__ = ["option_docs", "takes_options"]

F = TypeVar("F", bound=Callable[..., Any])

FUNC_AND_PARAMETERS = """\
func : callable or None
    The function to call. ``None`` runs the function the ``actors`` hold.
    A coroutine function is awaited on the event loop.
parameters : iterable of lists or tuples
    One argument list per call: call ``i`` is ``func(*parameters[i])``."""

OUTCOME = """\
Returns
-------
list
    ``[func(*args) for args in parameters]``, in order.

Raises
------
TypeError, ValueError
    For a bad argument, before any call runs.
OSError
    If the checkpoint file cannot be written, before any call runs.
RuntimeError
    If another run is writing the same checkpoint file, before any call runs.
Exception
    The first exception raised by ``func``, once the calls already running
    have finished and their results are saved; a note names the call.
KeyboardInterrupt
    On Ctrl-C, once the running calls have finished and the checkpoint is
    written. A second Ctrl-C stops at once.

Warns
-----
CheckpointFailedWarning
    If a checkpoint cannot be read or written; the run goes on. It points at
    the line that started the run."""


def takes_options(keywords: type[Any]) -> Callable[[F], F]:
    """Give ``func`` the options in ``keywords`` in its signature and docstring.

    ``**options`` becomes one keyword-only parameter per option, with its
    default, so that ``help()``, IDEs and the API reference show them, and the
    line ``{options}`` of the docstring becomes their numpydoc entries.
    """
    names = list(keywords.__annotations__)
    by_name = {f.name: f for f in fields(Options)}

    def decorate(func: F) -> F:
        if isinstance(func, type):  # a class: its __init__ takes the options
            init = decorate(func.__init__)  # type: ignore[misc]
            documented = inspect.signature(init).parameters
            func.__doc__ = _fill_docstring(func.__doc__ or "", documented)
            return func
        signature = inspect.signature(func)
        parameters = [
            p.replace(annotation=by_name[p.name].type) if p.name in by_name else p
            for p in signature.parameters.values()
            if p.kind is not p.VAR_KEYWORD
        ]
        for name in names:
            option = by_name[name]
            default = None if option.default is MISSING else option.default
            parameters.append(
                inspect.Parameter(
                    name,
                    inspect.Parameter.KEYWORD_ONLY,
                    default=default,
                    annotation=option.type,
                )
            )
        func.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        if func.__doc__:
            func.__doc__ = _fill_docstring(func.__doc__, [p.name for p in parameters])
        return func

    return decorate


def option_docs(names: Sequence[str], indent: str = "") -> str:
    """The numpydoc entries of the options ``names``, indented by ``indent``."""
    by_name = {f.name: f for f in fields(Options)}
    entries = []
    for name in names:
        metadata = by_name[name].metadata
        paragraphs = [textwrap.fill(p, 72) for p in metadata["doc"].split("\n\n")]
        body = textwrap.indent("\n\n".join(paragraphs), "    ")
        entries.append(f"{name} : {metadata['kind']}\n{body}")
    return textwrap.indent("\n".join(entries), indent)


def _fill_docstring(doc: str, names: Iterable[str]) -> str:
    """Fill the ``{options}`` line (the options in ``names``) and ``{outcome}``."""
    options = [name for name in names if name in OPTION_NAMES]
    lines = doc.splitlines()
    for k, line in enumerate(lines):
        indent = line[: len(line) - len(line.lstrip())]
        if line.strip() == "{options}":
            lines[k] = option_docs(options, indent)
        elif line.strip() == "{outcome}":
            lines[k] = textwrap.indent(OUTCOME, indent)
        elif line.strip() == "{func_and_parameters}":
            lines[k] = textwrap.indent(FUNC_AND_PARAMETERS, indent)
    return "\n".join(lines)
