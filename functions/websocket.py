"""WebSocket Lambda: the live surface, on an API Gateway WebSocket API.

A connection is made to one instance, chosen by query parameters (WebSocket routes carry
no path parameters): ``wss://{api}/{stage}?agent=NAME&id=ID[&token=...]``.

- ``$connect`` checks the address, then runs the agent's ``websocket(req, call_next)``
  hook (headers and query string; browsers cannot set headers, so a ``token`` query
  parameter is the usual credential). An agent without the hook is not reachable over
  WebSocket (404). `call_next()` registers the connection; a hook answering 401/403
  refuses it.
- ``$default`` takes versioned JSON text frames (`protocol.ClientFrame`):
  ``prompt`` (admits a submission, answers ``accepted``; the connection then gets the
  run's events and a ``result``), ``subscribe`` (replays the events after ``after``,
  then streams; answers ``ready`` with the offset it replayed up to), ``abort``,
  ``ping`` (``pong``). A malformed frame gets an ``error`` frame; the connection stays.
  Binary frames are refused the same way.
- ``$disconnect`` forgets the connection.

Replies go through the management API (`Poster`), as API Gateway sends a route's return
value only when a route response is configured. Live events are posted by whoever stores
them (the worker, or an admission); see `agent_runtime.streaming`. Around a subscribe an
event may arrive twice: clients keep the last offset they saw and drop anything at or
below it (`agent_runtime.client` does).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, TypeAdapter, ValidationError

from agent_runtime import settings
from agent_runtime.adapters.aws.bootstrap import broadcaster, clients, default_service, run
from agent_runtime.errors import AgentNotFound, AgentRuntimeError, InvalidInput
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import Connections, Poster, Subscription
from agent_runtime.protocol import (
    WS_PROTOCOL_VERSION,
    AbortFrame,
    ClientFrame,
    PingFrame,
    PromptFrame,
    Submission,
    SubscribeFrame,
    error_response,
)
from agent_runtime.routing import Headers, RouteRequest, RouteResponse, handle, json_response
from agent_runtime.service import Service
from agent_runtime.streaming import frames_for
from functions import imports_done

imports_done()

logger = Logger()

#: Events replayed per read on subscribe; a client far behind gets them page by page.
REPLAY_PAGE = 500
#: A subscribe replays at most this many events; a client further behind reads the
#: rest over HTTP (``GET .../events?after=``), which the ``ready`` frame's offset tells.
REPLAY_MAX = 5000

_FRAME: TypeAdapter[Any] = TypeAdapter(ClientFrame, config=ConfigDict(defer_build=True))


@dataclass
class Services:
    runtime: Service
    connections: Connections
    poster: Poster


_services: Services | None = None


def set_services(services: Services | None) -> None:
    """Replace what the handler uses (tests); None goes back to the container's own."""
    global _services
    _services = services


@functools.cache
def _default_services(endpoint: str) -> Services:
    """The runtime's own fan-out (the stack sets its endpoint); else one for the stage
    the event came through."""
    rt = default_service()
    fanout = rt.broadcaster or broadcaster(clients(), settings.Settings.from_env().table, endpoint)
    assert fanout is not None
    return Services(rt, fanout.connections, fanout.poster)


def services(event: dict[str, Any]) -> Services:
    if _services is not None:
        return _services
    return _default_services(callback_url(event))


def callback_url(event: dict[str, Any]) -> str:
    """The management API endpoint: from the environment (set by the stack), else the
    stage the event came through."""
    configured = os.environ.get(settings.ENV_WEBSOCKET_ENDPOINT)
    if configured:
        return configured
    context = event.get("requestContext", {})
    return f"https://{context.get('domainName')}/{context.get('stage')}"


def frame(kind: str, **fields: Any) -> bytes:
    body = {"v": WS_PROTOCOL_VERSION, "type": kind, **{k: v for k, v in fields.items() if v is not None}}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def error_frame(exc: BaseException, request_id: str | None = None) -> bytes:
    status, body = error_response(exc)
    detail = body.error.model_dump(exclude_none=True)
    return frame("error", request_id=request_id, status=status, error=detail)


# --- $connect ------------------------------------------------------------------------------


def _instance(query: dict[str, str]) -> InstanceRef:
    agent, instance_id = query.get("agent"), query.get("id")
    if not agent or not instance_id:
        raise InvalidInput("connect with ?agent=NAME&id=ID", details={"query": sorted(query)})
    return InstanceRef(agent, instance_id)


