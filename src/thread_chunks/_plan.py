"""Checking the arguments of a run before any call starts, and resolving defaults."""

from __future__ import annotations

import inspect
import os
import reprlib
from collections.abc import Callable, Iterable, Mapping, MappingView, Sequence, Set
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from ._actors import LabelledActor, Row, is_ray_actor
from ._executor import check_executor
from ._identity import FunctionIdentity, identify
from ._journal import resolve_path
from ._options import Options, check_chunk_size, config
from ._pickling import plain_rows_in
from ._ray import ray_actor_func, set_ray_actor_func

__all__ = [
    "Parameters",
    "Plan",
    "check_map_style",
    "check_parameters",
    "is_coroutine_function",
    "make_plan",
]

Parameters = Iterable[Sequence[Any] | Mapping[str, Any]]
"""What ``parameters`` may be: rows that are argument lists or keyword arguments."""


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, checked and with defaults filled in."""

    function: FunctionIdentity
    parameters: list[Row]
    """The rows as given: what the checkpoint saves and compares."""
    actors: list[Any]
    """The actors given, or one plain ``LabelledActor`` per call that can run at
    once: never more than there are calls, however large ``chunk_size`` is."""
    chunk_size: int
    """How many calls may run at once."""
    is_async: bool
    progress_bar: bool | Mapping[str, Any] | None
    """Show a bar: always (``True``, or tqdm's options), never (``False``), or
    where someone watches (``None``): a terminal, a notebook."""
    path: str | None
    checkpoint_every: float
    executor: Executor | str | None = None
    on_ray: bool = False
    """Whether the actors are Ray actor handles rather than LabelledActors."""
    errors: str = "raise"
    retries: int = 0
    retry_delay: float = 0.1
    timeout: float | None = None
    """Seconds an attempt may take, or ``None``."""
    reuse: str = "run"
    """Whether a checkpoint of other parameters gives its matching calls."""
    keywords: bool = False
    """Whether any row is a mapping: called ``func(**row)``."""
    plain_rows: bool = False
    """Whether the type of every row is exactly ``list`` or ``tuple``."""

    @property
    def func_name(self) -> str:
        """The function's name, as checkpoints and error notes show it."""
        return self.function.name


def make_plan(
    func: Callable[..., Any] | None,
    parameters: Parameters,
    options: Options,
) -> Plan:
    """Check ``func`` and ``parameters`` against ``options``; resolve the defaults.

    Every mistake raises here, naming the argument, before any call runs.
    Passing ``func`` with ``actors`` sets it on each actor.
    """
    if func is not None and not callable(func):
        raise TypeError(
            f"func must be callable, got {func!r} ({type(func).__name__}); pass the "
            "function itself, not the result of calling it"
        )
    actor_list = list(options.actors or [])
    on_ray = bool(actor_list) and is_ray_actor(actor_list[0])
    if func is None:
        if not actor_list:
            raise TypeError("func and actors are both None: pass a function to run")
        held = ray_actor_func(actor_list[0]) if on_ray else actor_list[0].get_func()
        if not callable(held):
            raise TypeError(
                "actors[0].get_func() is not callable: give the actors a func"
            )
    chunk_size = options.chunk_size
    if chunk_size is None:
        chunk_size = len(actor_list) if actor_list else config.default_chunk_size
        check_chunk_size(chunk_size)
    if actor_list and len(actor_list) != chunk_size:
        raise ValueError(
            f"actors must have exactly chunk_size entries: got {len(actor_list)} "
            f"actors for chunk_size={chunk_size}; pass as many actors as chunk_size"
        )
    run_func = func if func is not None else held
    function = identify(run_func)
    func_name = function.name
    is_async = is_coroutine_function(run_func)
    executor = options.executor
    if on_ray and (is_async or executor is not None):
        raise TypeError(
            "Ray actors run plain functions on the Ray cluster: leave out "
            "executor=, and pass a function that is not a coroutine function"
        )
    if executor is not None:
        if any(type(actor) is not LabelledActor for actor in actor_list):
            raise ValueError(
                "LabelledActor subclasses cannot be combined with executor: they "
                "keep state in this process, while the executor runs func "
                "elsewhere; pass func instead"
            )
        if is_async:
            raise TypeError(
                "executor runs plain functions, but func is a coroutine function; "
                "leave out executor to await it on the event loop"
            )
        check_executor(executor, run_func, func_name)
    path = options.path
    rows, keywords, plain_rows = check_parameters(parameters)
    if keywords and not on_ray:
        _check_actors_take_keywords(actor_list, rows)
    plan = Plan(
        function=function,
        parameters=rows,
        # A chunk_size far above the number of calls costs nothing per slot.
        actors=actor_list
        or [LabelledActor(run_func) for _ in range(min(chunk_size, len(rows)))],
        chunk_size=chunk_size,
        is_async=is_async,
        progress_bar=_bar_options(options.progress_bar),
        path=None if path is None else resolve_path(os.fspath(path)),
        checkpoint_every=float(options.checkpoint_every),
        executor=executor,
        on_ray=on_ray,
        errors=options.errors,
        retries=options.retries,
        retry_delay=float(options.retry_delay),
        timeout=None if options.timeout is None else float(options.timeout),
        reuse=options.reuse,
        keywords=keywords,
        plain_rows=plain_rows,
    )
    # Only now that every argument is good: give the actors the new function.
    if func is not None and on_ray:
        set_ray_actor_func(actor_list, func)
    elif func is not None:
        for actor in actor_list:
            actor.set_func(func)
    return plan


def is_coroutine_function(func: Callable[..., Any]) -> bool:
    """Whether calling ``func`` returns a coroutine, callable objects included."""
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(type(func), "__call__", None)  # noqa: B004
    return not inspect.isfunction(func) and inspect.iscoroutinefunction(call)


def _bar_options(
    progress_bar: bool | Mapping[str, Any] | None,
) -> bool | Mapping[str, Any] | None:
    """The bar option, the config's if not given; ``None``: where watched."""
    if progress_bar is None:
        progress_bar = config.progress_bar
    return dict(progress_bar) if isinstance(progress_bar, Mapping) else progress_bar


def check_parameters(parameters: Parameters) -> tuple[list[Row], bool, bool]:
    """``parameters`` as a list, whether any row is keyword arguments, and
    whether every row is exactly a list or a tuple.

    A row is an argument list: a list, a tuple, any other sequence but a
    string, or a row of a numpy array (checked without importing numpy). A
    mapping with string keys is the keyword arguments of its call.
    """
    if isinstance(parameters, str | bytes) or not isinstance(parameters, Iterable):
        raise TypeError(
            "parameters must be a list of argument lists, one per call, got "
            f"{type(parameters).__name__}"
        )
    if isinstance(parameters, Set):
        # A set's order changes from process to process (string hashes are
        # salted): its run could never be recognised, nor its results ordered.
        raise TypeError(
            f"parameters must be ordered, got a {type(parameters).__name__}, "
            "whose order changes from one process to the next, so a checkpoint "
            "could never be resumed; pass sorted(...) of it"
        )
    if isinstance(parameters, MappingView):
        raise TypeError(
            f"parameters must be a list of argument lists, got a "
            f"{type(parameters).__name__} view, whose order is that of the "
            "dict's history; pass sorted(...) or list(...) of it"
        )
    if isinstance(parameters, Mapping):
        raise TypeError(
            "parameters must be a list of argument lists or of dicts of keyword "
            f"arguments, one per call, got a {type(parameters).__name__}; to call "
            "func(**kwargs) once, pass [kwargs]"
        )
    checked = list(parameters)
    if plain_rows_in(checked):
        return checked, False, True  # the usual case, at C speed
    keywords = False
    for i, row in enumerate(checked):
        if isinstance(row, list | tuple):
            continue
        if isinstance(row, Mapping):
            keywords = True
            for key in row:
                if not isinstance(key, str):
                    raise TypeError(
                        f"parameters[{i}] is a dict of keyword arguments, whose keys "
                        f"must be strings: got {key!r} ({type(key).__name__})"
                    )
        elif not _is_argument_list(row):
            raise TypeError(
                f"parameters[{i}] must be an argument list (a list, tuple or other "
                "sequence) or a dict of keyword arguments, got "
                f"{reprlib.repr(row)} ({type(row).__name__}); to call func(x) for "
                "each x, pass [[x] for x in values]"
            )
    return checked, keywords, False


def check_map_style(call: str, parameters: object, after: Sequence[object]) -> None:
    """Raise if the arguments look like ``map(func, xs, ys)``'s, and say the fix.

    ``call`` is how the call began (``"chunk(g, "``); ``after`` holds the
    positional arguments that follow ``parameters``. Map-style: the first of
    them is a list of values, not of actors, and ``parameters`` starts with a
    value, not an argument list.
    """
    lists = []
    for value in after:
        if not isinstance(value, list | tuple):
            break
        lists.append(value)
    if not lists or not lists[0] or not isinstance(parameters, list | tuple):
        return
    first = lists[0][0]
    if isinstance(first, LabelledActor) or is_ray_actor(first) or not parameters:
        return
    row = parameters[0]
    if isinstance(row, Mapping) or _is_argument_list(row):
        return
    shown = ", ".join(map(reprlib.repr, [parameters, *lists]))
    count = len(lists) + 1
    names = ", ".join(
        ["xs", "ys", "zs"][:count] if count <= 3 else [f"xs{k}" for k in range(count)]
    )
    raise TypeError(
        f"{call}{shown}) looks like map-style arguments (one list per argument, "
        "as map(func, xs, ys) takes them), but parameters holds one argument list "
        f"per call: pass list(zip({names})) instead"
    )


def _is_argument_list(row: object) -> bool:
    """Whether ``row`` is a sequence of arguments: not a string, not a scalar."""
    if isinstance(row, str | bytes | bytearray | memoryview):
        return False
    if isinstance(row, Sequence):
        return True
    # A row of a numpy array (or of another array type): one dimension or more.
    ndim = getattr(row, "ndim", None)
    return hasattr(row, "__array__") and isinstance(ndim, int) and ndim >= 1


def _check_actors_take_keywords(actors: Sequence[Any], rows: Sequence[Row]) -> None:
    """Raise if an actor's own ``run`` cannot take a row's keyword arguments."""
    first = next(i for i, row in enumerate(rows) if isinstance(row, Mapping))
    for k, actor in enumerate(actors):
        if type(actor).run is LabelledActor.run:
            continue
        kinds = {p.kind for p in inspect.signature(actor.run).parameters.values()}
        if inspect.Parameter.VAR_KEYWORD not in kinds:
            raise TypeError(
                f"actors[{k}] ({type(actor).__name__}) overrides run() without "
                f"**kwargs, so it cannot take the keyword arguments of "
                f"parameters[{first}], a dict; give its run a **kwargs parameter "
                "and pass it on, or pass argument lists"
            )
