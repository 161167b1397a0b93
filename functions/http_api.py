"""HTTP Lambda (API Gateway HTTP API, payload format 2.0): prompt, dispatch, reads, abort.

    POST /agents/{name}/{id}                              prompt: 200 when settled within `wait`, else 202
    GET  /agents/{name}/{id}/submissions/{submission_id}  one submission
    GET  .../submissions/{submission_id}/trace            its spans (`functions._http_traces`)
    POST /agents/{name}/{id}/dispatch                     202 receipt; same dispatch_id and input, same receipt
    GET  /agents/{name}/{id}/sessions/{session}/messages  history, paged: ?limit=&cursor=
    GET  /agents/{name}/{id}/children                     the instance's children: ?after=&limit=
    GET  /agents/{name}/{id}/children/{ref}/...           a child's submissions/{id}, sessions/{s}/messages, events
    POST /agents/{name}/{id}/abort                        the running submission; ?queued=true, queued ones too
    GET  /agents/{name}/{id}/effects, DELETE .../effects/{effect_id}   scheduled effects; cancel one
    files and variables: see `agent_runtime.endpoints_files`
    GET  /openapi.json, GET /health
    GET  /agents, /agents/{name}, /agents/{name}/instances, /agents/{name}/{id}/submissions,
         /console/...                                     catalog and console (functions._http_catalog)

Every /agents route refuses a body over 1 MiB (413), then `agent_runtime.endpoints.serve`
checks name and id (400), finds the agent (404 when unknown or when its module has no
`route` hook: such an agent is not exposed) and runs the agent's hook. Only the hook's
`call_next()` runs the route's endpoint (`agent_runtime.endpoints`), which parses the
request and calls the service, so a hook that answers itself admits nothing.

A prompt that settles within `wait` answers 200 whatever its outcome: a failed or aborted
submission carries `outcome` and `error`, and the reply has no `result`. Errors are
``{"error": {"type", "message", "details"?}}`` with the status from
`agent_runtime.protocol.ERROR_STATUS`; anything else is a logged 500 `internal_error`.
"""

from __future__ import annotations

import base64
import functools
import json
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel

from agent_runtime import endpoints, endpoints_effects, endpoints_files, tracing
from agent_runtime.adapters.aws.bootstrap import default_service, run
from agent_runtime.endpoints_catalog import Work
from agent_runtime.errors import NotFound, PayloadTooLarge
from agent_runtime.protocol import (
    MAX_BODY_BYTES,
    AbortQuery,
    AbortResponse,
    ChildrenPage,
    ChildrenQuery,
    DispatchReceipt,
    DispatchRequest,
    ErrorBody,
    EventsPage,
    EventsQuery,
    HistoryPage,
    HistoryQuery,
    InvalidJson,
    PromptRequest,
    PromptResponse,
    Submission,
    error_response,
)
from agent_runtime.protocol_effects import EffectsList, EffectsQuery, EffectView
from agent_runtime.protocol_files import (
    FILE_BODY_MAX_BYTES,
    FilesPage,
    FilesQuery,
    FileView,
    UploadRequest,
    UploadTicket,
    VariablePut,
    VariablesList,
    VariableView,
)
from agent_runtime.routing import Headers, RouteRequest
from agent_runtime.service import Service
from functions import _http_catalog, _http_traces, imports_done

imports_done()

API_VERSION = "1.0.0"

logger = Logger()
app = APIGatewayHttpResolver()
_service: Service | None = None


def set_runtime(service: Service | None) -> None:
    """Serve with `service` instead of `default_service()` (tests, the local stack); None resets."""
    global _service
    _service = service


def service() -> Service:
    return _service if _service is not None else default_service()


# --- OpenAPI: replies from each route's `responses=`, requests from `_REQUESTS` -------------


def _json(model: type[BaseModel], description: str, **headers: str) -> OpenAPIResponse:
    doc: OpenAPIResponse = {"description": description, "content": {"application/json": {"model": model}}}
    if headers:
        doc["headers"] = {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}
    return doc


_ERRORS: dict[int, OpenAPIResponse] = {
    400: _json(ErrorBody, "invalid_json, invalid_request"),
    404: _json(ErrorBody, "agent_not_found (also for an agent without a route hook), submission_not_found"),
    409: _json(ErrorBody, "conflict: an idempotency key or dispatch id reused with other input"),
    413: _json(ErrorBody, "payload_too_large: a body over 1 MiB, or input over the runtime's limit"),
    500: _json(ErrorBody, "internal_error"),
}


def _responses(ok: dict[int, OpenAPIResponse]) -> dict[int, OpenAPIResponse]:
    return {**ok, **_ERRORS}


@dataclass(frozen=True)
class _Accepts:
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    headers: tuple[tuple[str, str], ...] = ()


