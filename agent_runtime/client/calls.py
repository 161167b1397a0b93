"""HTTP requests, described once (`_Call`) for both clients and for the connection's fetches."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from agent_runtime.client.errors import error_from_reply
from agent_runtime.protocol import (
    AbortResponse,
    DispatchReceipt,
    EventsPage,
    HistoryPage,
    PromptResponse,
    Submission,
)

T = TypeVar("T")


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _instance(name: str, instance_id: str, *rest: str) -> str:
    return _path("agents", name, instance_id, *rest)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One HTTP request and how to read its reply: `parse` gets the JSON body of a reply
    whose status is in `ok`; any other status raises."""

    method: str
    path: str
    parse: Callable[[Any], T]
    ok: tuple[int, ...] = (200,)
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds the server may hold the request (long polls): the read timeout covers it.
    holds: float = 0.0

    def result(self, response: httpx.Response) -> T:
        if response.status_code not in self.ok:
            raise error_from_reply(response.status_code, response.content)
        return self.parse(response.json())

    def timeout(self, default: httpx.Timeout) -> httpx.Timeout:
        if default.read is not None and self.holds + 5 > default.read:
            return httpx.Timeout(default.connect, read=self.holds + 10, write=default.write, pool=default.pool)
        return default


def _prompt(
    name: str, instance_id: str, message: str, session: str, wait: float, idempotency_key: str | None
) -> _Call[PromptResponse]:
    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else {}
    body = {"message": message, "session": session, "wait": wait}
    return _Call(
        "POST", _instance(name, instance_id), PromptResponse.model_validate, ok=(200, 202), body=body, headers=headers, holds=wait
    )


def _submission(name: str, instance_id: str, submission_id: str) -> _Call[Submission]:
    return _Call("GET", _instance(name, instance_id, "submissions", submission_id), Submission.model_validate)


def _dispatch(name: str, instance_id: str, input: Any, session: str, dispatch_id: str | None) -> _Call[DispatchReceipt]:
    body: dict[str, Any] = {"input": input, "session": session}
    if dispatch_id is not None:
        body["dispatch_id"] = dispatch_id
    return _Call("POST", _instance(name, instance_id, "dispatch"), DispatchReceipt.model_validate, ok=(202,), body=body)


def _history(name: str, instance_id: str, session: str, limit: int, cursor: str | None) -> _Call[HistoryPage]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor is not None else {})}
    path = _instance(name, instance_id, "sessions", session, "messages")
    return _Call("GET", path, HistoryPage.model_validate, params=params)


def _events(name: str, instance_id: str, after: int, limit: int, wait: float) -> _Call[EventsPage]:
    params = {"after": str(after), "limit": str(limit), "wait": repr(float(wait))}
    return _Call("GET", _instance(name, instance_id, "events"), EventsPage.model_validate, params=params, holds=wait)


def _fetch(path: str) -> _Call[EventsPage]:
    """A ``fetch`` reference of an event frame: an events path relative to the HTTP API."""
    return _Call("GET", path, EventsPage.model_validate)


def _abort(name: str, instance_id: str, queued: bool) -> _Call[AbortResponse]:
    params = {"queued": "true"} if queued else None
    return _Call("POST", _instance(name, instance_id, "abort"), AbortResponse.model_validate, params=params)


def _headers(token: str | None) -> dict[str, str]:
    headers = {"user-agent": "agent-runtime-client/1", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _next_delay(delay: float) -> float:
    return min(delay * 1.5, 2.0)
