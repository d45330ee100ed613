"""The options of a run, defined once, and the library-wide defaults.

:func:`chunk`, :func:`achunk` and :class:`Chunker` take these as keyword
arguments (and 1.x's four as positional ones too). :class:`Options` is the one
definition of each option: name, type, default, check and documentation. The
entry points write their signatures and docstrings out in full;
``python -m tools.docstrings --check`` (run in CI) keeps their options
sections equal to the documentation here, and a test keeps their signatures
equal to the fields. The ``TypedDict`` s below type ``**options`` in the
typing overloads. :data:`config` holds the defaults read whenever an option
is left as ``None``.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal, TypedDict

from ._actors import LabelledActor, is_ray_actor

__all__ = [
    "OPTION_NAMES",
    "Config",
    "LegacyOptions",
    "NewOptions",
    "Options",
    "OptionsDict",
    "check_chunk_size",
    "check_no_unknown",
    "config",
    "hide_catch_all",
]


def _doc(kind: str, doc: str) -> dict[str, str]:
    """The documentation of an option: its numpydoc type and description."""
    return {"kind": kind, "doc": doc}


@dataclass(frozen=True, kw_only=True)
class Options:
    """Every option of a run, checked when created; ``None`` means the default."""

    actors: Sequence[Any] | None = field(
        default=None,
        metadata=_doc(
            "list of LabelledActor or of Ray actor handles, optional",
            "The workers, exactly ``chunk_size`` of them; each call borrows one "
            "for its whole duration. Defaults to ``chunk_size`` plain "
            "``LabelledActor(func)``, which run calls in threads. Handles of "
            "``RemoteLabelledActor`` (thread-chunks 1.x's Ray actors) run each "
            "call on the Ray actor it borrows.",
        ),
    )
    chunk_size: int | None = field(
        default=None,
        metadata=_doc(
            "int, optional",
            "The most calls running at once. Defaults to ``len(actors)`` if actors are "
            "given, else to ``thread_chunks.config.default_chunk_size``.",
        ),
    )
    progress_bar: bool | Mapping[str, Any] | None = field(
        default=None,
        metadata=_doc(
            "bool or dict, optional",
            "Show a tqdm progress bar. A dict shows one with these tqdm keyword "
            "arguments (``desc``, ``position``, ``leave``, ...) merged over ours. "
            "Defaults to ``thread_chunks.config.progress_bar``, which shows one "
            "when stderr is a terminal or in a Jupyter notebook, not when it is a "
            "file or a pipe.",
        ),
    )
    path: str | os.PathLike[str] | None = field(
        default=None,
        metadata=_doc(
            "str or os.PathLike, optional",
            "A checkpoint file. Each result is saved as soon as its call completes, "
            "and a rerun with the same function and parameters skips every call "
            "already saved; another function or other parameters replace the file.",
        ),
    )
    checkpoint_every: float = field(
        default=0.0,
        metadata=_doc(
            "float, optional",
            "The least number of seconds between two checkpoint writes. ``0`` (the "
            "default) writes as soon as possible; a few seconds saves disk syncs when "
            "calls take milliseconds, at the risk of recomputing that much on a crash."
            "\n\n.. versionadded:: 2.0",
        ),
    )
    executor: Executor | str | None = field(
        default=None,
        metadata=_doc(
            "concurrent.futures.Executor or 'processes', optional",
            "Run each call on this executor instead of in a thread: a process pool, a "
            "Dask cluster (``client.get_executor(pure=False)``), an MPI pool. This "
            "process still saves the checkpoint and shows progress. ``'processes'`` "
            "creates (and closes) a loky process pool of ``chunk_size`` workers, which "
            "runs lambdas too (it needs loky: ``pip install loky``)."
            "\n\n.. versionadded:: 2.0",
        ),
    )

    errors: Literal["raise", "defer", "return"] = field(
        default="raise",
        metadata=_doc(
            "{'raise', 'defer', 'return'}, optional",
            "What a failing call does to the run. ``'raise'`` (the default) "
            "stops starting calls, lets the running ones finish, saves, and "
            "raises the first exception. ``'defer'`` runs every call, then "
            "raises an ``ExceptionGroup`` of the failures (``except*`` works). "
            "``'return'`` runs every call and puts each failed call's exception "
            "in its place in the results. A failed call is never saved as "
            "done: a rerun computes it again."
            "\n\n.. versionadded:: 2.0",
        ),
    )
    retries: int = field(
        default=0,
        metadata=_doc(
            "int, optional",
            "How many more times a call that raises is tried before it counts "
            "as failed. The call keeps its place among the ``chunk_size`` "
            "running calls while it waits."
            "\n\n.. versionadded:: 2.0",
        ),
    )
    retry_delay: float = field(
        default=0.1,
        metadata=_doc(
            "float, optional",
            "Seconds before the first retry, doubled at each further one, "
            "with some jitter. Cancellation and Ctrl-C cut the wait short."
            "\n\n.. versionadded:: 2.0",
        ),
    )
    timeout: float | None = field(
        default=None,
        metadata=_doc(
            "float, optional",
            "Seconds an attempt at a call may take; ``None`` (the default) for "
            "no limit. An attempt past it fails with ``TimeoutError`` (tried "
            "again under ``retries``) and its place is freed. A coroutine is "
            "cancelled; a worker of ``executor='processes'`` is killed and "
            "replaced; a thread gets the ``TimeoutError`` at its next line of "
            "Python (a call blocked in C code keeps its place until it returns "
            "to Python); a call on another executor is abandoned, and may run "
            "on there."
            "\n\n.. versionadded:: 2.1",
        ),
    )

    reuse: Literal["run", "calls"] = field(
        default="run",
        metadata=_doc(
            "{'run', 'calls'}, optional",
            "What a checkpoint made for other parameters gives this run. "
            "``'run'`` (the default): nothing; it is replaced and every call "
            "computed, as for another function. ``'calls'``: each call whose "
            "function and arguments are the same as a saved call's takes that "
            "saved result, wherever it stood in the old list; the other calls are "
            "computed, the checkpoint is rewritten for the new list, and the old "
            "file is kept as ``path + '.previous'``. Use it to refine a sweep "
            "(add, remove or reorder rows) without computing it all again."
            "\n\n.. versionadded:: 2.0",
        ),
    )

    def __post_init__(self) -> None:
        _check_actors(self.actors)
        if self.chunk_size is not None:
            check_chunk_size(self.chunk_size)
        if self.progress_bar is not None and not isinstance(
            self.progress_bar, bool | Mapping
        ):
            raise TypeError(
                "progress_bar must be True, False, None or a dict of tqdm keyword "
                f"arguments, got {self.progress_bar!r}"
            )
        _check_path(self.path)
        every = self.checkpoint_every
        if not isinstance(every, int | float) or isinstance(every, bool):
            raise TypeError(
                f"checkpoint_every must be a number of seconds, got {every!r}"
            )
        if not every >= 0 or math.isinf(every):
            raise ValueError(f"checkpoint_every must be >= 0 and finite, got {every}")
        if self.reuse not in ("run", "calls"):
            raise ValueError(f"reuse must be 'run' or 'calls', got {self.reuse!r}")
        if self.errors not in ("raise", "defer", "return"):
            raise ValueError(
                f"errors must be 'raise', 'defer' or 'return', got {self.errors!r}"
            )
        if not isinstance(self.retries, int) or isinstance(self.retries, bool):
            raise TypeError(f"retries must be an int >= 0, got {self.retries!r}")
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        delay = self.retry_delay
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            raise TypeError(f"retry_delay must be a number of seconds, got {delay!r}")
        if not delay >= 0 or math.isinf(delay):
            raise ValueError(f"retry_delay must be >= 0 and finite, got {delay}")
        timeout = self.timeout
        if timeout is not None:
            if not isinstance(timeout, int | float) or isinstance(timeout, bool):
                raise TypeError(
                    f"timeout must be a number of seconds or None, got {timeout!r}"
                )
            if not timeout > 0 or math.isinf(timeout):
                raise ValueError(
                    f"timeout must be > 0 and finite (or None for no limit), "
                    f"got {timeout}"
                )

    def merged(self, overrides: Mapping[str, Any]) -> Options:
        """Return a copy with the options in ``overrides`` that are not ``None``."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})


