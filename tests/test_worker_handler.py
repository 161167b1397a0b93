"""The worker's record handler on both adapters: work left when the invocation runs out
of time gets a continuation wake-up, so no submission is stranded between wake-ups."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import functions.worker as worker
from agent_runtime.adapters.aws.sqs import parse_wakeup, wakeup_body
from agent_runtime.adapters.memory import MemoryWakeUps
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.settings import WORKER_SAFETY_MARGIN_MS
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.lambda_events import LambdaContext, sqs_event
from agent_runtime.tools import tool

INST = InstanceRef("stepper", "w-1")
#: Each invocation may drain for 30 s of the (fake) clock.
INVOCATION_SECONDS = WORKER_SAFETY_MARGIN_MS / 1000 + 30
STEP_SECONDS = 20
STEPS = 4


@pytest.fixture(autouse=True)
def _no_metrics_left() -> Iterator[None]:
    """`record_handler` adds metrics the handler would flush; the buffer is shared by
    every `Metrics` of the process, so drop what these tests added."""
    yield
    worker.metrics.clear_metrics()


def take_wakeups(backend: Backend) -> list[tuple[InstanceRef, str]]:
    """The wake-ups queued so far (instance, reason), taken off the queue."""
    taken: list[tuple[InstanceRef, str]] = []
    if isinstance(backend.wakeups, MemoryWakeUps):
        while not backend.wakeups.queue.empty():
            taken.append(backend.wakeups.queue.get_nowait())
        return taken
    assert backend.resources
    sqs = backend.clients["sqs"]
    while True:
        messages = sqs.receive_message(QueueUrl=backend.resources.queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            return taken
        for message in messages:
            taken.append((parse_wakeup(message["Body"]), json.loads(message["Body"])["reason"]))
            sqs.delete_message(QueueUrl=backend.resources.queue_url, ReceiptHandle=message["ReceiptHandle"])


def wakeup_record(instance: InstanceRef, reason: str, n: int) -> SQSRecord:
    message = {"MessageId": f"m-{n}", "ReceiptHandle": f"r-{n}", "Body": wakeup_body(instance, reason)}
    return SQSRecord(sqs_event([message], "arn:aws:sqs:us-east-1:123456789012:wakeups.fifo")["Records"][0])


def test_work_left_at_the_deadline_gets_a_continuation(
    backend: Backend, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps: list[float] = []

    @tool
    def step() -> str:
        """One slow step of the job."""
        steps.append(clock())
        clock.advance(STEP_SECONDS)
        return f"step {len(steps)} done"

    def respond(request: ModelRequest) -> Any:
        done = sum(isinstance(p, ToolResultPart) for m in request.messages for p in m.parts)
        return "finished" if done >= STEPS else [ToolCall("step", {}, id=f"c-{done}")]

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(respond), tools=[step]))
    runtime = backend.runtime(registry, clock=clock, sleep=clock.sleep, lease_seconds=60)
    monkeypatch.setattr(worker, "runtime", lambda: runtime)

    admission = asyncio.run(runtime.prompt(INST.agent, INST.id, "run the job"))
    pending = take_wakeups(backend)
    assert [reason for _, reason in pending] == ["admit"]
    deliveries = 0
    while pending and deliveries < 10:
        instance, reason = pending.pop(0)
        deliveries += 1
        worker.record_handler(wakeup_record(instance, reason, deliveries), LambdaContext(timeout_seconds=INVOCATION_SECONDS))
        pending += take_wakeups(backend)
        if deliveries == 1:
            # Four 20 s steps do not fit in a 30 s invocation: the first hands back
            # and says so with a continuation for the same instance.
            assert pending == [(INST, "continue")], "work left must wake the instance again"
    record = asyncio.run(runtime.submission(INST.agent, INST.id, admission.record.id))
    assert record.outcome is Outcome.completed, f"{record.status} after {deliveries} deliveries"
    assert record.result and record.result["text"] == "finished"
    assert len(steps) == STEPS and deliveries > 1
    assert pending == []
