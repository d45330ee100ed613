"""Checking the arguments of a run before any call starts, and resolving defaults."""

from __future__ import annotations

import hashlib
import inspect
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

import cloudpickle

from ._actors import LabelledActor
from ._checkpoint import Checkpoint
from ._config import config
from ._executor import check_executor

__all__ = ["Plan", "make_plan"]


@dataclass(frozen=True)
class Plan:
    """Everything a run needs, checked and with defaults filled in."""

    func_name: str
    parameters: list[Sequence[Any]]
    actors: list[LabelledActor]
    is_async: bool
    progress_bar: bool
    path: str | None
    checkpoint_every: float
    executor: Executor | str | None = None

    @property
    def chunk_size(self) -> int:
        """How many calls may run at once: one per actor."""
        return len(self.actors)


def make_plan(
    func: Callable[..., Any] | None,
    parameters: Iterable[Sequence[Any]],
    *,
    actors: Sequence[LabelledActor] | None = None,
    chunk_size: int | None = None,
    progress_bar: bool | None = None,
    path: str | os.PathLike[str] | None = None,
    checkpoint_every: float = 0.0,
    executor: Executor | str | None = None,
) -> Plan:
    """Validate the arguments of :func:`achunk` and resolve their defaults.

    Every mistake raises here, naming the argument, before any call runs.
    Passing ``func`` with ``actors`` sets it on each actor.
    """
    actor_list = check_actors(actors, func)
    if chunk_size is None:
        chunk_size = len(actor_list) if actor_list else config.default_chunk_size
    check_chunk_size(chunk_size)
    if actor_list and len(actor_list) != chunk_size:
        raise ValueError(
            f"actors must have exactly chunk_size entries: got {len(actor_list)} "
            f"actors for chunk_size={chunk_size}; pass as many actors as chunk_size"
        )
    run_func = func if func is not None else actor_list[0].get_func()
    func_name = function_name(run_func)
    is_async = inspect.iscoroutinefunction(run_func)
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
    plan = Plan(
        func_name=func_name,
        parameters=check_parameters(parameters),
        actors=actor_list or [LabelledActor(run_func) for _ in range(chunk_size)],
        is_async=is_async,
        progress_bar=check_progress_bar(progress_bar),
        path=check_path(path),
        checkpoint_every=check_checkpoint_every(checkpoint_every),
        executor=executor,
    )
    # Only now that every argument is good: give the actors the new function.
    if func is not None:
        for actor in actor_list:
            actor.set_func(func)
    return plan


def check_actors(
    actors: Sequence[LabelledActor] | None, func: Callable[..., Any] | None
) -> list[LabelledActor]:
    """Check ``func`` and ``actors`` together; return the actors as a list."""
    if func is not None and not callable(func):
        raise TypeError(
            f"func must be callable, got {func!r} ({type(func).__name__}); pass the "
            "function itself, not the result of calling it"
        )
    if actors is None:
        if func is None:
            raise TypeError("func and actors are both None: pass a function to run")
        return []
    if isinstance(actors, LabelledActor) or not isinstance(actors, Sequence):
        raise TypeError(
            f"actors must be a list of LabelledActor, got {type(actors).__name__}"
        )
    seen: dict[int, int] = {}
    for i, actor in enumerate(actors):
        if not isinstance(actor, LabelledActor):
            raise TypeError(
                f"actors[{i}] must be a LabelledActor, got {type(actor).__name__}"
            )
        if id(actor) in seen:
            raise ValueError(
                f"actors[{i}] is the same object as actors[{seen[id(actor)]}]: each "
                "running call needs an actor of its own"
            )
        seen[id(actor)] = i
    if not actors:
        raise ValueError("actors is empty: pass at least one LabelledActor")
    if func is None and not callable(actors[0].get_func()):
        raise TypeError("actors[0].get_func() is not callable: give the actors a func")
    return list(actors)


def check_chunk_size(chunk_size: object) -> None:
    """Raise unless ``chunk_size`` is an int of at least 1."""
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
        raise TypeError(
            f"chunk_size must be an int >= 1, got {chunk_size!r} "
            f"({type(chunk_size).__name__})"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def check_parameters(parameters: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """Return ``parameters`` as a list, checking each entry is an argument list."""
    if isinstance(parameters, str | bytes) or not isinstance(parameters, Iterable):
        raise TypeError(
            "parameters must be a list of argument lists, one per call, got "
            f"{type(parameters).__name__}"
        )
    checked = list(parameters)
    for i, args in enumerate(checked):
        if not isinstance(args, list | tuple):
            raise TypeError(
                f"parameters[{i}] must be a list or tuple of arguments for one call, "
                f"got {args!r} ({type(args).__name__}); to call func(x) for each x, "
                "pass [[x] for x in values]"
            )
    return checked


def check_progress_bar(progress_bar: bool | None) -> bool:
    """Resolve ``progress_bar`` against the config and check it is a bool."""
    resolved = config.progress_bar if progress_bar is None else progress_bar
    if not isinstance(resolved, bool):
        raise TypeError(f"progress_bar must be True, False or None, got {resolved!r}")
    return resolved


def check_path(path: str | os.PathLike[str] | None) -> str | None:
    """Return ``path`` as a ``str`` (``None`` stays ``None``), checking its type."""
    if path is None:
        return None
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    resolved = os.fspath(path)
    if not isinstance(resolved, str):
        raise TypeError(f"path must be a text path, got {resolved!r}")
    if os.path.isdir(resolved):
        raise ValueError(
            f"path {resolved!r} is a directory; pass a file name inside it, such "
            f"as {os.path.join(resolved, 'checkpoint.pkl')!r}"
        )
    # Like saveable_objects, a path without an extension gets "_Checkpoint.pkl".
    return str(Checkpoint._updatepathroot(resolved))


def check_checkpoint_every(checkpoint_every: float) -> float:
    """Check ``checkpoint_every`` is a number of seconds >= 0."""
    if not isinstance(checkpoint_every, int | float) or isinstance(
        checkpoint_every, bool
    ):
        raise TypeError(
            f"checkpoint_every must be a number of seconds, got {checkpoint_every!r}"
        )
    if not checkpoint_every >= 0:
        raise ValueError(f"checkpoint_every must be >= 0, got {checkpoint_every}")
    return float(checkpoint_every)


def function_name(func: Callable[..., Any]) -> str:
    """The name a checkpoint records for ``func``.

    A ``functools.partial`` is named after its function and bound arguments, so
    that partials of one function with different arguments differ. Arguments
    whose ``repr`` is long or abridged (large arrays) are named by a hash.
    """
    if isinstance(func, partial):
        bound = [repr(a) for a in func.args]
        bound += [f"{k}={v!r}" for k, v in func.keywords.items()]
        shown = ", ".join(bound)
        if len(shown) > 200 or "..." in shown:
            pickled = cloudpickle.dumps((func.args, func.keywords))
            shown = f"sha256={hashlib.sha256(pickled).hexdigest()[:16]}"
        return f"{function_name(func.func)}({shown})"
    name = getattr(func, "__qualname__", None)
    return name if isinstance(name, str) else type(func).__qualname__