OPTION_NAMES = frozenset(f.name for f in fields(Options))


class LegacyOptions(TypedDict, total=False):
    """The options of 1.x, positional in :func:`chunk` and :class:`Chunker`."""

    actors: Sequence[Any] | None
    chunk_size: int | None
    progress_bar: bool | Mapping[str, Any] | None
    path: str | os.PathLike[str] | None


class NewOptions(TypedDict, total=False):
    """The options added since 1.x: keyword-only everywhere."""

    checkpoint_every: float
    executor: Executor | str | None
    errors: Literal["raise", "defer", "return"]
    retries: int
    retry_delay: float
    timeout: float | None
    reuse: Literal["run", "calls"]


class OptionsDict(LegacyOptions, NewOptions, total=False):
    """Every option, as :func:`achunk` takes them."""


_WORKER_COUNTS = frozenset(
    {"n_jobs", "max_workers", "processes", "workers", "n_workers", "num_workers"}
)
"""How other libraries name what ``chunk_size`` sets."""
_OTHER_NAMES = {
    "backend": "to choose where calls run, pass executor= ('processes' or a "
    "concurrent.futures.Executor; threads are the default)",
    "chunksize": "calls travel to executors in batches sized automatically; to "
    "set how many calls run at once, pass chunk_size=",
    "progress": "to show or hide the progress bar, pass progress_bar=",
    "ordered": "chunk(), achunk() and a Chunker give the results in order "
    "already; ordered= is for chunk_iter() and achunk_iter()",
}
_NAMES = OPTION_NAMES | {"func", "parameters", "persistent", "ordered"}