# Bodies and query strings are parsed after the agent's route hook (which must see every
# request first), not from the route functions' signatures, so Powertools cannot document
# them: they are declared here and merged into its document.
_REQUESTS: dict[tuple[str, str], _Accepts] = {
    ("post", "/agents/{name}/{id}"): _Accepts(
        body=PromptRequest,
        headers=(("Idempotency-Key", "A retry with the same key and message returns the first submission."),),
    ),
    ("post", "/agents/{name}/{id}/dispatch"): _Accepts(body=DispatchRequest),
    ("get", "/agents/{name}/{id}/sessions/{session}/messages"): _Accepts(query=HistoryQuery),
    ("post", "/agents/{name}/{id}/abort"): _Accepts(query=AbortQuery),
    ("get", "/agents/{name}/{id}/events"): _Accepts(query=EventsQuery),
    ("get", "/agents/{name}/{id}/children"): _Accepts(query=ChildrenQuery),
    ("get", "/agents/{name}/{id}/children/{ref}/sessions/{session}/messages"): _Accepts(query=HistoryQuery),
    ("get", "/agents/{name}/{id}/children/{ref}/events"): _Accepts(query=EventsQuery),
    ("get", "/agents/{name}/{id}/files"): _Accepts(query=FilesQuery),
    ("post", "/agents/{name}/{id}/uploads"): _Accepts(body=UploadRequest),
    ("put", "/agents/{name}/{id}/variables/{variable}"): _Accepts(body=VariablePut),
    ("get", "/agents/{name}/{id}/effects"): _Accepts(query=EffectsQuery),
    **{route: _Accepts(query=query) for route, query in _http_catalog.QUERIES.items()},
}


@functools.cache
def openapi_document() -> str:
    doc = json.loads(app.get_openapi_json_schema(title="agent-runtime", version=API_VERSION))
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)  # Powertools' validation shapes; this API answers 400 with ErrorBody
    # The file routes match any path below /files: published as API Gateway's {path+}.
    file_routes = doc["paths"].pop("/agents/{name}/{id}/files/.+", {})
    path_parameter = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}
    for operation in file_routes.values():
        operation.setdefault("parameters", []).append(path_parameter)
    doc["paths"]["/agents/{name}/{id}/files/{path}"] = file_routes
    for (method, path), accepts in _REQUESTS.items():
        operation = doc["paths"][path][method]
        if accepts.body is not None:
            schema = accepts.body.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(schema.pop("$defs", {}))
            schemas[accepts.body.__name__] = schema
            ref = {"$ref": f"#/components/schemas/{accepts.body.__name__}"}
            operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref}}}
        parameters = operation.setdefault("parameters", [])
        if accepts.query is not None:
            for field, schema in accepts.query.model_json_schema()["properties"].items():
                parameters.append({"name": field, "in": "query", "required": False, "schema": schema})
        for header, description in accepts.headers:
            parameters.append(
                {"name": header, "in": "header", "required": False, "description": description, "schema": {"type": "string"}}
            )
    return json.dumps(doc)


# --- the agent routes ----------------------------------------------------------------


def _raw(event_body: str | None, base64_encoded: bool, limit: int) -> str | bytes:
    raw: str | bytes = event_body or ""
    if base64_encoded:
        try:
            raw = base64.b64decode(raw)
        except ValueError:  # binascii.Error
            raise InvalidJson("request body is not valid base64") from None
    size = len(raw) if isinstance(raw, bytes) else len(raw.encode("utf-8", "surrogatepass"))
    if size > limit:
        raise PayloadTooLarge(
            f"request body is {size} bytes; the limit is {limit}",
            details={"limit": limit, "size": size},
        )
    return raw


def _body(event_body: str | None, base64_encoded: bool) -> str:
    raw = _raw(event_body, base64_encoded, MAX_BODY_BYTES)
    try:
        return raw.decode() if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InvalidJson("request body is not UTF-8 text") from None


def _route_request(params: dict[str, str], *, binary: bool = False) -> RouteRequest:
    """The request as the hook sees it; a `binary` route (a file's bytes) gets its body
    as `raw`, up to `FILE_BODY_MAX_BYTES`, and no text."""
    event = app.current_event
    headers = dict(event.headers)
    if event.cookies:  # payload 2.0 moves Cookie headers to `cookies`
        headers["cookie"] = "; ".join(event.cookies)
    return RouteRequest(
        method=event.http_method.upper(),
        path=event.path,
        headers=Headers(headers),
        query=MappingProxyType(dict(event.query_string_parameters)),
        params=MappingProxyType(params),
        body="" if binary else _body(event.body, bool(event.is_base64_encoded)),
        event=MappingProxyType(event.raw_event),
        raw=_file_body(event.body, bool(event.is_base64_encoded)) if binary else b"",
    )


