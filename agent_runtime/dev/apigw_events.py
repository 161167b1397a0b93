"""API Gateway HTTP API, payload format 2.0: routes, the Lambda event, the response rules.

Pure functions, used by the emulator in `apigw_http` and testable without a socket.

The event follows what API Gateway sends to a Lambda proxy integration with payload format
2.0 (AWS: "Create AWS Lambda proxy integrations for HTTP APIs"):

- header names lower-cased, repeated headers joined with commas; the ``cookie`` header moves
  to ``cookies`` (one entry per cookie); ``x-forwarded-for``, ``x-forwarded-port``,
  ``x-forwarded-proto`` and ``x-amzn-trace-id`` are added as API Gateway adds them;
- ``rawPath`` and ``requestContext.http.path`` are URL-decoded (HTTP APIs decode the path),
  ``rawQueryString`` is as sent, ``queryStringParameters`` decoded with repeated names joined
  by commas; ``queryStringParameters``, ``cookies``, ``pathParameters`` and ``body`` are left
  out when empty, as API Gateway leaves them out;
- the body is text only for textual media types (``text/*``, JSON, XML, JavaScript, and
  ``+json`` / ``+xml`` types) that are UTF-8 and not content-encoded; anything else, a form
  post included, arrives base64-encoded with ``isBase64Encoded: true``.

The response rules are the 2.0 ones: a dict with ``statusCode`` is a full response (headers,
``cookies`` as one ``set-cookie`` each, ``body`` base64-decoded when ``isBase64Encoded``); any
other JSON value is a 200 ``application/json`` response whose body is that value (a string
as is, anything else serialised). A malformed full response is a 500, as API Gateway answers.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, unquote

__all__ = [
    "HttpResponse",
    "Route",
    "build_http_event",
    "error_response",
    "http_response",
    "is_text_content",
    "new_request_id",
    "select_route",
]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TEXT_TYPES = {
    "application/json",
    "application/xml",
    "application/javascript",
    "application/x-javascript",
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}
_PARAMETER = re.compile(r"^\{([A-Za-z0-9_.-]+)(\+?)\}$")


@dataclass(frozen=True)
class Route:
    """One route key, ``"METHOD /path/{param}/{greedy+}"``; method ``ANY`` matches all."""

    method: str
    path: str

    @classmethod
    def parse(cls, key: str) -> Route:
        method, _, path = key.strip().partition(" ")
        if not path.startswith("/"):
            raise ValueError(f"a route looks like 'GET /path/{{id}}', got {key!r}")
        segments = path.strip("/").split("/") if path != "/" else []
        for index, segment in enumerate(segments):
            match = _PARAMETER.match(segment)
            if match and match.group(2) and index != len(segments) - 1:
                raise ValueError(f"a greedy {segment} must be the last segment of {key!r}")
        return cls(method=method.upper(), path=path)

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"

    @property
    def segments(self) -> list[str]:
        return self.path.strip("/").split("/") if self.path != "/" else []

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """Higher is chosen first: literal segments, no greedy part, length, exact method."""
        segments = self.segments
        literal = sum(1 for s in segments if not _PARAMETER.match(s))
        greedy = any((m := _PARAMETER.match(s)) and m.group(2) for s in segments)
        return (literal, 0 if greedy else 1, len(segments), 0 if self.method == "ANY" else 1)

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when this route takes the request, else None."""
        if self.method not in ("ANY", method.upper()):
            return None
        wanted = self.segments
        given = path.strip("/").split("/") if path.strip("/") else []
        params: dict[str, str] = {}
        for index, segment in enumerate(wanted):
            parameter = _PARAMETER.match(segment)
            if parameter and parameter.group(2):
                rest = given[index:]
                if not rest or not all(rest):
                    return None
                params[parameter.group(1)] = "/".join(rest)
                return params
            if index >= len(given):
                return None
            if parameter:
                if not given[index]:
                    return None
                params[parameter.group(1)] = given[index]
            elif segment != given[index]:
                return None
        return params if len(given) == len(wanted) else None


def select_route(
    routes: Iterable[Route], method: str, path: str
) -> tuple[Route, dict[str, str]] | None:
    """The most specific route taking the request, as API Gateway prefers the closest match."""
    candidates = [
        (route, params) for route in routes if (params := route.match(method, path)) is not None
    ]
    if not candidates:
        return None
    return max(candidates, key=lambda pair: pair[0].specificity)


def is_text_content(content_type: str | None, content_encoding: str | None = None) -> bool:
    """Whether API Gateway passes a body of this type as text rather than base64."""
    if content_encoding and content_encoding.strip().lower() not in ("", "identity"):
        return False
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media.startswith("text/") or media in _TEXT_TYPES or media.endswith(("+json", "+xml"))


def new_request_id() -> str:
    """An id shaped like API Gateway's (``"JKJaXmPLvHcESHA="``)."""
    return base64.b64encode(os.urandom(11)).decode()