def check_no_unknown(entry: str, unknown: Mapping[str, Any]) -> None:
    """Raise for the first keyword in ``unknown``, as Python would, with a hint.

    ``entry`` is how the user called the entry point (``"chunk"``); the hint
    maps another library's name for an option onto ours.
    """
    if not unknown:
        return
    name, value = next(iter(unknown.items()))
    message = f"{entry}() got an unexpected keyword argument {name!r}"
    if name in _WORKER_COUNTS:
        whole = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        hint = (
            f"to run {value} calls at once, pass chunk_size={value}"
            if whole
            else "to set how many calls run at once, pass chunk_size= (an int >= 1; "
            "left out, it is the number of CPUs this process may use)"
        )
    elif name in _OTHER_NAMES:
        hint = _OTHER_NAMES[name]
    else:
        import difflib  # only to suggest a name for a mistyped one

        close = difflib.get_close_matches(name, sorted(_NAMES), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}=?" if close else ""
    raise TypeError(f"{message}; {hint}" if hint else message)


def hide_catch_all(func: Any) -> Any:
    """Show ``func``'s signature without its ``**unknown`` catch-all; return it.

    The catch-all only lets :func:`check_no_unknown` say more than Python
    would: an unknown keyword still raises ``TypeError``, as the signature
    shown says.
    """
    signature = inspect.signature(func)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    func.__signature__ = signature.replace(parameters=kept)
    return func


def _check_actors(actors: object) -> None:
    if actors is None:
        return
    if isinstance(actors, int) and not isinstance(actors, bool):
        raise TypeError(
            f"actors must be a list of LabelledActor, got the int {actors}; to set "
            f"how many calls run at once, pass chunk_size={actors}"
        )
    if isinstance(actors, LabelledActor) or not isinstance(actors, Sequence):
        raise TypeError(
            f"actors must be a list of LabelledActor, got {type(actors).__name__}"
        )
    seen: dict[int, int] = {}
    on_ray = bool(actors) and is_ray_actor(actors[0])
    for i, actor in enumerate(actors):
        if on_ray != is_ray_actor(actor) or not (
            on_ray or isinstance(actor, LabelledActor)
        ):
            kind = (
                "a Ray actor handle, as actors[0] is" if on_ray else "a LabelledActor"
            )
            raise TypeError(f"actors[{i}] must be {kind}, got {type(actor).__name__}")
        if id(actor) in seen:
            raise ValueError(
                f"actors[{i}] is the same object as actors[{seen[id(actor)]}]: each "
                "running call needs an actor of its own"
            )
        seen[id(actor)] = i
    if not actors:
        raise ValueError("actors is empty: pass at least one LabelledActor")


def check_chunk_size(chunk_size: object) -> None:
    """Raise unless ``chunk_size`` is an int of at least 1."""
    if not isinstance(chunk_size, int) or isinstance(chunk_size, bool):
        raise TypeError(
            f"chunk_size must be an int >= 1, got {chunk_size!r} "
            f"({type(chunk_size).__name__})"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")


def _check_path(path: object) -> None:
    if path is None:
        return
    if not isinstance(path, str | os.PathLike):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    resolved = os.fspath(path)
    if not isinstance(resolved, str):
        raise TypeError(f"path must be a text path, got {resolved!r}")
    if not resolved:
        raise ValueError("path must name a file, got ''; pass None for no checkpoint")


def _available_cpus() -> int:
    """Return the number of CPUs this process may run on (at least 1)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@dataclass
class Config:
    """Defaults used by :func:`chunk`, :func:`achunk` and :class:`Chunker`.

    Change the attributes of the shared instance :data:`thread_chunks.config`;
    an argument passed explicitly always wins over these defaults.

    Attributes
    ----------
    default_chunk_size : int
        How many calls run at once when ``chunk_size`` is not given. Defaults
        to the number of CPUs this process may use.
    progress_bar : bool or None
        Whether a progress bar is shown when ``progress_bar`` is not given.
        ``None`` (the default) follows tqdm's convention: a bar when stderr is
        a terminal or in a Jupyter notebook, none when stderr is a file or a
        pipe (a batch job's log, a web app's logs). ``True`` shows one
        everywhere, ``False`` nowhere.

        .. versionchanged:: 2.0
           ``None``, the default, where 1.x showed a bar everywhere.
    ray_config : dict
        The keyword arguments of ``ray.init`` when thread-chunks starts Ray
        itself, which it does only when a ``RemoteLabelledActor`` is created
        and Ray is not running. Defaults to ``{"num_cpus": default_chunk_size}``.

    Examples
    --------
    >>> import thread_chunks
    >>> thread_chunks.config.progress_bar = False
    >>> thread_chunks.chunk(pow, [[2, 3], [3, 2]], chunk_size=2)
    [8, 9]
    >>> thread_chunks.config.progress_bar = None  # the default: where watched
    """

    default_chunk_size: int = field(default_factory=_available_cpus)
    progress_bar: bool | None = None
    ray_config: dict[str, Any] = field(
        default_factory=lambda: {"num_cpus": _available_cpus()}
    )


config = Config()
