"""The HTTP surface's wire models, and the one table from runtime errors to HTTP statuses.

These models are the contract: the HTTP handler parses requests and formats replies with
them only, and its OpenAPI document publishes them. Requests refuse unknown body fields.
Times on the wire are ISO-8601 UTC strings with milliseconds (``2026-11-21T05:14:00.123Z``),
or null; the ledger keeps epoch seconds.

Errors always have one shape, ``{"error": {"type", "message", "details"?}}``, and one
status, found by walking the exception's MRO through `ERROR_STATUS`; anything not in the
table is a 500 whose body says nothing about the cause.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

import pydantic_core
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
)

from agent_runtime.errors import (
    AgentNotFound,
    AgentRuntimeError,
    Conflict,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    SubmissionNotFound,
    UnsupportedMediaType,
)
from agent_runtime.events import Event, iso
from agent_runtime.ids import AGENT_NAME_MAX, INSTANCE_ID_MAX, KEY_MAX, SESSION_MAX
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.messages import Part, Usage
from agent_runtime.ports import EventPage as StoredEventPage
from agent_runtime.ports import HistoryPage as StoredPage

DEFAULT_SESSION = "default"
#: Request bodies above this are refused before anything else looks at them.
MAX_BODY_BYTES = 1024 * 1024
MAX_MESSAGE_CHARS = 200_000
#: API Gateway gives an integration 30 s; a prompt waits at most this long for its result.
MAX_WAIT_SECONDS = 25.0
HISTORY_LIMIT_MAX = 1000
EVENTS_LIMIT_MAX = 1000
#: `StoredMessage.cursor`: ``<submission sequence:010d>.<index:06d>``.
CURSOR_PATTERN = r"^[0-9]{10}\.[0-9]{6}$"

M = TypeVar("M", bound=BaseModel)
#: ISO-8601 UTC with milliseconds: ``2026-11-21T05:14:00.123Z``.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class InvalidJson(InvalidInput):
    """The request body is not JSON (or not UTF-8, or holds a lone surrogate)."""

    type = "invalid_json"


# --- requests -------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid", strict=True)


class InlineImage(_Body):
    media_type: Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
    data: str = Field(min_length=1, description="The image, base64; stored as a file under /attachments/ first.")


class PromptRequest(_Body):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    attachments: list[str] = Field(
        [], max_length=20, description="Paths of the instance's files to attach, like /attachments/receipt.png."
    )
    images: list[InlineImage] = Field([], max_length=20, description="Small images sent inline.")
    concurrency: Literal["queue", "reject", "interrupt", "latest"] | None = Field(
        None, description="What this prompt does if the instance is busy (default: the agent's policy)."
    )
    session: str = Field(
        DEFAULT_SESSION, min_length=1, max_length=SESSION_MAX, description="1-64 characters of [A-Za-z0-9._-]"
    )
    wait: float = Field(
        MAX_WAIT_SECONDS,
        ge=0,
        le=MAX_WAIT_SECONDS,
        description="Seconds to wait for the result before answering 202 with the submission.",
    )


class DispatchRequest(_Body):
    input: Any = Field(description="Any JSON value; handed to the agent as its input.")
    session: str = Field(
        DEFAULT_SESSION, min_length=1, max_length=SESSION_MAX, description="1-64 characters of [A-Za-z0-9._-]"
    )
    dispatch_id: str | None = Field(
        None,
        min_length=1,
        max_length=KEY_MAX,
        description="Makes the dispatch idempotent: the same id and input return the first receipt, "
        "the same id with other input is a 409. URL-safe characters [A-Za-z0-9._~-].",
    )


class DispatchEventDetail(_Body):
    """The ``detail`` of an EventBridge event of detail-type ``agent-runtime.dispatch``
    (`settings.DISPATCH_DETAIL_TYPE`). Without `dispatch_id`, the event's id is used."""

    agent: str = Field(min_length=1, max_length=AGENT_NAME_MAX, description="The agent's name.")
    id: str = Field(min_length=1, max_length=INSTANCE_ID_MAX, description="The instance id.")
    session: str = Field(
        DEFAULT_SESSION, min_length=1, max_length=SESSION_MAX, description="1-64 characters of [A-Za-z0-9._-]"
    )
    input: Any = Field(description="Any JSON value; handed to the agent as its input.")
    dispatch_id: str | None = Field(
        None,
        min_length=1,
        max_length=KEY_MAX,
        description="Makes the dispatch idempotent (URL-safe characters [A-Za-z0-9._~-]); "
        "defaults to the EventBridge event id, which its redeliveries keep.",
    )


