"""API Gateway WebSocket API: the Lambda proxy events and the ``$connect`` answer.

Pure functions, used by the emulator in `apigw_websocket` and testable without a socket.

The events follow what API Gateway sends a Lambda proxy integration on a WebSocket API
(AWS: "WebSocket API Lambda proxy integration"; the Powertools parser models
``APIGatewayWebSocket*EventModel`` accept them):

- every ``requestContext`` carries ``routeKey``, ``eventType``, ``connectionId``,
  ``connectedAt`` and ``requestTimeEpoch`` (ms), ``requestTime``, ``requestId`` and
  ``extendedRequestId``, ``domainName``, ``stage``, ``apiId``, ``identity`` (``sourceIp``,
  ``userAgent``) and ``messageDirection: "IN"``;
- ``$connect`` has the handshake's headers as sent (names not lower-cased; the last value in
  ``headers``, all of them in ``multiValueHeaders``; ``Connection`` and ``Upgrade`` left out)
  plus ``X-Amzn-Trace-Id`` and ``X-Forwarded-For/Port/Proto``, and the query string in
  ``queryStringParameters`` / ``multiValueQueryStringParameters`` when there is one;
- a message (``$default``) has ``messageId`` and the ``body``; a binary one is base64 with
  ``isBase64Encoded: true``;
- ``$disconnect`` has ``disconnectStatusCode`` and ``disconnectReason``, and only the few
  headers API Gateway sends with it.
"""

from __future__ import annotations

import base64
import email.utils
import http
import os
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from websockets.datastructures import Headers
from websockets.http11 import Response

from agent_runtime.dev.apigw_events import http_response, new_request_id
from agent_runtime.dev.lambda_runtime import Invocation

