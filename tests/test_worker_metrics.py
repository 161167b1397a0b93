"""The worker reports each settled submission: a log line, and CloudWatch metrics in the
embedded metric format, one line per invocation (moto, the real handler, SQS FIFO)."""

from __future__ import annotations

import asyncio
import json
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

import functions.worker as worker
from agent_runtime.definition import Durability, create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, moto_backend
from agent_runtime.testing.lambda_events import pump


def broken(request: ModelRequest) -> str:
    raise RuntimeError("this model always fails")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Backend, Runtime]]:
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    monkeypatch.setenv("POWERTOOLS_DEV", "false")
    registry = Registry()
    registry.add("echo", create_agent(model="test/echo"))
    registry.add("broken", create_agent(model=FunctionModel(broken), durability=Durability(retry=1)))
    level = worker.logger.log_level  # CI runs with POWERTOOLS_LOG_LEVEL=ERROR
    worker.logger.setLevel("INFO")
    with mock_aws():
        backend = moto_backend(visibility_timeout=30)
        runtime = backend.runtime(registry)
        monkeypatch.setattr(worker, "runtime", lambda: runtime)
        try:
            yield backend, runtime
        finally:
            worker.logger.setLevel(level)


def _emf(out: str) -> list[dict[str, Any]]:
    blobs = []
    for line in out.splitlines():
        if line.startswith("{") and '"_aws"' in line:
            blobs.append(json.loads(line))
    return blobs


def test_settled_submissions_become_metrics_and_log_lines(
    served: tuple[Backend, Runtime], capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    backend, runtime = served

    async def admit() -> None:
        await runtime.prompt("echo", "a", "one")
        await runtime.prompt("echo", "a", "two")
        await runtime.prompt("broken", "b", "three")

    asyncio.run(admit())
    capfd.readouterr()
    pump(backend.clients["sqs"], backend.resources.queue_url, backend.resources.queue_arn, worker.handler)
    out = capfd.readouterr().out

    blobs = _emf(out)
    assert blobs, out
    for blob in blobs:
        (directive,) = blob["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "AgentRuntime"
        assert blob["service"] == "agent-runtime"

    def total(name: str) -> float:
        values = [blob[name] for blob in blobs if name in blob]
        return sum(v for value in values for v in (value if isinstance(value, list) else [value]))

    assert total("SubmissionsCompleted") == 2
    assert total("SubmissionsFailed") == 1
    assert total("SubmissionsAborted") == 0
    assert total("InputTokens") > 0 and total("OutputTokens") > 0
    seconds = [v for blob in blobs for v in (blob.get("SubmissionSeconds") or [])]
    assert len(seconds) == 3 and all(value >= 0 for value in seconds)

    settled = [record.__dict__ for record in caplog.records if record.getMessage() == "settled"]
    assert sorted((line["agent"], line["outcome"]) for line in settled) == [
        ("broken", "failed"),
        ("echo", "completed"),
        ("echo", "completed"),
    ]
    failed = next(line for line in settled if line["agent"] == "broken")
    assert failed["error_type"] == "retries_exhausted" and failed["attempts"] == 1


def test_an_invocation_that_settles_nothing_writes_no_metrics(
    served: tuple[Backend, Runtime], capfd: pytest.CaptureFixture[str]
) -> None:
    backend, runtime = served
    asyncio.run(runtime.wakeups.send(InstanceRef("echo", "nothing-here"), reason="test", dedupe_id="empty-1"))
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # Powertools warns when it flushes no metrics
        pump(backend.clients["sqs"], backend.resources.queue_url, backend.resources.queue_arn, worker.handler)
    assert _emf(capfd.readouterr().out) == []