class EffectEventDetail(_Body):
    """The ``detail`` of an effect's timer event (`settings.EFFECT_DETAIL_TYPE`), as the
    effect's schedule delivers it to the dispatch function."""

    agent: str = Field(min_length=1, max_length=AGENT_NAME_MAX)
    id: str = Field(min_length=1, max_length=INSTANCE_ID_MAX)
    effect_id: str = Field(min_length=1, max_length=64)


class _Query(BaseModel):
    # Query strings arrive as text: lax parsing ("10" -> 10, "true" -> True). Unknown
    # parameters are left alone: a route hook may use its own (a token, a trace id).
    model_config = ConfigDict(defer_build=True, extra="ignore")


class HistoryQuery(_Query):
    limit: int = Field(100, ge=1, le=HISTORY_LIMIT_MAX)
    cursor: str | None = Field(None, pattern=CURSOR_PATTERN, description="`next_cursor` of the previous page.")


class ChildrenQuery(_Query):
    after: str | None = Field(None, pattern=r"^[0-9a-f]{1,16}$", description="`next` of the previous page.")
    limit: int = Field(50, ge=1, le=100)


class AbortQuery(_Query):
    queued: bool = Field(False, description="Also abort the instance's queued submissions.")


class EventsQuery(_Query):
    after: int = Field(0, ge=0, description="The last offset already seen; 0 for the oldest kept.")
    limit: int = Field(100, ge=1, le=EVENTS_LIMIT_MAX)
    wait: float = Field(
        0.0, ge=0, le=MAX_WAIT_SECONDS, description="Seconds to wait for an event when there is none yet."
    )


# --- WebSocket frames (client to server) ---------------------------------------------
#
# Every frame is a JSON text object with ``v`` (the protocol version, 1) and ``type``.
# The server answers with ``ready``, ``accepted``, ``event``, ``result``, ``error`` and
# ``pong`` frames (see `functions.websocket`).

WS_PROTOCOL_VERSION = 1


class _Frame(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    v: Literal[1] = Field(description="Protocol version.")


class PromptFrame(_Frame):
    type: Literal["prompt"]
    request_id: str = Field(
        min_length=1,
        max_length=KEY_MAX,
        pattern=r"^[A-Za-z0-9._~-]+$",
        description="Chosen by the client; sending the same prompt again with it returns the same submission.",
    )
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)
    session: str = Field(DEFAULT_SESSION, min_length=1, max_length=SESSION_MAX)
    attachments: list[str] = Field([], max_length=20, description="Paths of the instance's files to attach.")


class SubscribeFrame(_Frame):
    type: Literal["subscribe"]
    after: int | None = Field(None, ge=0, description="Replay the events after this offset first.")
    session: str | None = Field(None, min_length=1, max_length=SESSION_MAX, description="Only this session's events.")


class AbortFrame(_Frame):
    type: Literal["abort"]
    request_id: str | None = Field(None, max_length=KEY_MAX)
    queued: bool = False


class PingFrame(_Frame):
    type: Literal["ping"]
    request_id: str | None = Field(None, max_length=KEY_MAX)


ClientFrame = Annotated[PromptFrame | SubscribeFrame | AbortFrame | PingFrame, Field(discriminator="type")]


# --- replies --------------------------------------------------------------------------




class PromptResult(BaseModel):
    model_config = ConfigDict(defer_build=True)
    text: str
    data: Any = Field(None, description="The structured result, when the agent declares one.")
    usage: Usage
    models: dict[str, Usage] = Field({}, description="Usage by the provider/model that served each call.")
    cost_usd: float | None = Field(None, description="What the model calls cost, from the library's price table.")
    unpriced: list[str] = Field([], description="Models without a price (not in cost_usd).")


