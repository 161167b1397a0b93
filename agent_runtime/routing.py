"""An agent's HTTP hook: ``route(req, call_next)`` sees every request for the agent's
instances before the runtime does, and either answers it or passes it on.

    async def route(req: RouteRequest, call_next):
        if not await authorized(req.headers.get("authorization"), req.params["id"]):
            return req.json({"error": "Unauthorized"}, status=401)
        return await call_next()

An agent module without `route` is not exposed over HTTP. `call_next()` does the request's
work (parse the body, call the runtime) and returns its `RouteResponse`; a runtime error
the caller caused (400, 404, 409, 413) comes back as its error response, so a hook can look
at or decorate every answer, while a server fault propagates. Nothing is admitted until
the hook calls `call_next()`; calling it again returns the first response without doing
the work twice.

A hook written with ``async def`` gets an awaitable `call_next`. A plain function gets one
that returns the response directly; it runs on a worker thread, so it may block (say, a
synchronous call to an auth service) without stalling the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import json
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, overload

from pydantic import BaseModel

from agent_runtime.errors import AgentRuntimeError
from agent_runtime.protocol import error_response, parse_json

_NO_VALUE: Any = object()


class Headers(Mapping[str, str]):
    """Request headers looked up case-insensitively; names are kept lower-cased."""

    def __init__(self, headers: Mapping[str, str] | None = None) -> None:
        self._items = {name.lower(): value for name, value in (headers or {}).items()}

    def __getitem__(self, name: str) -> str:
        if not isinstance(name, str):
            raise KeyError(name)
        return self._items[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@dataclass
class RouteResponse:
    """What a hook returns: `req.json(...)`, the result of `call_next()` (whose status,
    headers and body it may change), or one built directly."""

    status: int = 200
    body: str | bytes = ""
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


def json_response(obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> RouteResponse:
    """`obj` (a pydantic model or any JSON value) as an ``application/json`` response."""
    if isinstance(obj, BaseModel):
        body = obj.model_dump_json()
    else:
        body = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    extra = {name.lower(): value for name, value in (headers or {}).items()}
    return RouteResponse(status, body, {"content-type": "application/json", **extra})


@dataclass(frozen=True, eq=False)
class RouteRequest:
    """One HTTP request to an instance, as the agent's `route` hook sees it.

    `params` holds the path's parameters: always ``name`` (the agent) and ``id`` (the
    instance), plus the route's own (``submission_id``, ``session``, a file's ``path``).
    `query` has repeated names joined with commas, as API Gateway sends them. `body` is the
    text (``""`` when there is none, and on a file upload, whose bytes are `raw`). `event` is the transport's event as received (API Gateway payload
    2.0), for what the fields leave out: authorizer claims, source IP, stage.
    """

    method: str
    path: str
    headers: Headers
    query: Mapping[str, str]
    params: Mapping[str, str]
    body: str = ""
    event: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False)
    raw: bytes = field(default=b"", repr=False)

    @overload
    def json(self) -> Any: ...

    @overload
    def json(self, obj: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> RouteResponse: ...

    def json(self, obj: Any = _NO_VALUE, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Any:
        """``req.json()``: the body parsed as JSON (`InvalidJson`, a 400, when it is not).
        ``req.json(obj, status=401)``: a JSON response for the hook to return."""
        if obj is _NO_VALUE:
            return parse_json(self.body)
        return json_response(obj, status=status, headers=headers)


#: Does the request's work once the hook lets it through.
Endpoint = Callable[[RouteRequest], Awaitable[RouteResponse]]


def _is_async(hook: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(type(hook).__call__)


async def _answer(endpoint: Endpoint, req: RouteRequest) -> RouteResponse:
    try:
        return await endpoint(req)
    except AgentRuntimeError as exc:
        status, body = error_response(exc)
        if status >= 500:
            raise  # a fault of ours, not an answer: the handler logs it and answers 500
        return json_response(body, status=status)


async def handle(hook: Callable[..., Any], req: RouteRequest, endpoint: Endpoint) -> RouteResponse:
    """Run the agent's hook on `req`; its `call_next()` runs `endpoint(req)` at most once."""
    loop = asyncio.get_running_loop()
    work: asyncio.Task[RouteResponse] | None = None

    async def call_next() -> RouteResponse:
        nonlocal work
        if work is None:
            work = asyncio.ensure_future(_answer(endpoint, req))
        return await work

    if _is_async(hook):
        response = await hook(req, call_next)
    else:

        def call_next_blocking() -> RouteResponse:
            return asyncio.run_coroutine_threadsafe(call_next(), loop).result()

        response = await asyncio.to_thread(hook, req, call_next_blocking)
        if inspect.isawaitable(response):
            if inspect.iscoroutine(response):
                response.close()
            raise TypeError("the route hook returned an awaitable: define it with `async def`")
    if not isinstance(response, RouteResponse):
        raise TypeError(
            f"the route hook returned {type(response).__name__}; expected a RouteResponse "
            "(`return await call_next()` or `return req.json(...)`)"
        )
    return response


__all__ = ["Endpoint", "Headers", "RouteRequest", "RouteResponse", "handle", "json_response"]
