"""What an instance tells the world as it works: the event models of its event log.

Every event carries the instance (``agent``, ``id``), the ``session`` and
``submission_id`` it belongs to (null for instance-wide events such as ``idle``), an
``offset`` and a timestamp ``at`` (ISO-8601 UTC with milliseconds, as on every wire
model). Offsets increase per instance and are gap-free within one log epoch: a reader
that has seen offset N asks for ``after=N`` and gets exactly what came next. They are
opaque integers, not counts: a new epoch (an instance whose log expired entirely)
continues above every offset the old one could have handed out.

The names follow the agent event vocabulary users know: ``agent_start``, ``turn_start``,
``text_delta``, ``thinking_delta``, ``tool_start``, ``tool_call``, ``turn_end``,
``agent_end``, ``task_start`` and ``task`` (a child started and its outcome recorded, in
the parent's log), ``idle`` and ``error``, ``custom`` (the application's own), plus the ledger's ``submission_queued`` and
``submission_settled``. Deltas are coalesced before they are stored (see
`agent_runtime.streaming`), so one ``text_delta`` holds whatever the model wrote
since the last flush.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, overload

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from agent_runtime.ledger import Outcome
from agent_runtime.messages import Usage

EVENT_SCHEMA_VERSION = 1
#: Tool arguments and results above this many characters are cut in events (the
#: session's history keeps them whole); the event says so with ``truncated``.
EVENT_TEXT_MAX = 8 * 1024


class _Event(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    v: int = EVENT_SCHEMA_VERSION
    offset: int = 0
    at: str
    agent: str
    id: str
    session: str | None = None
    submission_id: str | None = None


class SubmissionQueued(_Event):
    type: Literal["submission_queued"] = "submission_queued"
    kind: Literal["direct", "dispatch", "task", "child_report", "effect"]
    sequence: int


class AgentStart(_Event):
    """An attempt began running the submission (``attempt`` counts from 1)."""

    type: Literal["agent_start"] = "agent_start"
    attempt: int


class TurnStart(_Event):
    type: Literal["turn_start"] = "turn_start"
    turn: int


class TextDelta(_Event):
    type: Literal["text_delta"] = "text_delta"
    turn: int
    text: str


class ThinkingDelta(_Event):
    type: Literal["thinking_delta"] = "thinking_delta"
    turn: int
    text: str


class ToolStart(_Event):
    type: Literal["tool_start"] = "tool_start"
    turn: int
    call_id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    truncated: bool = False


class ToolCall(_Event):
    """A tool call finished: ``result`` on success, ``error`` otherwise."""

    type: Literal["tool_call"] = "tool_call"
    turn: int
    call_id: str
    name: str
    status: Literal["ok", "error", "interrupted"] = "ok"
    result: str | None = None
    error: str | None = None
    truncated: bool = False


class TaskStart(_Event):
    """A tool call of this submission started a child: ``child`` (``agent/id``) runs
    ``child_submission_id``; its own events stay in its own log."""

    type: Literal["task_start"] = "task_start"
    call_id: str
    child: str
    child_submission_id: str
    blocking: bool = True


class Task(_Event):
    """A child's outcome was recorded as the result of the call that started it."""

    type: Literal["task"] = "task"
    call_id: str
    child: str
    child_submission_id: str
    status: Literal["ok", "error"]
    result: str | None = None
    error: str | None = None
    truncated: bool = False


class TurnEnd(_Event):
    type: Literal["turn_end"] = "turn_end"
    turn: int
    usage: Usage = Field(default_factory=Usage)
    #: The ``provider/model`` that answered (for a named model, the entry that served).
    model: str | None = None


class AgentEnd(_Event):
    """The submission's run ended: ``outcome`` with its ``result`` or ``error``."""

    type: Literal["agent_end"] = "agent_end"
    outcome: Outcome
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class SubmissionSettled(_Event):
    type: Literal["submission_settled"] = "submission_settled"
    outcome: Outcome
    usage: Usage | None = None
    cost_usd: float | None = None


class Idle(_Event):
    """The instance has no more work for now."""

    type: Literal["idle"] = "idle"


class ErrorEvent(_Event):
    """An attempt failed; ``retrying`` says whether the runtime will try again."""

    type: Literal["error"] = "error"
    error: dict[str, Any]
    retrying: bool


class Handoff(_Event):
    """The session moved from one agent to another (``from_agent`` null: the instance's own)."""

    type: Literal["handoff"] = "handoff"
    call_id: str
    from_agent: str | None
    to_agent: str


class SessionStatus(_Event):
    """A two-sided agent's side set the session's status."""

    type: Literal["session_status"] = "session_status"
    side: str
    status: str