class Submission(BaseModel):
    model_config = ConfigDict(defer_build=True)
    id: str
    kind: Literal["direct", "dispatch", "task", "child_report", "effect"]
    session: str
    sequence: int
    status: Literal["queued", "running", "waiting", "settled"]
    outcome: Literal["completed", "failed", "aborted"] | None
    result: PromptResult | None
    error: dict[str, Any] | None
    accepted_at: Timestamp
    started_at: Timestamp | None
    settled_at: Timestamp | None
    attempts: int

    @classmethod
    def from_record(cls, record: SubmissionRecord) -> Submission:
        return cls.model_validate(
            {
                "id": record.id,
                "kind": record.kind,
                "session": record.session,
                "sequence": record.sequence,
                "status": record.status.value,
                "outcome": record.outcome.value if record.outcome is not None else None,
                "result": record.result,
                "error": record.error,
                "accepted_at": iso(record.accepted_at),
                "started_at": iso(record.started_at),
                "settled_at": iso(record.settled_at),
                "attempts": record.attempts,
            }
        )


class Child(BaseModel):
    """A child of the instance: `ref` addresses it under the parent's routes."""
    model_config = ConfigDict(defer_build=True)

    ref: str
    agent: str
    id: str
    call_id: str
    parent_submission_id: str
    submission_id: str = Field(description="Its latest submission (a resumable child takes several).")
    resumable: bool = False
    status: Literal["queued", "running", "waiting", "settled"]
    outcome: Literal["completed", "failed", "aborted"] | None
    created_at: Timestamp
    settled_at: Timestamp | None


class ChildrenPage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    children: list[Child]
    next: str | None = Field(description="Pass as `after` for the next page; null on the last one.")


