from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_runtime.dev.aws import LocalAws
from tests.dev.handlers import deliveries


@pytest.fixture
def local_aws() -> Iterator[LocalAws]:
    """moto on a free loopback port with the runtime's resources; the environment restored after."""
    with LocalAws() as aws:
        yield aws


@pytest.fixture(autouse=True)
def _fresh_deliveries() -> Iterator[None]:
    deliveries.clear()
    yield
    deliveries.clear()
