"""What each HTTP route does once the agent's `route` hook lets the request through.

    handler (functions/http_api.py)  ->  serve(service, req, endpoint)  ->  the hook
        ->  call_next()  ->  endpoint(service, req)  ->  Service  ->  ports

Each endpoint parses what it needs from the `RouteRequest` (body, query, path params)
and calls the service it is given; nothing here knows the transport, and nothing calls
back up into a handler.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent_runtime.errors import AgentNotFound
from agent_runtime.protocol import (
    AbortQuery,
    AbortResponse,
    DispatchReceipt,
    DispatchRequest,
    EventsPage,
    EventsQuery,
    HistoryPage,
    HistoryQuery,
    PromptRequest,
    PromptResponse,
    Submission,
    parse_body,
    parse_query,
)
from agent_runtime.routing import RouteRequest, RouteResponse, handle, json_response
from agent_runtime.service import Service

#: An endpoint: the request's work, given the service.
Endpoint = Callable[[Service, RouteRequest], Awaitable[RouteResponse]]


async def serve(service: Service, req: RouteRequest, endpoint: Endpoint) -> RouteResponse:
    """Check the address, find the agent's hook, and let it answer the request."""
    name = req.params["name"]
    service.instance(name, req.params["id"])  # 400 for a bad name or id, 404 for an unknown agent
    hook = service.registry.get(name).route
    if hook is None:  # not exposed over HTTP: indistinguishable from an unknown agent
        raise AgentNotFound(f"no agent named {name!r}", details={"name": name})

    async def work(request: RouteRequest) -> RouteResponse:
        return await endpoint(service, request)

    return await handle(hook, req, work)


def _location(req: RouteRequest, submission_id: str) -> dict[str, str]:
    return {"location": f"/agents/{req.params['name']}/{req.params['id']}/submissions/{submission_id}"}


async def prompt(service: Service, req: RouteRequest) -> RouteResponse:
    name, instance_id = req.params["name"], req.params["id"]
    body = parse_body(PromptRequest, req.body)
    key = req.headers.get("idempotency-key")
    admitted = await service.prompt(name, instance_id, body.message, session=body.session, idempotency_key=key)
    record = await service.wait(name, instance_id, admitted.record.id, timeout=body.wait)
    submission = Submission.from_record(record)
    if record.settled:
        return json_response(PromptResponse(submission=submission, result=submission.result))
    return json_response(PromptResponse(submission=submission), status=202, headers=_location(req, record.id))


async def submission(service: Service, req: RouteRequest) -> RouteResponse:
    record = await service.submission(req.params["name"], req.params["id"], req.params["submission_id"])
    return json_response(Submission.from_record(record))


async def dispatch(service: Service, req: RouteRequest) -> RouteResponse:
    body = parse_body(DispatchRequest, req.body)
    admitted = await service.dispatch(
        req.params["name"], req.params["id"], body.input, session=body.session, dispatch_id=body.dispatch_id
    )
    receipt = DispatchReceipt.from_record(admitted.record)
    return json_response(receipt, status=202, headers=_location(req, receipt.submission_id))


async def messages(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(HistoryQuery, req.query)
    page = await service.history(
        req.params["name"], req.params["id"], req.params["session"], limit=query.limit, cursor=query.cursor
    )
    return json_response(HistoryPage.from_page(page))


async def events(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(EventsQuery, req.query)
    page = await service.events_after(
        req.params["name"], req.params["id"], after=query.after, limit=query.limit, wait=query.wait
    )
    return json_response(EventsPage.from_page(page))


async def abort(service: Service, req: RouteRequest) -> RouteResponse:
    queued = parse_query(AbortQuery, req.query).queued
    aborted = await service.abort(req.params["name"], req.params["id"], queued=queued)
    return json_response(AbortResponse(aborted=[Submission.from_record(r) for r in aborted]))


__all__ = ["Endpoint", "abort", "dispatch", "events", "messages", "prompt", "serve", "submission"]