def _file_body(event_body: str | None, base64_encoded: bool) -> bytes:
    raw = _raw(event_body, base64_encoded, FILE_BODY_MAX_BYTES)
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def _serve(endpoint: endpoints.Endpoint, *, binary: bool = False, **params: str) -> Response[Any]:
    """Run `endpoint` behind the agent's route hook; format its answer."""
    reply = run(endpoints.serve(service(), _route_request(params, binary=binary), endpoint))
    return Response(status_code=reply.status, body=reply.body, headers=reply.headers)


def _answer(work: Work) -> Response[Any]:
    """Run `work` with no agent's hook around it: it asks the hooks itself (GET /agents)."""
    reply = run(work(service(), _route_request({})))
    return Response(status_code=reply.status, body=reply.body, headers=reply.headers)


app.include_router(_http_catalog.catalog_routes(serve=_serve, answer=_answer, responses=_responses))


@app.post(
    "/agents/<name>/<id>",
    summary="Prompt an instance",
    responses=_responses(
        {
            200: _json(PromptResponse, "Settled within `wait`; `result` only when the outcome is completed"),
            202: _json(PromptResponse, "Admitted, not settled within `wait`", Location="The submission's URL"),
        }
    ),
)
def prompt(name: str, id: str) -> Response[Any]:
    return _serve(endpoints.prompt, name=name, id=id)


@app.get(
    "/agents/<name>/<id>/submissions/<submission_id>",
    summary="Read a submission",
    responses=_responses({200: _json(Submission, "The submission")}),
)
def submission(name: str, id: str, submission_id: str) -> Response[Any]:
    return _serve(endpoints.submission, name=name, id=id, submission_id=submission_id)


@app.post(
    "/agents/<name>/<id>/dispatch",
    summary="Dispatch input to an instance",
    responses=_responses(
        {202: _json(DispatchReceipt, "Admitted, or this dispatch id's first receipt", Location="The submission's URL")}
    ),
)
def dispatch(name: str, id: str) -> Response[Any]:
    return _serve(endpoints.dispatch, name=name, id=id)


@app.get(
    "/agents/<name>/<id>/sessions/<session>/messages",
    summary="Read a session's history",
    responses=_responses({200: _json(HistoryPage, "One page of messages, oldest first")}),
)
def messages(name: str, id: str, session: str) -> Response[Any]:
    return _serve(endpoints.messages, name=name, id=id, session=session)


@app.get(
    "/agents/<name>/<id>/events",
    summary="Read an instance's events after an offset (long-polls with `wait`)",
    responses=_responses({200: _json(EventsPage, "Events after `after`, oldest first")}),
)
def events(name: str, id: str) -> Response[Any]:
    return _serve(endpoints.events, name=name, id=id)


@app.post(
    "/agents/<name>/<id>/abort",
    summary="Abort an instance's running (and optionally queued) submissions",
    responses=_responses({200: _json(AbortResponse, "The submissions asked to abort")}),
)
def abort(name: str, id: str) -> Response[Any]:
    return _serve(endpoints.abort, name=name, id=id)


app.include_router(_http_traces.router(_serve, _responses))


@app.get(
    "/agents/<name>/<id>/children",
    summary="List an instance's children (subagents run as instances of their own)",
    responses=_responses({200: _json(ChildrenPage, "One page of children, in ref order")}),
)
def children(name: str, id: str) -> Response[Any]:
    return _serve(endpoints.children, name=name, id=id)


@app.get(
    "/agents/<name>/<id>/children/<ref>/submissions/<submission_id>",
    summary="Read a child's submission",
    responses=_responses({200: _json(Submission, "The child's submission")}),
)
def child_submission(name: str, id: str, ref: str, submission_id: str) -> Response[Any]:
    return _serve(endpoints.child_submission, name=name, id=id, ref=ref, submission_id=submission_id)


@app.get(
    "/agents/<name>/<id>/children/<ref>/sessions/<session>/messages",
    summary="Read a child's history",
    responses=_responses({200: _json(HistoryPage, "One page of the child's messages, oldest first")}),
)
def child_messages(name: str, id: str, ref: str, session: str) -> Response[Any]:
    return _serve(endpoints.child_messages, name=name, id=id, ref=ref, session=session)


@app.get(
    "/agents/<name>/<id>/children/<ref>/events",
    summary="Read a child's events after an offset",
    responses=_responses({200: _json(EventsPage, "The child's events after `after`, oldest first")}),
)
def child_events(name: str, id: str, ref: str) -> Response[Any]:
    return _serve(endpoints.child_events, name=name, id=id, ref=ref)


# --- files and variables -------------------------------------------------------------

_FILES = "/agents/<name>/<id>/files"


def _file_path(name: str, id: str) -> str:
    """The file's path: what follows ``/agents/{name}/{id}/files`` in the request's path
    (API Gateway's greedy ``{path+}``; HTTP APIs hand the path over percent-decoded, so it
    is not decoded again). `validate_path` checks it before any use."""
    return app.current_event.path[len(f"/agents/{name}/{id}/files") :]


