"""Real Lambda event shapes for tests: SQS batches from a queue, EventBridge events, and a
Lambda context."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LambdaContext:
    """Enough of Lambda's context object for Powertools and the handlers."""

    function_name: str = "agent-runtime-local"
    memory_limit_in_mb: int = 1024
    timeout_seconds: float = 900.0
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:agent-runtime-local"
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/agent-runtime-local"
    log_stream_name: str = "local"
    _started: float = field(default_factory=time.monotonic)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.timeout_seconds - (time.monotonic() - self._started)) * 1000))


def sqs_event(messages: list[dict[str, Any]], queue_arn: str, region: str = "us-east-1") -> dict[str, Any]:
    """The event Lambda's SQS event source sends for messages from `receive_message`."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for m in messages
        ]
    }


def eventbridge_event(
    detail: Any,
    *,
    detail_type: str,
    source: str = "agent-runtime.tests",
    event_id: str | None = None,
    region: str = "us-east-1",
    account: str = "123456789012",
) -> dict[str, Any]:
    """The event an EventBridge rule delivers to a Lambda target. Pass the same `event_id`
    to model a redelivery of one event."""
    return {
        "version": "0",
        "id": event_id or str(uuid.uuid4()),
        "detail-type": detail_type,
        "source": source,
        "account": account,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "region": region,
        "resources": [],
        "detail": detail,
    }


def pump(sqs: Any, queue_url: str, queue_arn: str, handler: Any, *, max_batches: int = 100_000) -> int:
    """Feed the queue to a worker handler like Lambda's event source does, until it is
    empty: delete what succeeded, leave reported failures for redelivery. Returns batches."""
    batches = 0
    while batches < max_batches:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return batches
        batches += 1
        response = handler(sqs_event(messages, queue_arn), LambdaContext())
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done[start : start + 10])],
            )
    return batches