def connect(event: dict[str, Any], svc: Services) -> dict[str, Any]:
    context = event["requestContext"]
    query = dict(event.get("queryStringParameters") or {})
    try:
        instance = _instance(query)
        hook = svc.runtime.registry.get(instance.agent).websocket
        if hook is None:  # not exposed over WebSocket: indistinguishable from an unknown agent
            raise AgentNotFound(f"no agent named {instance.agent!r}", details={"name": instance.agent})
    except AgentRuntimeError as exc:
        return _refusal(exc)
    connection_id = context["connectionId"]

    async def endpoint(req: RouteRequest) -> RouteResponse:
        await svc.connections.add(Subscription(connection_id, instance), now=svc.runtime.clock())
        return json_response({"connected": True})

    req = RouteRequest(
        method="GET",
        path=event.get("path") or "/",
        headers=Headers(event.get("headers") or {}),
        query=MappingProxyType(query),
        params=MappingProxyType({"name": instance.agent, "id": instance.id}),
        event=MappingProxyType(event),
    )
    reply = run(handle(hook, req, endpoint))
    logger.info("connect", instance=instance.key, connection_id=connection_id, status=reply.status)
    body = reply.body.decode() if isinstance(reply.body, bytes) else reply.body
    return {"statusCode": reply.status, "headers": reply.headers, "body": body}


def _refusal(exc: AgentRuntimeError) -> dict[str, Any]:
    status, body = error_response(exc)
    return {"statusCode": status, "headers": {"content-type": "application/json"}, "body": body.model_dump_json()}


# --- $default ------------------------------------------------------------------------------


async def _reply(svc: Services, connection_id: str, data: bytes) -> None:
    if not await svc.poster.post(connection_id, data):
        await svc.connections.remove(connection_id)


async def message(event: dict[str, Any], svc: Services) -> None:
    connection_id = event["requestContext"]["connectionId"]
    request_id: str | None = None
    try:
        if event.get("isBase64Encoded"):
            raise InvalidInput("binary frames are not supported: send JSON text frames")
        try:
            raw = json.loads(event.get("body") or "")
        except json.JSONDecodeError:
            raise InvalidInput("frame is not JSON") from None
        if isinstance(raw, dict) and isinstance(raw.get("request_id"), str):
            request_id = raw["request_id"][:128]
        try:
            parsed = _FRAME.validate_python(raw)
        except ValidationError as exc:
            details = {"errors": [{"loc": list(e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]}
            raise InvalidInput("frame does not match the protocol", details=details) from None
        subscription = await svc.connections.get(connection_id)
        if subscription is None:
            raise InvalidInput("unknown connection: connect again")
        await _dispatch_frame(parsed, subscription, svc)
    except AgentRuntimeError as exc:
        status, _ = error_response(exc)
        if status >= 500:
            raise
        await _reply(svc, connection_id, error_frame(exc, request_id))


async def _dispatch_frame(parsed: Any, subscription: Subscription, svc: Services) -> None:
    rt, instance, connection_id = svc.runtime, subscription.instance, subscription.connection_id
    if isinstance(parsed, PingFrame):
        await _reply(svc, connection_id, frame("pong", request_id=parsed.request_id))
    elif isinstance(parsed, PromptFrame):
        if not subscription.subscribed:
            # Before admission, so none of the run's events can pass the connection by.
            await svc.connections.subscribe(connection_id, session=parsed.session, now=rt.clock())
        admission = await rt.prompt(
            instance.agent,
            instance.id,
            parsed.message,
            session=parsed.session,
            idempotency_key=parsed.request_id,
            attachments=parsed.attachments,
        )
        submission = Submission.from_record(admission.record).model_dump(mode="json")
        await _reply(svc, connection_id, frame("accepted", request_id=parsed.request_id, submission=submission))
    elif isinstance(parsed, SubscribeFrame):
        await svc.connections.subscribe(connection_id, session=parsed.session, now=rt.clock())
        offset = await _replay(svc, subscription, parsed)
        await _reply(svc, connection_id, frame("ready", offset=offset, session=parsed.session))
    elif isinstance(parsed, AbortFrame):
        aborted = await rt.abort(instance.agent, instance.id, queued=parsed.queued)
        ids = [r.id for r in aborted]
        await _reply(svc, connection_id, frame("accepted", request_id=parsed.request_id, aborted=ids))


async def _replay(svc: Services, subscription: Subscription, parsed: SubscribeFrame) -> int:
    """Post the events after `parsed.after` (this session's, if one was named); returns
    the offset replayed up to. Without `after`, nothing is replayed: the current end."""
    rt, instance = svc.runtime, subscription.instance
    after = parsed.after
    if after is None:
        return await rt.events.end(instance, now=rt.clock())
    sent = 0
    while sent < REPLAY_MAX:
        page = await rt.events.read(instance, after=after, limit=REPLAY_PAGE, now=rt.clock())
        for event in page.events:
            if parsed.session is None or event.session in (None, parsed.session):
                for data in frames_for(event):
                    if not await svc.poster.post(subscription.connection_id, data):
                        await svc.connections.remove(subscription.connection_id)
                        return page.last
        sent += len(page.events)
        after = page.last
        if len(page.events) < REPLAY_PAGE:
            break
    return after


# --- $disconnect and the entry point --------------------------------------------------------


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = event.get("requestContext", {}).get("routeKey")
    svc = services(event)
    if route == "$connect":
        return connect(event, svc)
    if route == "$disconnect":
        run(svc.connections.remove(event["requestContext"]["connectionId"]))
        return {"statusCode": 200}
    run(message(event, svc))
    return {"statusCode": 200}