def build_http_event(
    *,
    method: str,
    target: str,
    headers: Iterable[tuple[str, str]],
    body: bytes,
    source_ip: str,
    server_port: int,
    protocol: str = "HTTP/1.1",
    route_key: str = "$default",
    path_parameters: dict[str, str] | None = None,
    api_id: str = "local",
    account_id: str = "123456789012",
    request_id: str | None = None,
    now: float | None = None,
) -> dict[str, Any]:
    """The payload format 2.0 event for one HTTP request (`target` is path plus query)."""
    raw_path_encoded, _, raw_query = target.partition("?")
    raw_path = unquote(raw_path_encoded.split("#", 1)[0]) or "/"
    now = time.time() if now is None else now
    request_id = request_id or new_request_id()

    joined: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in headers:
        name = name.lower()
        if name == "cookie":
            cookies.extend(part.strip() for part in value.split(";") if part.strip())
        elif name not in _HOP_BY_HOP:
            joined[name] = f"{joined[name]},{value}" if name in joined else value
    if body:
        joined["content-length"] = str(len(body))
    forwarded = joined.get("x-forwarded-for")
    joined["x-forwarded-for"] = f"{forwarded}, {source_ip}" if forwarded else source_ip
    joined["x-forwarded-port"] = str(server_port)
    joined["x-forwarded-proto"] = "http"
    joined.setdefault("x-amzn-trace-id", f"Root=1-{int(now):08x}-{uuid.uuid4().hex[:24]}")

    host = joined.get("host") or "localhost"
    host = host.split("]", 1)[0] + "]" if host.startswith("[") else host.rsplit(":", 1)[0]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
    }
    if cookies:
        event["cookies"] = cookies
    event["headers"] = joined
    if raw_query:
        params: dict[str, str] = {}
        for name, value in parse_qsl(raw_query, keep_blank_values=True):
            params[name] = f"{params[name]},{value}" if name in params else value
        event["queryStringParameters"] = params
    event["requestContext"] = {
        "accountId": account_id,
        "apiId": api_id,
        "domainName": host,
        "domainPrefix": host.split(".", 1)[0],
        "http": {
            "method": method.upper(),
            "path": raw_path,
            "protocol": protocol,
            "sourceIp": source_ip,
            "userAgent": joined.get("user-agent", ""),
        },
        "requestId": request_id,
        "routeKey": route_key,
        "stage": "$default",
        "time": _clf_time(now),
        "timeEpoch": int(now * 1000),
    }
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        text = None
        if is_text_content(joined.get("content-type"), joined.get("content-encoding")):
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                text = None
        event["body"] = text if text is not None else base64.b64encode(body).decode()
        event["isBase64Encoded"] = text is None
    else:
        event["isBase64Encoded"] = False
    return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def error_response(status: int, message: str) -> HttpResponse:
    """An error in API Gateway's own shape: ``{"message": "..."}``."""
    body = json.dumps({"message": message}, separators=(",", ":")).encode()
    return HttpResponse(status, [("content-type", "application/json")], body)


def http_response(result: Any) -> HttpResponse:
    """Turn what the handler returned into the HTTP response API Gateway would send."""
    if not (isinstance(result, dict) and "statusCode" in result):
        body = result if isinstance(result, str) else json.dumps(result)
        return HttpResponse(200, [("content-type", "application/json")], body.encode())
    try:
        return _full_response(result)
    except (TypeError, ValueError, binascii.Error):
        return error_response(500, "Internal Server Error")


def _full_response(result: dict[str, Any]) -> HttpResponse:
    status = result["statusCode"]
    if isinstance(status, bool) or not isinstance(status, int | str):
        raise TypeError("statusCode must be a number")
    status = int(status)
    if not 100 <= status <= 599:
        raise ValueError("statusCode out of range")
    headers: list[tuple[str, str]] = []
    raw_headers = result.get("headers") or {}
    if not isinstance(raw_headers, dict):
        raise TypeError("headers must be an object")
    for name, value in raw_headers.items():
        if isinstance(value, dict | list) or value is None:
            raise TypeError(f"header {name} must be a string")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        headers.append((str(name).lower(), text))
    cookies = result.get("cookies") or []
    if not isinstance(cookies, list) or not all(isinstance(c, str) for c in cookies):
        raise TypeError("cookies must be a list of strings")
    headers.extend(("set-cookie", cookie) for cookie in cookies)
    body = result.get("body")
    if body is None:
        data = b""
    elif not isinstance(body, str):
        raise TypeError("body must be a string")
    elif result.get("isBase64Encoded"):
        data = base64.b64decode(body, validate=True)
    else:
        data = body.encode()
    return HttpResponse(status, headers, data)


def _clf_time(epoch: float) -> str:
    t = time.gmtime(epoch)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"
