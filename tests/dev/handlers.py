"""Tiny Lambda handlers for the local stack's tests, named by "tests.dev.handlers:<name>"."""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from typing import Any

import boto3
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver

from agent_runtime import settings

PNG = b"\x89PNG\r\n\x1a\n\x00\xff\xfe"


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Return the event and the context it was called with, as JSON."""
    seen = {
        "event": event,
        "context": {
            "function_name": context.function_name,
            "aws_request_id": context.aws_request_id,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
        },
    }
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(seen),
    }


def responses(event: dict[str, Any], context: Any) -> Any:
    """A different response shape per path."""
    path = event["rawPath"]
    if path == "/string":
        return "hello"
    if path == "/dict":
        return {"message": "hi"}
    if path == "/binary":
        return {
            "statusCode": 201,
            "headers": {"content-type": "image/png", "x-multi": "a,b", "x-number": 7},
            "cookies": ["session=abc; Path=/; HttpOnly", "theme=dark"],
            "body": base64.b64encode(PNG).decode(),
            "isBase64Encoded": True,
        }
    if path == "/empty":
        return {"statusCode": 204}
    if path == "/slow":
        time.sleep(float(event["queryStringParameters"]["seconds"]))
        return {"statusCode": 200, "body": "late"}
    if path == "/boom":
        raise RuntimeError("boom")
    if path == "/malformed":
        return {"statusCode": 200, "body": {"not": "a string"}}
    if path == "/unmarshallable":
        return {"statusCode": 200, "body": {1, 2}}
    if path == "/pid":
        time.sleep(float((event.get("queryStringParameters") or {}).get("seconds", 0)))
        return {"pid": os.getpid(), "remaining": context.get_remaining_time_in_millis()}
    if path == "/exit":
        os._exit(3)
    return {"statusCode": 404, "body": "no such test path"}


app = APIGatewayHttpResolver()


@app.get("/items/<item_id>")
def get_item(item_id: str) -> dict[str, Any]:
    return {"id": item_id, "q": app.current_event.get_query_string_value("q")}


@app.post("/items")
def post_item() -> tuple[dict[str, Any], int]:
    return {"created": app.current_event.json_body}, 201


def powertools(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)


def store(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """POST /store?key=K with a body: put an item and an object named K, send a wake-up."""
    key = event["queryStringParameters"]["key"]
    body = base64.b64decode(event["body"]) if event["isBase64Encoded"] else event["body"].encode()
    boto3.client("dynamodb").put_item(
        TableName=os.environ[settings.ENV_TABLE],
        Item={"pk": {"S": key}, "sk": {"S": "item"}, "size": {"N": str(len(body))}},
    )
    boto3.client("s3").put_object(
        Bucket=os.environ[settings.ENV_BUCKET], Key=f"files/{key}", Body=body
    )
    return {"statusCode": 200, "body": key}


# -- workers ------------------------------------------------------------------------------


class Deliveries:
    """What the worker handlers saw, shared with the test that drives them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.batches: list[list[str]] = []
        self.changed = threading.Condition(self.lock)

    def add(self, records: list[dict[str, Any]]) -> None:
        with self.changed:
            self.records.extend(records)
            self.batches.append([r["body"] for r in records])
            self.changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        with self.changed:
            self.changed.wait_for(lambda: len(self.records) >= count, timeout)
            return list(self.records)

    def clear(self) -> None:
        with self.lock:
            self.records.clear()
            self.batches.clear()


deliveries = Deliveries()


def worker(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process records in order; a body starting "fail-once" fails on its first receive and,
    as a FIFO worker must, so does every later record of its group in the batch; a body
    "raise-once" raises on its first receive (the whole batch fails)."""
    records = event["Records"]
    deliveries.add(records)
    if any(
        r["body"] == "raise-once" and r["attributes"]["ApproximateReceiveCount"] == "1"
        for r in records
    ):
        raise RuntimeError("raise-once")
    failures: list[dict[str, str]] = []
    failed_groups: set[str] = set()
    for record in records:
        group = record["attributes"].get("MessageGroupId", "")
        first = record["attributes"]["ApproximateReceiveCount"] == "1"
        if group in failed_groups or (record["body"].startswith("fail-once") and first):
            failed_groups.add(group)
            failures.append({"itemIdentifier": record["messageId"]})
        elif record["body"].startswith("slow"):
            time.sleep(0.05)
    return {"batchItemFailures": failures}


def sleepy_worker(event: dict[str, Any], context: Any) -> None:
    deliveries.add(event["Records"])
    time.sleep(context.get_remaining_time_in_millis() / 1000 + 0.5)


def ok_worker(event: dict[str, Any], context: Any) -> None:
    return None
