"""The SQS event source: batches, FIFO order, deletes, partial failures, retries."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser.models import SqsModel

from agent_runtime.dev.aws import LocalAws
from agent_runtime.dev.lambda_runtime import Invocation
from agent_runtime.dev.sqs_poller import SqsPoller, batch_failures
from tests.dev.handlers import deliveries


def send(sqs: Any, queue_url: str, messages: list[tuple[str, str]]) -> None:
    """Send (group, body) pairs in order, ten per call."""
    for start in range(0, len(messages), 10):
        chunk = messages[start : start + 10]
        sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"{group}-{body}-{start + i}",
                    "MessageAttributes": {"kind": {"DataType": "String", "StringValue": "wake"}},
                }
                for i, (group, body) in enumerate(chunk)
            ],
        )


def queue_is_empty(sqs: Any, queue_url: str) -> bool:
    attributes = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["All"])["Attributes"]
    return (
        attributes["ApproximateNumberOfMessages"]
        == attributes["ApproximateNumberOfMessagesNotVisible"]
        == "0"
    )


@pytest.fixture
def sqs(local_aws: LocalAws) -> Any:
    return local_aws.client("sqs")


@pytest.fixture
def queue_url(local_aws: LocalAws) -> str:
    assert local_aws.resources is not None
    return local_aws.resources.queue_url


@pytest.fixture
def poller(sqs: Any, queue_url: str) -> Iterator[SqsPoller]:
    """A poller not yet started, with one-second local retries; it polls without waiting so
    it stops at once (the long-poll mode is covered by the ordering test). The worker runs in
    a thread, so the test sees what it recorded."""
    poller = SqsPoller(
        sqs=sqs,
        queue_url=queue_url,
        handler="tests.dev.handlers:worker",
        local_retry_delay=1,
        idle_wait=0.05,
        long_poll_seconds=0,
        isolation="thread",
    )
    yield poller
    poller.stop()


def test_messages_arrive_in_order_per_group_and_are_deleted(
    poller: SqsPoller, sqs: Any, queue_url: str
) -> None:
    poller.long_poll_seconds = 1
    poller.start()
    sent = [(f"g{n % 4}", f"slow-{n}") for n in range(24)]
    send(sqs, queue_url, sent)
    records = deliveries.wait_for(len(sent))
    assert len(records) == len(sent)
    for group in {g for g, _ in sent}:
        assert [r["body"] for r in records if r["attributes"]["MessageGroupId"] == group] == [
            body for g, body in sent if g == group
        ]
    deadline = time.monotonic() + 5
    while not queue_is_empty(sqs, queue_url) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert queue_is_empty(sqs, queue_url)
    assert poller.stats.deleted == len(sent) and poller.stats.failed == 0


class CountingReceives:
    """An SQS client that counts ``ReceiveMessage`` calls and when each returned nothing."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs
        self.empty: list[float] = []

    def receive_message(self, **kwargs: Any) -> Any:
        answer = self.sqs.receive_message(**kwargs)
        if not answer.get("Messages"):
            self.empty.append(time.monotonic())
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sqs, name)


def test_a_thread_beside_a_long_batch_backs_off_and_wakes_when_the_batch_ends(
    poller: SqsPoller, sqs: Any, queue_url: str
) -> None:
    counting = CountingReceives(sqs)
    poller.sqs = counting
    poller.long_poll_seconds = 1  # the longest pause between empty receives
    send(sqs, queue_url, [("a", "hold-2")])
    poller.start()
    first = deliveries.wait_for(1)
    held_from = time.monotonic()
    time.sleep(0.3)
    send(sqs, queue_url, [("a", "next")])  # its group is busy until the first batch ends
    records = deliveries.wait_for(2, timeout=5)
    assert [r["body"] for r in records] == ["hold-2", "next"] and first
    # Without the backoff the other thread would have asked every 50 ms (about 40 times).
    during = [t for t in counting.empty if held_from <= t <= held_from + 2]
    assert len(during) <= 8
    # The batch's end wakes the waiting thread: the next message is not left for a pause.
    assert time.monotonic() - held_from < 2 + 0.5


