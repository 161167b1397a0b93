"""The local stack's sweeper: work whose wake-up was lost still runs, as deployed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.definition import create_agent
from agent_runtime.dev import LocalStack
from agent_runtime.ids import InstanceRef
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime

AGENTS = Path(__file__).resolve().parent / "agents"


class LostWakeUps:
    """A wake-up queue that loses everything."""

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        return None


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        state_dir=tmp_path_factory.mktemp("sweep-state"),
        agents_dir=str(AGENTS),
        sweep_interval=0.2,
        sweep_idle_seconds=0,
    ) as running:
        yield running


def test_work_whose_wake_up_was_lost_is_swept_and_runs(stack: LocalStack) -> None:
    dynamodb, s3 = stack.aws.client("dynamodb"), stack.aws.client("s3")
    stores = dynamodb_stores(dynamodb, settings.LOCAL_TABLE, S3Blobs(s3, settings.LOCAL_BUCKET))
    registry = Registry()
    registry.add("echo", create_agent(model="test/echo"))
    admitting = Runtime(registry=registry, stores=stores, wakeups=LostWakeUps())
    admission = asyncio.run(admitting.prompt("echo", "swept", "still here"))
    path = f"/agents/echo/swept/submissions/{admission.record.id}"
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        while (body := client.get(path).json())["status"] != "settled":
            assert time.monotonic() < deadline, body
            time.sleep(0.05)
    assert body["outcome"] == "completed" and body["result"]["text"] == "echo: still here"
    assert stack.sweeper is not None and stack.sweeper.woken >= 1
