"""The spans themselves, on the OpenTelemetry API (loaded only when tracing is on).

Names and attributes follow the OpenTelemetry GenAI conventions where they have one
(``invoke_agent``, ``chat``, ``execute_tool``, ``gen_ai.*``); the runtime's own
attributes are ``agent_runtime.*``, and every span carries the instance (agent name
and id), the session and the submission id. ``agent_runtime.span`` names the span's
kind (submission, attempt, turn, chat, execute_tool) for a viewer that draws them.

The ids of a submission's span come from the submission itself (a hash of its instance
and id) rather than from a random generator: its attempts run in other processes, and
its span is only written when it settles, so every party computes the same ids. The
provider is made with `PresetIds` so that span is written under exactly those ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NonRecordingSpan,
    Span,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from agent_runtime.ledger import Outcome, SubmissionRecord
from agent_runtime.messages import ToolCallPart, ToolResultPart, Usage
from agent_runtime.models.base import Model, ModelResponse

T = TypeVar("T")

#: ``provider/`` prefixes -> ``gen_ai.provider.name`` (the conventions' well-known values).
PROVIDERS = {"anthropic": "anthropic", "bedrock": "aws.bedrock", "openai": "openai"}
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class SpanView:
    """A finished span as the trace route answers it (times in epoch seconds)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start: float
    end: float
    attributes: dict[str, Any]


class SpanReader(Protocol):
    """Where finished spans are kept for reading back (the ``table`` sink)."""

    async def trace(self, trace_id: str) -> list[SpanView]: ...


# --- ids ---------------------------------------------------------------------------


def _hashed(kind: str, record: SubmissionRecord, size: int) -> int:
    digest = hashlib.sha256(f"{kind}\n{record.instance}\n{record.id}".encode()).digest()
    return int.from_bytes(digest[:size], "big") or 1  # zero is the invalid id


def parent_of(record: SubmissionRecord) -> SpanContext | None:
    """The span that started `record` (a parent's tool call), from its ``traceparent``."""
    carried = record.payload.get("traceparent") if isinstance(record.payload, dict) else None
    if not isinstance(carried, str):
        return None
    parent = trace.get_current_span(_PROPAGATOR.extract({"traceparent": carried})).get_span_context()
    return parent if parent.is_valid else None


def submission_context(record: SubmissionRecord) -> SpanContext:
    """The ids of `record`'s span: in its parent's trace, else in a trace of its own."""
    parent = parent_of(record)
    trace_id = parent.trace_id if parent is not None else _hashed("trace", record, 16)
    return SpanContext(trace_id, _hashed("span", record, 8), is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


def current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


class PresetIds:
    """An SDK id generator that hands out preset ids once (for a submission's span),
    random ones otherwise. Duck-typed to `opentelemetry.sdk.trace.id_generator.IdGenerator`."""

    def __init__(self, fallback: Any) -> None:
        self._fallback = fallback
        self._preset: ContextVar[tuple[int, int] | None] = ContextVar("agent_runtime_preset_ids", default=None)

    @contextlib.contextmanager
    def preset(self, trace_id: int, span_id: int) -> Iterator[None]:
        token = self._preset.set((trace_id, span_id))
        try:
            yield
        finally:
            self._preset.reset(token)

    def generate_span_id(self) -> int:
        preset = self._preset.get()
        return preset[1] if preset else int(self._fallback.generate_span_id())

    def is_trace_id_random(self) -> bool:
        return self._preset.get() is None

    def generate_trace_id(self) -> int:
        preset = self._preset.get()
        return preset[0] if preset else int(self._fallback.generate_trace_id())


async def submission_spans(reader: SpanReader, record: SubmissionRecord) -> tuple[str, list[SpanView]]:
    """`record`'s trace id, and its span with every span below it, by start time (a
    child's spans included; the parent's, when `record` is a child's, left out)."""
    own = submission_context(record)
    trace_id, root = f"{own.trace_id:032x}", f"{own.span_id:016x}"
    views = await reader.trace(trace_id)
    parents = {v.span_id: v.parent_span_id for v in views}

    def below(span_id: str | None) -> bool:
        seen: set[str] = set()
        while span_id is not None and span_id not in seen:
            if span_id == root:
                return True
            seen.add(span_id)
            span_id = parents.get(span_id)
        return False

    return trace_id, sorted((v for v in views if below(v.span_id)), key=lambda v: (v.start, v.end))


# --- the spans ---------------------------------------------------------------------


def record_attributes(record: SubmissionRecord) -> dict[str, Any]:
    ref = record.ref
    return {
        "agent_runtime.agent": ref.agent,
        "agent_runtime.instance.id": ref.id,
        "agent_runtime.session": record.session,
        "agent_runtime.submission.id": record.id,
        "gen_ai.agent.name": ref.agent,
        "gen_ai.conversation.id": f"{ref.key}/{record.session}",
    }


class Tracing:
    """Spans through `tracer`; `ids` preset a submission's span ids; `flush` exports what
    is buffered; `reader` reads finished spans back (None: they are not kept here)."""

    def __init__(
        self,
        tracer: trace.Tracer,
        ids: PresetIds,
        *,
        flush: Callable[[], Any] = lambda: None,
        reader: SpanReader | None = None,
    ) -> None:
        self.tracer = tracer
        self.ids = ids
        self._flush = flush
        self.reader = reader

    @contextlib.contextmanager
    def attempt(self, record: SubmissionRecord) -> Iterator[AttemptSpans]:
        parent = trace.set_span_in_context(NonRecordingSpan(submission_context(record)))
        attributes = {**record_attributes(record), "agent_runtime.span": "attempt", "agent_runtime.attempt": record.attempts}
        span = self.tracer.start_span(f"attempt {record.attempts}", context=parent, attributes=attributes)
        spans = AttemptSpans(self.tracer, span, record)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=True, set_status_on_exception=True):
                yield spans
        finally:
            spans.end_turn()
            span.end()

    def settled(self, record: SubmissionRecord, outcome: Outcome, error: dict[str, Any] | None, usage: Usage | None, now: float) -> None:
        own = submission_context(record)
        parent = parent_of(record)
        context = trace.set_span_in_context(NonRecordingSpan(parent)) if parent is not None else otel_context.Context()
        attributes: dict[str, Any] = {
            **record_attributes(record),
            "agent_runtime.span": "submission",
            "agent_runtime.submission.kind": record.kind,
            "agent_runtime.outcome": outcome.value,
            "agent_runtime.attempts": record.attempts,
            "gen_ai.operation.name": "invoke_agent",
        }
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.input_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.output_tokens
        if error:
            attributes["error.type"] = str(error.get("type", "error"))
        with self.ids.preset(own.trace_id, own.span_id):
            span = self.tracer.start_span(
                f"invoke_agent {record.ref.agent}",
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=attributes,
                start_time=int(record.accepted_at * 1e9),
            )
        if outcome is not Outcome.completed:
            span.set_status(Status(StatusCode.ERROR, str((error or {}).get("message", outcome.value))[:500]))
        span.end(end_time=max(int(now * 1e9), int(record.accepted_at * 1e9)))

    def flush(self) -> None:
        self._flush()