def test_records_have_lambdas_sqs_event_shape(poller: SqsPoller, sqs: Any, queue_url: str) -> None:
    send(sqs, queue_url, [("instance-1", "hello")])
    poller.start()
    record = deliveries.wait_for(1)[0]
    SqsModel.model_validate({"Records": [record]})
    assert record["body"] == "hello"
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"].endswith(":agent-runtime-wakeups.fifo")
    assert record["awsRegion"] == "us-east-1"
    assert record["md5OfBody"] == "5d41402abc4b2a76b9719d911017c592"
    attributes = record["attributes"]
    assert attributes["MessageGroupId"] == "instance-1"
    assert attributes["MessageDeduplicationId"] == "instance-1-hello-0"
    assert attributes["ApproximateReceiveCount"] == "1"
    assert attributes["SentTimestamp"].isdigit()
    assert record["messageAttributes"]["kind"] == {
        "stringValue": "wake",
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": "String",
    }


def test_reported_failures_are_redelivered_in_order_and_successes_deleted(
    poller: SqsPoller, sqs: Any, queue_url: str
) -> None:
    send(sqs, queue_url, [("g1", "fail-once-a"), ("g1", "after-a"), ("g2", "fine")])
    poller.start()
    records = deliveries.wait_for(5)
    assert [r["body"] for r in records[:3]] == ["fail-once-a", "after-a", "fine"]
    retried = records[3:]
    assert [r["body"] for r in retried] == ["fail-once-a", "after-a"]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in retried] == ["2", "2"]
    time.sleep(0.3)
    assert len(deliveries.records) == 5  # "fine" was deleted, not delivered again
    assert queue_is_empty(sqs, queue_url)


def test_an_exception_fails_the_whole_batch(poller: SqsPoller, sqs: Any, queue_url: str) -> None:
    send(sqs, queue_url, [("g", "raise-once"), ("g", "other")])
    poller.start()
    records = deliveries.wait_for(4)
    assert deliveries.batches == [["raise-once", "other"], ["raise-once", "other"]]
    assert [r["attributes"]["ApproximateReceiveCount"] for r in records[2:]] == ["2", "2"]


def test_a_timed_out_batch_is_retried(sqs: Any, queue_url: str) -> None:
    send(sqs, queue_url, [("g", "sleepy")])
    with SqsPoller(
        sqs=sqs,
        queue_url=queue_url,
        handler="tests.dev.handlers:sleepy_worker",
        timeout=0.2,
        local_retry_delay=1,
        idle_wait=0.05,
        long_poll_seconds=0,
        isolation="thread",
    ) as poller:
        records = deliveries.wait_for(2, timeout=5)
        assert [r["attributes"]["ApproximateReceiveCount"] for r in records[:2]] == ["1", "2"]
        assert poller.stats.failed >= 1 and poller.stats.deleted == 0


def test_process_isolation_consumes_the_queue(sqs: Any, queue_url: str) -> None:
    send(sqs, queue_url, [(f"g{n % 3}", f"m{n}") for n in range(9)])
    with SqsPoller(
        sqs=sqs,
        queue_url=queue_url,
        handler="tests.dev.handlers:ok_worker",
        long_poll_seconds=0,
        idle_wait=0.05,
    ) as poller:
        deadline = time.monotonic() + 10
        while poller.stats.deleted < 9 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert poller.stats.deleted == 9
    assert queue_is_empty(sqs, queue_url)


def invocation(result: Any = None, outcome: str = "ok") -> Invocation:
    return Invocation(outcome, "req", 1.0, result=result)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("response", "failed"),
    [
        (None, set()),
        ({}, set()),
        ({"batchItemFailures": []}, set()),
        ({"batchItemFailures": None}, set()),
        ({"batchItemFailures": [{"itemIdentifier": "b"}]}, {"b"}),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, {"a", "b"}),
        ({"batchItemFailures": [{"id": "a"}]}, {"a", "b"}),
        ({"batchItemFailures": [{"itemIdentifier": "unknown"}]}, {"a", "b"}),
    ],
)
def test_partial_batch_response_rules(response: Any, failed: set[str]) -> None:
    assert batch_failures(invocation(response), ["a", "b"]) == failed


def test_errors_and_timeouts_fail_everything() -> None:
    assert batch_failures(invocation(outcome="error"), ["a", "b"]) == {"a", "b"}
    assert batch_failures(invocation(outcome="timeout"), ["a"]) == {"a"}
