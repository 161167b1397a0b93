"""API Gateway HTTP API events (payload format 2.0) for calling HTTP handlers in tests.

`http_event` builds what API Gateway sends a Lambda proxy integration on the ``$default``
route and stage: header names lower-cased, ``Cookie`` moved to ``cookies``, repeated query
names joined with commas in ``queryStringParameters``, ``rawQueryString`` as sent, and a
body that is text, or base64 with ``isBase64Encoded`` when given as bytes.
"""

from __future__ import annotations

import base64
import json as jsonlib
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

ACCOUNT_ID = "123456789012"
API_ID = "local"
DOMAIN = f"{API_ID}.execute-api.us-east-1.amazonaws.com"
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _request_time(now: float) -> str:
    t = time.gmtime(now)
    return f"{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year}:{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} +0000"


def http_event(
    method: str,
    path: str,
    body: str | bytes | Mapping[str, Any] | list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
    query: Mapping[str, str | Sequence[str]] | None = None,
) -> dict[str, Any]:
    """A payload 2.0 event for ``method path``.

    `path` may carry a query string (``/x?limit=2``); `query` adds to it. A dict or list
    `body` is sent as JSON (``content-type: application/json`` unless given), a str as is,
    bytes base64-encoded.
    """
    split = urlsplit(path)
    pairs = parse_qsl(split.query, keep_blank_values=True)
    for name, value in (query or {}).items():
        pairs.extend((name, v) for v in ([value] if isinstance(value, str) else value))
    joined: dict[str, str] = {}
    for name, value in pairs:
        joined[name] = f"{joined[name]},{value}" if name in joined else value

    header_map = {name.lower(): value for name, value in (headers or {}).items()}
    if isinstance(body, Mapping | list):
        body = jsonlib.dumps(body)
        header_map.setdefault("content-type", "application/json")
    cookies = [c.strip() for c in header_map.pop("cookie", "").split(";") if c.strip()]
    size = len(body) if isinstance(body, bytes) else len(body.encode("utf-8", "surrogatepass")) if body else 0
    header_map.setdefault("host", DOMAIN)
    header_map.setdefault("user-agent", "agent-runtime-tests")
    header_map.setdefault("x-forwarded-for", "192.0.2.1")
    header_map.setdefault("x-forwarded-port", "443")
    header_map.setdefault("x-forwarded-proto", "https")
    if body is not None:
        header_map.setdefault("content-length", str(size))

    now = time.time()
    request_id = uuid.uuid4().hex[:16]
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": unquote(split.path),  # HTTP APIs decode the path
        "rawQueryString": urlencode(pairs),
        "headers": header_map,
        "requestContext": {
            "accountId": ACCOUNT_ID,
            "apiId": API_ID,
            "domainName": DOMAIN,
            "domainPrefix": API_ID,
            "http": {
                "method": method.upper(),
                "path": unquote(split.path),
                "protocol": "HTTP/1.1",
                "sourceIp": header_map["x-forwarded-for"].split(",")[0].strip(),
                "userAgent": header_map["user-agent"],
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": _request_time(now),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": isinstance(body, bytes),
    }
    if cookies:
        event["cookies"] = cookies
    if joined:
        event["queryStringParameters"] = joined
    if isinstance(body, bytes):
        event["body"] = base64.b64encode(body).decode()
    elif body is not None:
        event["body"] = body
    return event


__all__ = ["http_event"]