@app.put(
    f"{_FILES}/.+",
    summary="Write a file of the instance (the raw body; Content-Type is its media type)",
    responses=_responses({200: _json(FileView, "The file as stored"), 415: _json(ErrorBody, "unsupported_media_type")}),
)
def put_file(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.put_file, binary=True, name=name, id=id, path=_file_path(name, id))


@app.get(
    f"{_FILES}/.+",
    summary="Read a file of the instance: its bytes, or a redirect to S3 for a big one",
    responses=_responses(
        {
            200: {"description": "The file's bytes, with its media type"},
            307: {"description": "A presigned S3 URL of the bytes (big files, or ?download=url)"},
        }
    ),
)
def get_file(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.get_file, name=name, id=id, path=_file_path(name, id))


@app.delete(f"{_FILES}/.+", summary="Delete a file of the instance", responses=_responses({204: {"description": "Deleted"}}))
def delete_file(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.delete_file, name=name, id=id, path=_file_path(name, id))


@app.get(_FILES, summary="List the instance's files", responses=_responses({200: _json(FilesPage, "One page, in path order")}))
def list_files(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.list_files, name=name, id=id)


@app.post(
    "/agents/<name>/<id>/uploads",
    summary="Start an upload of a file too big for the API: a presigned S3 PUT",
    responses=_responses({201: _json(UploadTicket, "Where to send the bytes, and what to call then")}),
)
def start_upload(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.start_upload, name=name, id=id)


@app.post(
    "/agents/<name>/<id>/uploads/<upload_id>/complete",
    summary="Make an uploaded object the file",
    responses=_responses({200: _json(FileView, "The file as stored")}),
)
def complete_upload(name: str, id: str, upload_id: str) -> Response[Any]:
    return _serve(endpoints_files.complete_upload, name=name, id=id, upload_id=upload_id)


@app.get(
    "/agents/<name>/<id>/variables",
    summary="The instance's variables (a secret's value is never shown)",
    responses=_responses({200: _json(VariablesList, "Every declared variable, set or not")}),
)
def list_variables(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_files.list_variables, name=name, id=id)


@app.put(
    "/agents/<name>/<id>/variables/<variable>",
    summary="Set a variable (a declared Secret is stored encrypted)",
    responses=_responses({200: _json(VariableView, "The variable (without a secret's value)")}),
)
def put_variable(name: str, id: str, variable: str) -> Response[Any]:
    return _serve(endpoints_files.put_variable, name=name, id=id, variable=variable)


@app.delete(
    "/agents/<name>/<id>/variables/<variable>",
    summary="Unset a variable",
    responses=_responses({204: {"description": "Unset"}}),
)
def delete_variable(name: str, id: str, variable: str) -> Response[Any]:
    return _serve(endpoints_files.delete_variable, name=name, id=id, variable=variable)


@app.get(
    "/agents/<name>/<id>/effects",
    summary="The instance's effects: scheduled, and fired or cancelled in the last 30 days",
    responses=_responses({200: _json(EffectsList, "Soonest due first")}),
)
def list_effects(name: str, id: str) -> Response[Any]:
    return _serve(endpoints_effects.list_effects, name=name, id=id)


@app.delete(
    "/agents/<name>/<id>/effects/<effect_id>",
    summary="Cancel a scheduled effect (409 once it fired or was cancelled)",
    responses=_responses({200: _json(EffectView, "The cancelled effect")}),
)
def cancel_effect(name: str, id: str, effect_id: str) -> Response[Any]:
    return _serve(endpoints_effects.cancel_effect, name=name, id=id, effect_id=effect_id)


# --- the rest ------------------------------------------------------------------------


@app.get("/health", summary="Liveness")
def health() -> dict[str, bool]:
    return {"ok": True}


@app.get(
    "/openapi.json",
    summary="This document",
    responses={200: {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {"type": "object"}}}}},
)
def openapi() -> Response[Any]:
    return Response(status_code=200, body=openapi_document(), headers={"content-type": "application/json"})


def _error(exc: Exception) -> Response[Any]:
    status, body = error_response(exc)
    if status >= 500:
        logger.error("request failed", exc_info=exc)
    return Response(status_code=status, body=body.model_dump_json(), headers={"content-type": "application/json"})


@app.not_found
def _unknown_route(_: NotFoundError) -> Response[Any]:
    event = app.current_event
    return _error(NotFound(f"no route {event.http_method} {event.path}"))


@app.exception_handler(Exception)
def _failure(exc: Exception) -> Response[Any]:
    return _error(exc)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        return app.resolve(event, context)
    finally:
        tracing.flush()  # an abort settles here: its span leaves before the container freezes
