"""SQS messages kept across a clean stop: drained in order into ``sqs/<queue>.jsonl``, sent
again on the next start.

Only at a clean stop: SQS is the wake-up here, not the record. Messages in flight, waiting for
a retry, or sent before a crash are not kept, and the request journal leaves SQS out (a replay
of receives and deletes would not be deterministic): on start, `dev.recovery` sweeps every
instance with unsettled work and wakes it again, which is what a lost wake-up needs.
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from agent_runtime.dev.state_files import all_pages, jsonl, read_jsonl, write_atomic

__all__ = ["drain_queues", "restore_queue"]

log = logging.getLogger(__name__)

_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
)


def drain_queues(sqs: Any, root: Path) -> dict[str, Any]:
    """Move every waiting message into the folder; the manifest's entries. Destructive."""
    urls = list(all_pages(sqs.list_queues, "QueueUrls", "NextToken", "NextToken"))
    attributes = {
        url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        for url in urls
    }
    dead_letter_arns = {
        json.loads(a["RedrivePolicy"])["deadLetterTargetArn"]
        for a in attributes.values()
        if a.get("RedrivePolicy")
    }
    # Drain dead-letter queues last: receiving may move messages into them.
    urls.sort(key=lambda url: attributes[url].get("QueueArn") in dead_letter_arns)
    queues: dict[str, Any] = {}
    for url in urls:
        messages = _drain(sqs, url)
        if not messages:
            continue
        name = url.rstrip("/").rsplit("/", 1)[-1]
        entry: dict[str, Any] = {
            "file": f"sqs/{name}.jsonl",
            "messages": len(messages),
            "attributes": {k: v for k, v in attributes[url].items() if k in _QUEUE_ATTRIBUTES},
        }
        write_atomic(root / entry["file"], jsonl(messages))
        queues[name] = entry
    return queues


def restore_queue(sqs: Any, root: Path, name: str, entry: dict[str, Any]) -> int:
    try:
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except sqs.exceptions.QueueDoesNotExist:
        url = sqs.create_queue(QueueName=name, Attributes=entry.get("attributes") or {})[
            "QueueUrl"
        ]
    fifo = name.endswith(".fifo")
    messages = list(read_jsonl(root / entry["file"]))
    for start in range(0, len(messages), 10):
        entries = []
        for offset, message in enumerate(messages[start : start + 10]):
            one: dict[str, Any] = {"Id": str(offset), "MessageBody": message["body"]}
            if message.get("attributes"):
                one["MessageAttributes"] = _decode_message_attributes(message["attributes"])
            if fifo:
                one["MessageGroupId"] = message["group_id"]
                if message.get("deduplication_id"):
                    one["MessageDeduplicationId"] = message["deduplication_id"]
            entries.append(one)
        failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
        if failed:
            log.warning("could not restore %d messages to %s: %s", len(failed), name, failed)
    return len(messages)


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return messages
        for message in received:
            attributes = message.get("Attributes", {})
            messages.append(
                {
                    "body": message["Body"],
                    "group_id": attributes.get("MessageGroupId"),
                    "deduplication_id": attributes.get("MessageDeduplicationId"),
                    "attributes": _encode_message_attributes(
                        message.get("MessageAttributes") or {}
                    ),
                }
            )
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)
            ],
        )


def _encode_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in attributes.items():
        one = {"DataType": value["DataType"]}
        if "StringValue" in value:
            one["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            one["BinaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        encoded[name] = one
    return encoded


def _decode_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {**value, "BinaryValue": base64.b64decode(value["BinaryValue"])}
        if "BinaryValue" in value
        else value
        for name, value in attributes.items()
    }
