from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import Spy


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


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
