"""One running local stack for the module, reached over real HTTP like any client would.

The stack is the one `agent-runtime dev` serves: the deployed handlers
(``functions.http_api``, ``functions.worker``) behind the API Gateway emulator and the SQS
poller, moto on loopback, a state folder, and this folder's ``agents/``.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_runtime.dev import LocalStack

AGENTS = Path(__file__).resolve().parent / "agents"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    # Process isolation, as `dev` runs it: each handler invocation happens in a child-process
    # execution environment, so concurrent requests never share a handler's module state.
    # It starts in 1.5-3 s on two CPUs (the fork server preloads the heavy imports while moto
    # starts) and runs once per module, so "thread" isolation would save too little to give
    # that up; the concurrency test needs it most: eight requests at once, eight environments.
    with LocalStack(
        port=0,
        state_dir=tmp_path_factory.mktemp("stack-state"),
        agents_dir=str(AGENTS),
        isolation="process",
    ) as running:
        yield running


@pytest.fixture(scope="module")
def client(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, timeout=httpx.Timeout(35.0, connect=5.0)) as http:
        yield http


@pytest.fixture
def instance(request: pytest.FixtureRequest) -> str:
    """An instance id of its own for each test: the stack is shared, instances are not."""
    stem = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name).strip("-")[:40]
    return f"{stem}-{secrets.token_hex(4)}"
