"""Tiny Lambda handlers for the local stack's tests, named by "tests.dev.handlers:<name>"."""

from __future__ import annotations

import base64
import functools
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
    "raise-once" raises on its first receive (the whole batch fails); "hold-SECONDS" takes
    that long."""
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
        elif record["body"].startswith("hold-"):
            time.sleep(float(record["body"].removeprefix("hold-")))
    return {"batchItemFailures": failures}


def sleepy_worker(event: dict[str, Any], context: Any) -> None:
    deliveries.add(event["Records"])
    time.sleep(context.get_remaining_time_in_millis() / 1000 + 0.5)


def ok_worker(event: dict[str, Any], context: Any) -> None:
    return None


def blocked(event: dict[str, Any], context: Any) -> None:
    """Touch the file ``event["started"]``, then sleep until the function times out."""
    with open(event["started"], "w"):
        pass
    time.sleep(context.get_remaining_time_in_millis() / 1000)


# -- WebSocket ----------------------------------------------------------------------------


class WebSocketEvents:
    """The events the WebSocket handler saw (thread isolation only), for the test to read."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.changed = threading.Condition()

    def add(self, event: dict[str, Any]) -> None:
        with self.changed:
            self.events.append(event)
            self.changed.notify_all()

    def wait_for(
        self, route_key: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        def matching() -> list[dict[str, Any]]:
            return [e for e in self.events if e["requestContext"]["routeKey"] == route_key]

        with self.changed:
            self.changed.wait_for(lambda: len(matching()) >= count, timeout)
            return matching()

    def clear(self) -> None:
        with self.changed:
            self.events.clear()


websocket_events = WebSocketEvents()
_management_lock = threading.Lock()


@functools.cache
def _management_client(endpoint: str) -> Any:
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, region_name="us-east-1")


def _management() -> Any:
    """The @connections client of the endpoint in the stack's variable, built once."""
    with _management_lock:  # boto3's default session is not safe to share while building
        return _management_client(os.environ[settings.ENV_WEBSOCKET_ENDPOINT])


def websocket(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """$connect: ``?refuse=STATUS`` refuses, ``?raise=1`` fails, ``?post_self=1`` tries to post
    to the connection being opened. $default: a command per message (see below)."""
    websocket_events.add(event)
    request = event["requestContext"]
    connection_id = request["connectionId"]
    if request["routeKey"] == "$connect":
        query = event.get("queryStringParameters") or {}
        if "refuse" in query:
            return {"statusCode": int(query["refuse"]), "body": f"refused {query['refuse']}"}
        if "raise" in query:
            raise RuntimeError("refused by an exception")
        offered = event["headers"].get("Sec-WebSocket-Protocol")
        if offered:
            chosen = offered.split(",")[0].strip()
            return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": chosen}}
        if "post_self" in query:
            try:
                _management().post_to_connection(ConnectionId=connection_id, Data=b"too early")
            except _management().exceptions.GoneException as exc:
                websocket_events.add({"requestContext": {"routeKey": "gone"}, "error": str(exc)})
        return {"statusCode": 200}
    if request["routeKey"] == "$disconnect":
        return {"statusCode": 200}
    body: str = event["body"]
    reply: bytes | str
    if event["isBase64Encoded"]:
        reply = json.dumps({"binary": body})
    elif body == "event":
        reply = json.dumps(event)
    elif body == "bytes":
        reply = PNG
    elif body == "get":
        found = _management().get_connection(ConnectionId=connection_id)
        reply = json.dumps(
            {
                "identity": found["Identity"],
                "connected": found["ConnectedAt"].isoformat(),
                "active": found["LastActiveAt"].isoformat(),
            }
        )
    elif body == "close":
        _management().delete_connection(ConnectionId=connection_id)
        return {"statusCode": 200}
    elif body == "boom":
        raise RuntimeError("boom")
    elif body.startswith("sleep:"):
        time.sleep(float(body.split(":", 1)[1]))
        reply = "slept"
    elif body.startswith("to:"):
        _, target, text = body.split(":", 2)
        _management().post_to_connection(ConnectionId=target, Data=text.encode())
        return {"statusCode": 200}
    elif body.startswith("echo:"):
        reply = body.split(":", 1)[1]
    else:
        reply = f"length {len(body)}"
    _management().post_to_connection(
        ConnectionId=connection_id, Data=reply if isinstance(reply, bytes) else reply.encode()
    )
    return {"statusCode": 200, "body": "not sent to the client"}
