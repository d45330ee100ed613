"""Ray actors as workers, as in thread-chunks 1.x: ``RemoteLabelledActor``.

Ray is imported here only, and only when a user asks for
``RemoteLabelledActor`` or passes Ray actor handles as ``actors``: importing
thread_chunks never imports Ray. A call on a Ray actor is awaited through its
``ObjectRef.future()``, so the event loop never blocks on it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

import anyio

from ._actors import Calls, LabelledActor, OneAtATime, call_row, timed_out
from ._executor import wait_for_future
from ._options import config

__all__ = [
    "RayActors",
    "ray_actor_func",
    "remote_labelled_actor",
    "set_ray_actor_func",
]

_NO_RAY = (
    "RemoteLabelledActor needs Ray (the thread-chunks[ray] extra): pip install "
    "ray. Without "
    "Ray, run the calls in threads (the default), or on processes or a cluster "
    "with executor= (see 'Beyond one machine' in the docs)"
)


class RemoteLabelledActorClass:
    """``ray.remote(LabelledActor)``, which starts Ray itself if it is not running.

    Only when thread-chunks starts Ray does it use ``config.ray_config``, as
    thread-chunks 1.x did; a Ray you started yourself is used as it is.
    """

    def __init__(self, actor_class: Any) -> None:
        self._actor_class = actor_class

    def remote(self, *args: Any, **kwargs: Any) -> Any:
        """Start a Ray actor: ``RemoteLabelledActor.remote(func)``."""
        _start_ray()
        return self._actor_class.remote(*args, **kwargs)

    def options(self, **options: Any) -> Any:
        """The actor class with Ray options, as ``ray.remote`` classes have."""
        _start_ray()
        return self._actor_class.options(**options)

    def __repr__(self) -> str:
        return "RemoteLabelledActor"


_remote_class: RemoteLabelledActorClass | None = None


def remote_labelled_actor() -> RemoteLabelledActorClass:
    """Return ``RemoteLabelledActor``, importing Ray the first time."""
    global _remote_class
    if _remote_class is None:
        try:
            import ray
        except ImportError:
            raise ImportError(_NO_RAY) from None
        _remote_class = RemoteLabelledActorClass(ray.remote(LabelledActor))
    return _remote_class


def _start_ray() -> None:
    import ray

    if not ray.is_initialized():
        ray.init(**config.ray_config)


def ray_actor_func(actor: Any) -> Callable[..., Any]:
    """The function a Ray actor holds, fetched from it."""
    import ray

    func: Callable[..., Any] = ray.get(actor.get_func.remote())
    return func


def set_ray_actor_func(actors: Sequence[Any], func: Callable[..., Any]) -> None:
    """Give every Ray actor ``func``, sending it to the cluster once."""
    import ray

    func_ref = ray.put(func)
    ray.get([actor.set_func.remote(func_ref) for actor in actors])


class RayActors(OneAtATime):
    """The strategy for Ray actor handles: each worker task awaits its actor.

    Past ``timeout``, the wait for a call is abandoned and the attempt fails
    with ``TimeoutError``; Ray is asked to cancel the call (``ray.cancel``),
    but an actor may finish it first, and until then serves no other call.
    """

    def __init__(
        self,
        calls: Calls,
        limiter: anyio.CapacityLimiter,
        timeout: float | None = None,
    ) -> None:
        super().__init__(calls, timeout)
        self.limiter = limiter

    async def call(self, actor: Any, index: int) -> Any:
        """Run call ``index`` on a Ray actor and return its result.

        If cancelled meanwhile, the call runs to its end (an actor serves one
        call at a time, so it is never queued) and its result is returned to
        be saved.
        """
        async with self.limiter:
            send = partial(actor.run.remote, index)
            ref = call_row(send, self.calls.parameters[index])
            # The future of an ObjectRef would let itself be cancelled, call
            # running or not: never withdraw it.
            if self.timeout is None:
                _, result = await wait_for_future(ref.future(), withdraw=False)
                return result
            # Shielded, so that a cancellation of the run still waits for the
            # call and saves it, as above; only the deadline withdraws it.
            deadline = anyio.current_time() + self.timeout
            with anyio.CancelScope(shield=True, deadline=deadline):
                _, result = await wait_for_future(ref.future(), withdraw=True)
                return result
        _cancel(ref)
        raise timed_out(self.timeout)


def _cancel(ref: Any) -> None:
    """Ask Ray to cancel a call; it may have finished, or Ray may decline."""
    import ray

    with suppress(Exception):  # best effort: the call is abandoned anyway
        ray.cancel(ref)