class AttemptSpans:
    """The spans under one attempt: its turns, and their model and tool calls."""

    def __init__(self, tracer: trace.Tracer, span: Span, record: SubmissionRecord) -> None:
        self.tracer = tracer
        self.span = span
        self.attributes = record_attributes(record)
        self._turn: Span | None = None
        self._lock = threading.Lock()

    def _turn_context(self) -> otel_context.Context:
        return trace.set_span_in_context(self._turn or self.span)

    def start_turn(self, turn: int) -> None:
        """A turn's span lasts until the next turn starts or the attempt ends."""
        with self._lock:
            if self._turn is not None:
                self._turn.end()
            context = trace.set_span_in_context(self.span)
            attributes = {**self.attributes, "agent_runtime.span": "turn", "agent_runtime.turn": turn}
            self._turn = self.tracer.start_span(f"turn {turn}", context=context, attributes=attributes)

    def end_turn(self) -> None:
        with self._lock:
            if self._turn is not None:
                self._turn.end()
                self._turn = None

    async def model_call(self, model: Model, turn: int, reply: Awaitable[ModelResponse]) -> ModelResponse:
        self.start_turn(turn)
        provider, _, name = model.name.rpartition("/")
        attributes = {
            **self.attributes,
            "agent_runtime.span": "chat",
            "agent_runtime.turn": turn,
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": name,
        }
        if provider:
            attributes["gen_ai.provider.name"] = attributes["gen_ai.system"] = PROVIDERS.get(provider, provider)
        span = self.tracer.start_span(f"chat {name}", context=self._turn_context(), kind=SpanKind.CLIENT, attributes=attributes)
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            response = await reply
            served_provider, _, served = model.served_by(response).rpartition("/")
            if served_provider and not provider:  # a named model: the entry that answered
                span.set_attribute("gen_ai.provider.name", PROVIDERS.get(served_provider, served_provider))
            reported = response.model or served
            span.set_attribute("gen_ai.response.model", reported.removeprefix(f"{served_provider}/"))
            span.set_attribute("gen_ai.usage.input_tokens", response.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", response.usage.output_tokens)
            if response.stop_reason:
                span.set_attribute("gen_ai.response.finish_reasons", [response.stop_reason])
            return response

    async def tool_call(self, call: ToolCallPart, work: Awaitable[T]) -> T:
        attributes = {
            **self.attributes,
            "agent_runtime.span": "execute_tool",
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.name,
            "gen_ai.tool.call.id": call.id,
        }
        span = self.tracer.start_span(f"execute_tool {call.name}", context=self._turn_context(), attributes=attributes)
        with trace.use_span(span, end_on_exit=True, record_exception=True, set_status_on_exception=True):
            value = await work
            part = value if isinstance(value, ToolResultPart) else getattr(value, "result", None)
            if isinstance(part, ToolResultPart) and part.is_error:
                span.set_attribute("error.type", part.status)
                span.set_status(Status(StatusCode.ERROR, part.content[:500]))
            return value


__all__ = [
    "PROVIDERS",
    "AttemptSpans",
    "PresetIds",
    "SpanReader",
    "SpanView",
    "Tracing",
    "current_traceparent",
    "parent_of",
    "record_attributes",
    "submission_context",
    "submission_spans",
]