class CompactionStart(_Event):
    """The session's older messages are being summarised (`agent_runtime.compaction`)."""

    type: Literal["compaction_start"] = "compaction_start"
    covers: int
    estimated_tokens: int


class CompactionEnd(_Event):
    type: Literal["compaction_end"] = "compaction_end"
    covers: int
    summary_chars: int


class ConcurrencyDecision(_Event):
    """What a concurrency policy did with a prompt to a busy instance: ``rejected`` it,
    ``interrupted`` the submissions it aborted, or ``replaced`` the queued ones."""

    type: Literal["concurrency"] = "concurrency"
    policy: str
    decision: Literal["rejected", "interrupted", "replaced"]
    submissions: list[str]


class Custom(_Event):
    """An event the application's code emitted (`ctx.emit(name, data)` in a tool or a
    dispatch handler): ``name`` is its own, ``data`` any JSON value (at most
    `CUSTOM_DATA_MAX` characters of JSON)."""

    type: Literal["custom"] = "custom"
    name: str
    data: Any = None


CUSTOM_DATA_MAX = 32 * 1024

Event = Annotated[
    SubmissionQueued
    | AgentStart
    | TurnStart
    | TextDelta
    | ThinkingDelta
    | ToolStart
    | ToolCall
    | TaskStart
    | Task
    | TurnEnd
    | AgentEnd
    | SubmissionSettled
    | Idle
    | ErrorEvent
    | Handoff
    | SessionStatus
    | CompactionStart
    | CompactionEnd
    | ConcurrencyDecision
    | Custom,
    Field(discriminator="type"),
]

# Built on first use, not at import, as every model here (``defer_build``): a cold
# handler that never reads an event does not pay for their validators.
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event, config=ConfigDict(defer_build=True))
EVENT_LIST_ADAPTER: TypeAdapter[list[Event]] = TypeAdapter(
    list[Event], config=ConfigDict(defer_build=True)
)
EVENT_TYPES: tuple[str, ...] = (
    "submission_queued",
    "agent_start",
    "turn_start",
    "text_delta",
    "thinking_delta",
    "tool_start",
    "tool_call",
    "task_start",
    "task",
    "turn_end",
    "agent_end",
    "submission_settled",
    "idle",
    "error",
    "handoff",
    "session_status",
    "compaction_start",
    "compaction_end",
    "concurrency",
    "custom",
)


@overload
def iso(timestamp: float) -> str: ...


@overload
def iso(timestamp: None) -> None: ...


def iso(timestamp: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with milliseconds (the wire's time format).

    Every event is stamped, a dozen per run and most within the same second: the date
    and time up to the second are formatted once per second (`_second`), and only the
    milliseconds per call. They are split from `timestamp` exactly as
    ``datetime.fromtimestamp`` does (to the microsecond, half to even), so the text is
    the same as ``datetime.fromtimestamp(timestamp, UTC).isoformat(timespec="milliseconds")``
    with ``Z`` for ``+00:00``.
    """
    if timestamp is None:
        return None
    fraction, whole = math.modf(timestamp)
    micros = round(fraction * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    elif micros < 0:
        whole, micros = whole - 1, micros + 1_000_000
    return f"{_second(int(whole))}.{micros // 1000:03d}Z"


_last_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def _second(epoch: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS`` of an epoch second, the last one remembered."""
    global _last_second
    known = _last_second
    if known[0] == epoch:
        return known[1]
    text = datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    _last_second = (epoch, text)
    return text


def with_offset(event: Event, offset: int) -> Event:
    return event.model_copy(update={"offset": offset})


def clip(text: str, limit: int = EVENT_TEXT_MAX) -> tuple[str, bool]:
    """`text` cut to `limit` characters, and whether it was cut."""
    return (text, False) if len(text) <= limit else (text[:limit], True)


def encode_events(events: list[Event]) -> str:
    """Compact JSON for a batch of events (the stored and the streamed form)."""
    return EVENT_LIST_ADAPTER.dump_json(events, exclude_defaults=False).decode()


def decode_events(data: str | bytes) -> list[Event]:
    return EVENT_LIST_ADAPTER.validate_json(data)


__all__ = [
    "EVENT_ADAPTER",
    "EVENT_SCHEMA_VERSION",
    "EVENT_TEXT_MAX",
    "EVENT_TYPES",
    "AgentEnd",
    "AgentStart",
    "ErrorEvent",
    "Event",
    "Idle",
    "SubmissionQueued",
    "SubmissionSettled",
    "TextDelta",
    "ThinkingDelta",
    "ToolCall",
    "ToolStart",
    "TurnEnd",
    "TurnStart",
    "clip",
    "decode_events",
    "encode_events",
    "iso",
    "with_offset",
]
