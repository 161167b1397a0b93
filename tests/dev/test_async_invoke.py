"""The dispatch rule and the asynchronous invocation of a local function: events put on the
local bus that match the deployed pattern reach the function as EventBridge events; a
failing event is tried three times, then kept in the failures queue."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agent_runtime import settings
from agent_runtime.adapters.aws.provision import EventResources
from agent_runtime.dev.async_invoke import AsyncInvoker
from agent_runtime.dev.aws import LocalAws
from agent_runtime.dev.lambda_runtime import LocalFunction
from tests.dev.polling import eventually


class Recorder:
    """A handler that records its events and fails while `failing` says so."""

    def __init__(self, failing: Callable[[int], bool] = lambda call: False) -> None:
        self.events: list[dict[str, Any]] = []
        self.failing = failing
        self._lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, str]:
        with self._lock:
            self.events.append(event)
            call = len(self.events)
        if self.failing(call):
            raise RuntimeError(f"call {call} fails")
        return {"status": "ok"}


@pytest.fixture
def events(local_aws: LocalAws) -> EventResources:
    assert local_aws.events is not None
    return local_aws.events


def invoker(aws: LocalAws, events: EventResources, handler: Recorder) -> AsyncInvoker:
    function = LocalFunction(handler=handler, name="dispatch", timeout=5, isolation="thread")
    return AsyncInvoker(sqs=aws.client("sqs"), queue_url=events.dispatch_queue_url, function=function)


@pytest.fixture
def running(local_aws: LocalAws, events: EventResources) -> Iterator[tuple[AsyncInvoker, Recorder]]:
    handler = Recorder()
    started = invoker(local_aws, events, handler)
    started.start()
    yield started, handler
    started.stop(grace=2)


def put(aws: LocalAws, detail_type: str, detail: dict[str, Any]) -> None:
    answer = aws.client("events").put_events(
        Entries=[
            {
                "EventBusName": settings.LOCAL_EVENT_BUS,
                "Source": "shop.orders",
                "DetailType": detail_type,
                "Detail": json.dumps(detail),
            }
        ]
    )
    assert answer["FailedEntryCount"] == 0


def waiting(aws: LocalAws, queue_url: str) -> int:
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    attributes = aws.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=names)
    return sum(int(value) for value in attributes["Attributes"].values())


def test_a_matching_event_reaches_the_function_as_an_eventbridge_event(
    local_aws: LocalAws, events: EventResources, running: tuple[AsyncInvoker, Recorder]
) -> None:
    put(local_aws, "something.else", {"skipped": True})
    put(local_aws, settings.DISPATCH_DETAIL_TYPE, {"agent": "echo", "id": "t-1", "input": "hi"})
    invoked, handler = running

    (event,) = eventually(lambda: handler.events, "the dispatch event")
    assert event["detail-type"] == settings.DISPATCH_DETAIL_TYPE
    assert event["source"] == "shop.orders" and event["id"]
    assert event["detail"] == {"agent": "echo", "id": "t-1", "input": "hi"}
    eventually(lambda: waiting(local_aws, events.dispatch_queue_url) == 0, "the delete")
    assert len(handler.events) == 1 and invoked.invoked == 1 and invoked.failed == 0


def test_invoke_queues_an_event_as_an_asynchronous_invocation(
    running: tuple[AsyncInvoker, Recorder],
) -> None:
    invoked, handler = running
    invoked.invoke({"detail-type": "x", "detail": {"n": 1}})
    (event,) = eventually(lambda: handler.events, "the event")
    assert event == {"detail-type": "x", "detail": {"n": 1}}


def test_a_failing_event_is_retried_then_kept_in_the_failures_queue(
    local_aws: LocalAws, events: EventResources
) -> None:
    handler = Recorder(failing=lambda call: True)
    started = invoker(local_aws, events, handler)
    started.start()
    try:
        started.invoke({"detail-type": "x", "detail": {"doomed": True}})
        eventually(lambda: waiting(local_aws, events.dispatch_failures_url), "the failures queue")
    finally:
        started.stop(grace=2)
    assert len(handler.events) == 3 and started.failed == 3
    kept = local_aws.client("sqs").receive_message(QueueUrl=events.dispatch_failures_url)["Messages"]
    assert json.loads(kept[0]["Body"]) == {"detail-type": "x", "detail": {"doomed": True}}


def test_an_event_that_fails_once_succeeds_on_its_retry(
    local_aws: LocalAws, events: EventResources
) -> None:
    handler = Recorder(failing=lambda call: call == 1)
    started = invoker(local_aws, events, handler)
    started.start()
    try:
        started.invoke({"detail-type": "x", "detail": {}})
        eventually(lambda: len(handler.events) == 2, "the retry")
        eventually(lambda: waiting(local_aws, events.dispatch_queue_url) == 0, "the delete")
    finally:
        started.stop(grace=2)
    assert waiting(local_aws, events.dispatch_failures_url) == 0
