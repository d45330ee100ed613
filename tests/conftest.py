from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, Unpack

import anyio
import pytest

from tests.helpers import RunChunk, Spy
from thread_chunks import achunk, chunk
from thread_chunks._options import OptionsDict


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=["chunk", "achunk-asyncio", "achunk-trio"])
def run_chunk(request: pytest.FixtureRequest) -> RunChunk:
    """A way to run a call, for the tests whose behaviour is the event loop's.

    ``run_chunk(func, parameters, **options)`` returns the outputs like
    :func:`chunk`, options by keyword. The test runs three times: with
    ``"chunk"`` (the sync entry point, which always runs its own asyncio loop
    in a helper thread), and with ``"achunk-asyncio"`` and ``"achunk-trio"``
    (``anyio.run(partial(achunk, func, parameters, **options))`` on that
    backend: the run in a task of the caller's loop).
    """
    name = str(request.param)
    if name == "chunk":
        return chunk  # itself: its warnings point at the test's line
    backend = name.removeprefix("achunk-")

    def run_achunk(
        func: Callable[..., Any] | None,
        parameters: Iterable[Sequence[Any]],
        /,
        **options: Unpack[OptionsDict],
    ) -> list[Any]:
        return anyio.run(partial(achunk, func, parameters, **options), backend=backend)

    return run_achunk


@pytest.fixture
def spy() -> Spy:
    return Spy()


@pytest.fixture(scope="session")
def dask_executor() -> Iterator[Any]:
    """An executor on a local Dask cluster of two worker processes."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client.get_executor(pure=False)
