"""The EventBridge dispatch Lambda on moto, through the real handler: one submission per
event however often it is delivered, bad events dropped with an error in the log, transient
failures raised for a retry, and the worker then runs what was admitted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

import functions.worker as worker
from agent_runtime import settings
from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.ports import WakeUps
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock, moto_backend
from agent_runtime.testing.lambda_events import LambdaContext, eventbridge_event, pump
from functions import dispatch_events

TICKET = InstanceRef("echo", "ticket-42")


@dataclass
class Stack:
    backend: Backend
    runtime: Runtime

    @property
    def sqs(self) -> Any:
        return self.backend.clients["sqs"]

    def submissions(self, instance: InstanceRef = TICKET) -> list[Any]:
        return run(self.runtime.stores.ledger.list_submissions(instance))

    def queued_wakeups(self) -> int:
        assert self.backend.resources
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.backend.resources.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"])

    def run_workers(self) -> None:
        assert self.backend.resources
        resources = self.backend.resources
        pump(self.sqs, resources.queue_url, resources.queue_arn, worker.handler)


@pytest.fixture
def stack(clock: FakeClock) -> Iterator[Stack]:
    with mock_aws():
        backend = moto_backend(visibility_timeout=30)
        agents = Registry()
        agents.add("echo", create_agent(model="test/echo"))
        runtime = backend.runtime(agents, clock=clock)
        original = worker.runtime
        worker.runtime = lambda: runtime  # type: ignore[assignment]
        dispatch_events.set_runtime(runtime)
        try:
            yield Stack(backend, runtime)
        finally:
            dispatch_events.set_runtime(None)
            worker.runtime = original  # type: ignore[assignment]


def deliver(detail: Any, **options: Any) -> dict[str, Any]:
    event = eventbridge_event(detail, detail_type=settings.DISPATCH_DETAIL_TYPE, **options)
    return dispatch_events.handler(event, LambdaContext())


def test_a_redelivered_event_admits_one_submission_which_the_worker_runs(stack: Stack) -> None:
    detail = {"agent": "echo", "id": "ticket-42", "session": "triage", "input": {"order": 7}}
    first = deliver(detail, event_id="6a7e8feb-b491-4cf7-a9f1-bf3703467718")
    again = deliver(detail, event_id="6a7e8feb-b491-4cf7-a9f1-bf3703467718")
    assert first["status"] == again["status"] == "admitted"
    assert not first["replayed"] and again["replayed"]
    assert first["submission_id"] == again["submission_id"]
    assert first["dispatch_id"] == "6a7e8feb-b491-4cf7-a9f1-bf3703467718", "the event id by default"
    assert stack.queued_wakeups() == 1, "the wake-up is deduplicated by submission id"

    stack.run_workers()
    [record] = stack.submissions()
    assert record.kind == "dispatch" and record.session == "triage"
    assert record.outcome is Outcome.completed
    assert record.result and record.result["text"] == 'echo: {"order": 7}'


def test_the_detail_dispatch_id_wins_over_the_event_id(stack: Stack) -> None:
    detail = {"agent": "echo", "id": "ticket-42", "input": "hello", "dispatch_id": "order-7-created"}
    first = deliver(detail)
    second = deliver(detail)  # another event (another id) for the same dispatch
    assert first["dispatch_id"] == second["dispatch_id"] == "order-7-created"
    assert second["replayed"] and len(stack.submissions()) == 1


@pytest.mark.parametrize(
    ("detail", "error"),
    [
        ({"agent": "echo", "id": "ticket-42"}, "invalid_request"),  # no input
        ({"agent": "echo", "id": "ticket-42", "input": 1, "priority": "high"}, "invalid_request"),
        ({"agent": "echo", "id": 42, "input": 1}, "invalid_request"),
        ({"agent": "echo", "id": "ticket 42", "input": 1}, "invalid_request"),
        ({"agent": "echo", "id": "ticket-42", "input": 1, "session": "a/b"}, "invalid_request"),
        ({"agent": "echo", "id": "ticket-42", "input": 1, "dispatch_id": "has space"}, "invalid_request"),
        ({"agent": "echo", "id": "ticket-42", "input": "x" * 1_100_000}, "payload_too_large"),
        ({"agent": "nobody", "id": "ticket-42", "input": 1}, "agent_not_found"),
        ("not an object", "invalid_request"),
    ],
)
def test_a_bad_event_is_dropped_with_an_error_in_the_log(
    stack: Stack, caplog: pytest.LogCaptureFixture, detail: Any, error: str
) -> None:
    assert deliver(detail) == {"status": "dropped", "error": error}
    dropped = [r for r in caplog.records if r.getMessage() == "dispatch event dropped"]
    assert len(dropped) == 1 and dropped[0].levelname == "ERROR"
    assert dropped[0].error_type == error  # type: ignore[attr-defined]
    assert stack.submissions() == [] and stack.queued_wakeups() == 0


def test_a_dispatch_id_reused_with_other_input_is_dropped(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    deliver({"agent": "echo", "id": "ticket-42", "input": "a", "dispatch_id": "d-1"})
    assert deliver({"agent": "echo", "id": "ticket-42", "input": "b", "dispatch_id": "d-1"}) == {
        "status": "dropped",
        "error": "conflict",
    }
    assert [r.payload for r in stack.submissions()] == ["a"]


def test_another_detail_type_is_dropped(stack: Stack) -> None:
    event = eventbridge_event({"agent": "echo", "id": "ticket-42", "input": 1}, detail_type="order.created")
    assert dispatch_events.handler(event, LambdaContext()) == {"status": "dropped", "error": "invalid_request"}
    assert stack.submissions() == []


class Unreachable:
    """Wake-ups whose queue cannot be reached."""

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        raise ConnectionError("SQS unreachable")


def test_a_transient_failure_is_raised_and_the_retry_admits_once(stack: Stack) -> None:
    wakeups: WakeUps = Unreachable()
    failing = Runtime(registry=stack.runtime.registry, stores=stack.runtime.stores, wakeups=wakeups, clock=stack.runtime.clock)
    event = eventbridge_event({"agent": "echo", "id": "ticket-42", "input": "hi"}, detail_type=settings.DISPATCH_DETAIL_TYPE)
    dispatch_events.set_runtime(failing)
    with pytest.raises(ConnectionError):
        dispatch_events.handler(event, LambdaContext())
    dispatch_events.set_runtime(stack.runtime)
    retried = dispatch_events.handler(event, LambdaContext())  # Lambda's retry: the same event
    assert retried["status"] == "admitted" and retried["replayed"]
    stack.run_workers()
    [record] = stack.submissions()
    assert record.outcome is Outcome.completed


def test_the_rule_pattern_matches_what_eventbridge_delivers(stack: Stack) -> None:
    """The infra rule's pattern, on a moto bus, with a queue standing in for the function:
    the event it delivers is handled as is; other detail-types never reach it."""
    events, sqs = boto3.client("events", region_name="us-east-1"), stack.sqs
    bus = events.create_event_bus(Name="agent-runtime")["EventBusArn"]
    target = sqs.create_queue(QueueName="dispatch-target")["QueueUrl"]
    target_arn = sqs.get_queue_attributes(QueueUrl=target, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    pattern = {"detail-type": [settings.DISPATCH_DETAIL_TYPE]}
    events.put_rule(Name="dispatch", EventBusName=bus, EventPattern=json.dumps(pattern))
    events.put_targets(Rule="dispatch", EventBusName=bus, Targets=[{"Id": "fn", "Arn": target_arn}])
    detail = {"agent": "echo", "id": "ticket-42", "input": {"order": 7}}
    entries = [
        {"EventBusName": bus, "Source": "shop.orders", "DetailType": t, "Detail": json.dumps(detail)}
        for t in (settings.DISPATCH_DETAIL_TYPE, "order.created")
    ]
    assert events.put_events(Entries=entries)["FailedEntryCount"] == 0
    delivered = sqs.receive_message(QueueUrl=target, MaxNumberOfMessages=10)["Messages"]
    assert len(delivered) == 1
    event = json.loads(delivered[0]["Body"])
    result = dispatch_events.handler(event, LambdaContext())
    assert result["status"] == "admitted" and result["dispatch_id"] == event["id"]
    stack.run_workers()
    assert [r.outcome for r in stack.submissions()] == [Outcome.completed]
