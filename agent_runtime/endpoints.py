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
from agent_runtime.events import iso
from agent_runtime.ids import InstanceRef, validate_agent_name
from agent_runtime.protocol import (
    AbortQuery,
    AbortResponse,
    Child,
    ChildrenPage,
    ChildrenQuery,
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
    """Check the address, find the agent's hook, and let it answer the request. A route
    of the agent rather than of an instance (its description, its instances) has no
    ``id`` among the params."""
    name = req.params["name"]
    if "id" in req.params:
        service.instance(name, req.params["id"])  # 400 for a bad name or id, 404 for an unknown agent
    else:
        service.registry.get(validate_agent_name(name))
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
    admitted = await service.prompt(
        name,
        instance_id,
        body.message,
        session=body.session,
        idempotency_key=key,
        attachments=body.attachments,
        images=[(i.media_type, i.data) for i in body.images],
        concurrency=body.concurrency,
    )
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


async def children(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(ChildrenQuery, req.query)
    found = await service.list_children(req.params["name"], req.params["id"], after=query.after, limit=query.limit + 1)
    page = found[: query.limit]
    listed = [
        Child(
            ref=entry.ref,
            agent=entry.child.agent,
            id=entry.child.id,
            call_id=entry.call_id,
            parent_submission_id=entry.parent_submission_id,
            submission_id=entry.latest_submission_id,
            resumable=entry.resumable,
            status=record.status.value if record else "queued",
            outcome=record.outcome.value if record and record.outcome else None,
            created_at=iso(entry.created_at),
            settled_at=iso(record.settled_at) if record else None,
        )
        for entry, record in page
    ]
    return json_response(ChildrenPage(children=listed, next=page[-1][0].ref if len(found) > query.limit else None))


async def _child(service: Service, req: RouteRequest) -> InstanceRef:
    return await service.child_of(req.params["name"], req.params["id"], req.params["ref"])


async def child_submission(service: Service, req: RouteRequest) -> RouteResponse:
    child = await _child(service, req)
    record = await service.submission(child.agent, child.id, req.params["submission_id"])
    return json_response(Submission.from_record(record))


async def child_messages(service: Service, req: RouteRequest) -> RouteResponse:
    child = await _child(service, req)
    query = parse_query(HistoryQuery, req.query)
    page = await service.history(child.agent, child.id, req.params["session"], limit=query.limit, cursor=query.cursor)
    return json_response(HistoryPage.from_page(page))


async def child_events(service: Service, req: RouteRequest) -> RouteResponse:
    child = await _child(service, req)
    query = parse_query(EventsQuery, req.query)
    page = await service.events_after(child.agent, child.id, after=query.after, limit=query.limit, wait=query.wait)
    return json_response(EventsPage.from_page(page))


__all__ = [
    "Endpoint",
    "abort",
    "child_events",
    "child_messages",
    "child_submission",
    "children",
    "dispatch",
    "events",
    "messages",
    "prompt",
    "serve",
    "submission",
]