class PromptResponse(BaseModel):
    """200: the submission settled within `wait` (`result` is there when it completed;
    a failed or aborted one carries `outcome` and `error` instead). 202: still running."""
    model_config = ConfigDict(defer_build=True)

    submission: Submission
    result: PromptResult | None = None

    @model_serializer(mode="wrap")
    def _omit_missing_result(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if data.get("result") is None:
            data.pop("result", None)
        return data


class DispatchReceipt(BaseModel):
    model_config = ConfigDict(defer_build=True)
    dispatch_id: str
    submission_id: str
    accepted_at: Timestamp

    @classmethod
    def from_record(cls, record: SubmissionRecord) -> DispatchReceipt:
        # The runtime keys a dispatch's receipt "dispatch:<dispatch id>".
        kind, _, dispatch_id = (record.receipt_key or "").partition(":")
        if kind != "dispatch" or not dispatch_id:
            raise ValueError(f"submission {record.id} has no dispatch receipt key")
        return cls(dispatch_id=dispatch_id, submission_id=record.id, accepted_at=iso(record.accepted_at) or "")


class EventsPage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    events: list[Event]
    last: int = Field(description="Pass as `after` for the next page: the last event's offset, or `after`.")

    @classmethod
    def from_page(cls, page: StoredEventPage) -> EventsPage:
        return cls(events=page.events, last=page.last)


class HistoryMessage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    cursor: str
    role: Literal["user", "assistant"]
    parts: list[Part]
    synthetic: bool = False


class HistoryPage(BaseModel):
    model_config = ConfigDict(defer_build=True)
    messages: list[HistoryMessage]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")

    @classmethod
    def from_page(cls, page: StoredPage) -> HistoryPage:
        return cls(
            messages=[
                HistoryMessage(
                    cursor=m.cursor, role=m.message.role, parts=list(m.message.parts), synthetic=m.message.synthetic
                )
                for m in page.messages
            ],
            next_cursor=page.next_cursor,
        )


class AbortResponse(BaseModel):
    model_config = ConfigDict(defer_build=True)
    aborted: list[Submission]


class ErrorDetail(BaseModel):
    model_config = ConfigDict(defer_build=True)
    type: str
    message: str
    details: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _omit_empty_details(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        if not data.get("details"):
            data.pop("details", None)
        return data


class ErrorBody(BaseModel):
    model_config = ConfigDict(defer_build=True)
    error: ErrorDetail


# --- errors ---------------------------------------------------------------------------

#: The only place an error becomes a status. Looked up along the exception's MRO, so a
#: subclass not listed takes its nearest listed ancestor's status.
ERROR_STATUS: dict[type[AgentRuntimeError], int] = {
    InvalidInput: 400,
    PayloadTooLarge: 413,
    NotFound: 404,
    AgentNotFound: 404,
    SubmissionNotFound: 404,
    Conflict: 409,
    UnsupportedMediaType: 415,
}


def error_response(exc: BaseException) -> tuple[int, ErrorBody]:
    """The status and body for `exc`: 500 `internal_error`, with nothing from the
    exception, unless a class on its MRO is in `ERROR_STATUS`."""
    if isinstance(exc, AgentRuntimeError):
        for cls in type(exc).__mro__:
            status = ERROR_STATUS.get(cls)
            if status is not None:
                detail = ErrorDetail(type=exc.type, message=exc.message, details=exc.details or None)
                return status, ErrorBody(error=detail)
    return 500, ErrorBody(error=ErrorDetail(type="internal_error", message="internal error"))


# --- parsing --------------------------------------------------------------------------


def parse_json(body: str) -> Any:
    """Strict JSON: no NaN or Infinity literals, no lone surrogates, nesting bounded."""
    try:
        return pydantic_core.from_json(body.encode(), allow_inf_nan=False)
    except ValueError as exc:  # UnicodeEncodeError included
        raise InvalidJson(f"request body is not valid JSON: {exc}") from None


def _validation_details(exc: ValidationError, where: str) -> dict[str, Any]:
    errors = json.loads(exc.json(include_url=False, include_input=False))
    return {"errors": [{**e, "loc": [where, *e["loc"]]} for e in errors]}


def parse_body(model: type[M], body: str) -> M:
    """A JSON request body as `model`: `InvalidJson` when it is not JSON, `InvalidInput`
    (``invalid_request``, pydantic's errors in ``details.errors``) when it does not fit."""
    data = parse_json(body) if body.strip() else None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        details = _validation_details(exc, "body")
        raise InvalidInput("request body does not match its schema", details=details) from None


def parse_detail(model: type[M], detail: Any) -> M:
    """An EventBridge event's ``detail`` as `model`; `InvalidInput` when it does not fit."""
    try:
        return model.model_validate(detail)
    except ValidationError as exc:
        details = _validation_details(exc, "detail")
        raise InvalidInput("event detail does not match its schema", details=details) from None


def parse_query(model: type[M], query: Mapping[str, str]) -> M:
    try:
        return model.model_validate(dict(query))
    except ValidationError as exc:
        details = _validation_details(exc, "query")
        raise InvalidInput("query string does not match its schema", details=details) from None


__all__ = [
    "CURSOR_PATTERN",
    "DEFAULT_SESSION",
    "ERROR_STATUS",
    "HISTORY_LIMIT_MAX",
    "MAX_BODY_BYTES",
    "MAX_MESSAGE_CHARS",
    "MAX_WAIT_SECONDS",
    "WS_PROTOCOL_VERSION",
    "AbortFrame",
    "AbortQuery",
    "AbortResponse",
    "ClientFrame",
    "DispatchEventDetail",
    "DispatchReceipt",
    "DispatchRequest",
    "ErrorBody",
    "ErrorDetail",
    "EventsPage",
    "EventsQuery",
    "HistoryMessage",
    "HistoryPage",
    "HistoryQuery",
    "InvalidJson",
    "PingFrame",
    "PromptFrame",
    "PromptRequest",
    "PromptResponse",
    "PromptResult",
    "Submission",
    "SubscribeFrame",
    "error_response",
    "iso",
    "parse_body",
    "parse_detail",
    "parse_json",
    "parse_query",
]
