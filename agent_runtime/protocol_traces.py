"""The trace route's reply: a submission's spans, for a waterfall view.

    GET /agents/{name}/{id}/submissions/{submission_id}/trace
    -> {"trace_id": "...", "spans": [{"span_id", "parent_span_id", "name", "start", "end", "attributes"}]}

``start`` and ``end`` are epoch seconds (floats). The spans are the submission's own
and everything below it (attempts, turns, model and tool calls, and its children's
submissions, which run in other instances), by start time.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class TraceSpan(BaseModel):
    model_config = ConfigDict(defer_build=True)

    span_id: str = Field(description="16 hex digits")
    parent_span_id: str | None = Field(description="None for the root of the trace")
    name: str = Field(description="invoke_agent {agent}, attempt {n}, turn {n}, chat {model}, execute_tool {tool}")
    start: float = Field(description="epoch seconds")
    end: float = Field(description="epoch seconds")
    attributes: dict[str, Any] = Field(default_factory=dict)


class Trace(BaseModel):
    model_config = ConfigDict(defer_build=True)

    trace_id: str = Field(description="32 hex digits (W3C): the id to look it up by in X-Ray")
    spans: list[TraceSpan]


__all__ = ["Trace", "TraceSpan"]
