"""Traces: OpenTelemetry spans of a submission's life, off unless configured.

    invoke_agent {agent}          the submission, accepted -> settled (emitted when it settles)
      attempt {n}                 one claim of it by a worker
        turn {n}                  one model call and the tools it asked for
          chat {model}            the model call (OpenTelemetry GenAI conventions)
          execute_tool {name}     one tool call
            invoke_agent {child}  a subagent's submission, in another instance (and process)

A submission's span has ids derived from the submission (`spans.submission_context`), so
every process that runs one of its attempts parents to it without a lookup, and the
span written when the submission settles has those same ids. A child's submission
carries the W3C ``traceparent`` of the tool call that started it in its payload, so the
child's spans join the parent's trace across processes and Step Functions.

This module is what the loop imports, and it imports no OpenTelemetry: with tracing
off (``AGENT_RUNTIME_TRACING`` unset) each hook is a context-variable read or a
global check. Only when a sink is configured is `agent_runtime.tracing.spans` (the
OpenTelemetry API) loaded, and the SDK with it (`agent_runtime.tracing.setup`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Awaitable, Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, TypeVar

from agent_runtime import settings

if TYPE_CHECKING:
    from agent_runtime.ledger import Outcome, SubmissionRecord
    from agent_runtime.messages import ToolCallPart, Usage
    from agent_runtime.models.base import Model, ModelResponse
    from agent_runtime.tracing.spans import AttemptSpans, SpanReader, Tracing

T = TypeVar("T")
log = logging.getLogger("agent_runtime")

#: The configured tracing, once the environment was read (None: off); `_UNSET` until then.
_UNSET: Any = object()
_tracing: Tracing | None = _UNSET
_attempt: ContextVar[AttemptSpans | None] = ContextVar("agent_runtime_attempt_spans", default=None)


def active() -> Tracing | None:
    """The tracing in force: configured by `configure`, else from the environment on
    first use (nothing is imported when ``AGENT_RUNTIME_TRACING`` names no sink)."""
    global _tracing
    if _tracing is _UNSET:
        sinks = settings.tracing_sinks(os.environ.get(settings.ENV_TRACING, ""))
        _tracing = None
        if sinks:
            try:
                from agent_runtime.tracing.setup import from_environment
            except ImportError:  # the `tracing` extra is not installed: run untraced
                log.warning("%s=%s but OpenTelemetry's SDK is not installed (pip install 'agent-runtime[tracing]'); tracing is off", settings.ENV_TRACING, ",".join(sorted(sinks)))
            else:
                _tracing = from_environment(sinks)
    return _tracing


def configure(tracing: Tracing | None) -> None:
    """Use `tracing` from now on (None: off); tests and the local stack call it."""
    global _tracing
    _tracing = tracing


def reset() -> None:
    """Forget the configuration: the environment is read again on next use."""
    global _tracing
    _tracing = _UNSET


def attempt(record: SubmissionRecord) -> contextlib.AbstractContextManager[None]:
    """The span of one attempt of `record`, current while the attempt runs."""
    tracing = active()
    if tracing is None:
        return contextlib.nullcontext()
    return _attempt_span(tracing, record)


@contextlib.contextmanager
def _attempt_span(tracing: Tracing, record: SubmissionRecord) -> Iterator[None]:
    with tracing.attempt(record) as spans:
        token = _attempt.set(spans)
        try:
            yield
        finally:
            _attempt.reset(token)


async def model_call(model: Model, turn: int, reply: Awaitable[ModelResponse]) -> ModelResponse:
    """`reply`, awaited inside a ``chat`` span under a new ``turn`` span (when traced)."""
    spans = _attempt.get()
    if spans is None:
        return await reply
    return await spans.model_call(model, turn, reply)


async def tool_call(call: ToolCallPart, work: Awaitable[T]) -> T:
    """`work` (a tool's run), awaited inside an ``execute_tool`` span, which is the
    current span meanwhile: a child started by the call carries it as its parent."""
    spans = _attempt.get()
    if spans is None:
        return await work
    return await spans.tool_call(call, work)


def settled(record: SubmissionRecord, outcome: Outcome, error: dict[str, Any] | None, usage: Usage | None, now: float) -> None:
    """Write the submission's span, now that it settled."""
    tracing = active()
    if tracing is None:
        return
    try:
        tracing.settled(record, outcome, error, usage, now)
    except Exception:  # a span lost is not a reason to fail what it describes
        log.warning("could not write a submission's span", extra={"submission_id": record.id}, exc_info=True)


def traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, for work started from it elsewhere."""
    if _attempt.get() is None:
        return None
    from agent_runtime.tracing.spans import current_traceparent

    return current_traceparent()


def carried(payload: dict[str, Any]) -> dict[str, Any]:
    """`payload` with the current span's ``traceparent``: what a child's submission
    carries so that its spans join the trace of the call that started it."""
    parent = traceparent()
    return payload if parent is None else {**payload, "traceparent": parent}


def reader() -> SpanReader | None:
    """Where finished spans can be read back (the ``table`` sink), if anywhere."""
    tracing = active()
    return tracing.reader if tracing is not None else None


def flush() -> None:
    """Export what is buffered: a Lambda calls it before its invocation returns."""
    tracing = _tracing if _tracing is not _UNSET else None
    if tracing is not None:
        tracing.flush()


__all__ = ["active", "attempt", "carried", "configure", "flush", "model_call", "reader", "reset", "settled", "tool_call", "traceparent"]
