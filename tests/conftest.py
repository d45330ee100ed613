from __future__ import annotations

import pytest

from tests.helpers import Spy


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def spy() -> Spy:
    return Spy()
