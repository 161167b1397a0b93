from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

# Never reach a real AWS account or a paid model API from tests.
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
)
os.environ.pop("AWS_ENDPOINT_URL", None)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("ANTHROPIC_API_KEY", None)

import agent_runtime.models

agent_runtime.models.ALLOW_MODEL_REQUESTS = False

from moto import mock_aws  # noqa: E402

from agent_runtime.testing.moto_serial import serialize_moto_dynamodb  # noqa: E402

serialize_moto_dynamodb()

from agent_runtime.runtime import Runtime  # noqa: E402
from agent_runtime.testing.backends import (  # noqa: E402
    MOTO_CONFIG,
    Backend,
    FakeClock,
    memory_backend,
    moto_backend,
)
from tests.served import Served  # noqa: E402


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture(params=["memory", "moto"])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    if request.param == "memory":
        yield memory_backend()
        return
    with mock_aws(config=MOTO_CONFIG):
        yield moto_backend(visibility_timeout=30)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Backend, Runtime], Served]]:
    """`serve(backend, runtime)`: the worker Lambda's record handler on that runtime."""
    import functions.worker as worker

    def make(backend: Backend, runtime: Runtime) -> Served:
        monkeypatch.setattr(worker, "runtime", lambda: runtime)
        return Served(backend, runtime)

    yield make
    worker.metrics.clear_metrics()  # what record_handler added, unflushed