__all__ = [
    "ConnectionInfo",
    "StageInfo",
    "build_connect_event",
    "build_disconnect_event",
    "build_message_event",
    "chosen_subprotocol",
    "connect_refusal",
    "handshake_response",
    "new_connection_id",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_HOP_BY_HOP = {"connection", "upgrade", "keep-alive", "transfer-encoding", "te"}
_SKIPPED_RESPONSE_HEADERS = {"content-length", "connection", "transfer-encoding", "date"}
_INTERNAL_ERROR = b'{"message": "Internal server error"}'


@dataclass(frozen=True)
class StageInfo:
    """What every event's ``requestContext`` says about the API."""

    stage: str
    domain_name: str
    api_id: str = "local"


@dataclass(frozen=True)
class ConnectionInfo:
    """What every event's ``requestContext`` says about the connection."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: float  # epoch seconds


def new_connection_id() -> str:
    """An id shaped like API Gateway's (``"L0SM9cOFvHcCIhw="``), safe in a URL path."""
    while True:
        candidate = base64.b64encode(os.urandom(11)).decode()
        if "+" not in candidate and "/" not in candidate:
            return candidate


def build_connect_event(
    stage: StageInfo,
    connection: ConnectionInfo,
    *,
    headers: Iterable[tuple[str, str]],
    query: str = "",
    server_port: int = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """The ``$connect`` event for an opening handshake (`query` as sent, without ``?``)."""
    now = connection.connected_at if now is None else now
    single: dict[str, str] = {}
    multi: dict[str, list[str]] = {}
    for name, value in headers:
        if name.lower() not in _HOP_BY_HOP:
            single[name] = value
            multi.setdefault(name, []).append(value)
    sent = {name.lower(): name for name in single}
    forwarded = single.pop(sent.get("x-forwarded-for", ""), None)
    added = {
        "X-Amzn-Trace-Id": f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}",
        "X-Forwarded-For": f"{forwarded}, {connection.source_ip}"
        if forwarded
        else connection.source_ip,
        "X-Forwarded-Port": str(server_port),
        "X-Forwarded-Proto": "http",
    }
    for name, value in added.items():
        if name.lower() in sent:  # API Gateway's value replaces the client's
            single.pop(sent[name.lower()], None)
            multi.pop(sent[name.lower()], None)
        single[name] = value
        multi[name] = [value]
    event: dict[str, Any] = {"headers": single, "multiValueHeaders": multi}
    if query:
        params: dict[str, str] = {}
        multi_params: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            params[name] = value
            multi_params.setdefault(name, []).append(value)
        event["queryStringParameters"] = params
        event["multiValueQueryStringParameters"] = multi_params
    event["requestContext"] = _request_context(
        stage, connection, route_key="$connect", event_type="CONNECT", now=now
    )
    event["isBase64Encoded"] = False
    return event


def build_message_event(
    stage: StageInfo,
    connection: ConnectionInfo,
    message: str | bytes,
    *,
    now: float | None = None,
) -> dict[str, Any]:
    """The ``$default`` event for one message; a binary one arrives base64-encoded."""
    binary = isinstance(message, bytes)
    context = _request_context(
        stage,
        connection,
        route_key="$default",
        event_type="MESSAGE",
        now=time.time() if now is None else now,
        messageId=new_request_id(),
    )
    return {
        "requestContext": context,
        "body": base64.b64encode(message).decode() if isinstance(message, bytes) else message,
        "isBase64Encoded": binary,
    }


def build_disconnect_event(
    stage: StageInfo,
    connection: ConnectionInfo,
    *,
    status_code: int,
    reason: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The ``$disconnect`` event, with the few headers API Gateway sends with it."""
    headers = {
        "Host": stage.domain_name,
        "x-api-key": "",
        "X-Forwarded-For": "",
        "x-restapi": "",
    }
    return {
        "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "requestContext": _request_context(
            stage,
            connection,
            route_key="$disconnect",
            event_type="DISCONNECT",
            now=time.time() if now is None else now,
            disconnectStatusCode=status_code,
            disconnectReason=reason,
        ),
        "isBase64Encoded": False,
    }


def _request_context(
    stage: StageInfo,
    connection: ConnectionInfo,
    *,
    route_key: str,
    event_type: str,
    now: float,
    **extra: Any,
) -> dict[str, Any]:
    request_id = new_request_id()
    return {
        "routeKey": route_key,
        **extra,
        "eventType": event_type,
        "extendedRequestId": request_id,
        "requestTime": _clf_time(now),
        "messageDirection": "IN",
        "stage": stage.stage,
        "connectedAt": int(connection.connected_at * 1000),
        "requestTimeEpoch": int(now * 1000),
        "identity": {"userAgent": connection.user_agent, "sourceIp": connection.source_ip},
        "requestId": request_id,
        "domainName": stage.domain_name,
        "connectionId": connection.connection_id,
        "apiId": stage.api_id,
    }


def connect_refusal(invocation: Invocation) -> Response | None:
    """None when the ``$connect`` result accepts the connection, else the HTTP refusal."""
    if invocation.outcome != "ok":
        return handshake_response(500, [], _INTERNAL_ERROR)
    result = invocation.result
    if not (isinstance(result, dict) and "statusCode" in result):
        return None
    answer = http_response(result)
    if 200 <= answer.status < 300:
        return None
    if answer.status < 200:
        return handshake_response(500, [], _INTERNAL_ERROR)
    return handshake_response(answer.status, answer.headers, answer.body)


def chosen_subprotocol(invocation: Invocation) -> str | None:
    """The ``Sec-WebSocket-Protocol`` an accepting ``$connect`` result answers, if any."""
    result = invocation.result if invocation.outcome == "ok" else None
    headers = result.get("headers") if isinstance(result, dict) else None
    if not isinstance(headers, dict):
        return None
    for name, value in headers.items():
        if str(name).lower() == "sec-websocket-protocol" and isinstance(value, str):
            return value
    return None


def handshake_response(status: int, headers: list[tuple[str, str]], body: bytes) -> Response:
    kept = [(n, v) for n, v in headers if n.lower() not in _SKIPPED_RESPONSE_HEADERS]
    if not any(n.lower() == "content-type" for n, _ in kept):
        kept.append(("Content-Type", "application/json"))
    try:
        phrase = http.HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    fixed = [
        ("Date", email.utils.formatdate(usegmt=True)),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
    ]
    return Response(status, phrase, Headers([*fixed, *kept]), body)


def _clf_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
