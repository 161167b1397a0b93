"""Reading a streamed Messages API response, for `agent_runtime.models.anthropic`: its
server-sent events put together into one message, usage, and error responses mapped
onto the exception tree.

A streamed message is a run of events, each a JSON object whose ``type`` names it::

    message_start        {"message": {"id", "model", "usage": {"input_tokens", ...}}}
    content_block_start  {"index": 0, "content_block": {"type": "text", "text": ""}}
    content_block_delta  {"index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
                         (thinking_delta, signature_delta, input_json_delta alike)
    content_block_stop   {"index": 0}
    message_delta        {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 9}}
    message_stop         {}

with ``ping`` events between them, and an ``error`` event instead of the rest when the
API fails after the stream began. No httpx2 here: the transport's own errors are mapped
by the model, which imports it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.errors import (
    ContextLengthExceeded,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agent_runtime.messages import Message, Part, TextPart, ThinkingPart, ToolCallPart, Usage
from agent_runtime.models.base import (
    ModelEvent,
    ModelResponse,
    TextDelta,
    ThinkingDelta,
    ToolCallStarted,
)

__all__ = ["StreamedMessage", "error_object", "error_response", "retry_after", "to_model_error"]

Json = dict[str, Any]

# The HTTP status an error would have had, when it arrives as an SSE `error` event after
# the stream began with 200 (unknown types count as 500).
_ERROR_TYPE_STATUS = {"invalid_request_error": 400, "rate_limit_error": 429, "api_error": 500}
_ERROR_TYPE_STATUS |= {"timeout_error": 504, "overloaded_error": 529}

#: Usage fields a ``message_delta`` may bring up to date (``output_tokens`` always does).
_USAGE_FIELDS = (
    "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens",
)  # fmt: skip


@dataclass
class _Content:
    type: str
    text: list[str] = field(default_factory=list)
    signature: str = ""
    id: str = ""
    name: str = ""
    input: Any = None
    partial_json: list[str] = field(default_factory=list)


class StreamedMessage:
    """One streamed message, put together from its events (the data of each, as JSON)."""

    def __init__(self) -> None:
        self.blocks: dict[int, _Content] = {}
        self.usage: Json = {}
        self.model: str | None = None
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, data: str) -> list[ModelEvent]:
        """The events to pass on for one server-sent event's data."""
        try:
            event = json.loads(data)
        except ValueError as err:
            raise ModelError(f"anthropic: a stream event is not JSON: {data[:200]!r}") from err
        if not isinstance(event, dict):
            raise ModelError(f"anthropic: a stream event is not an object: {data[:200]!r}")
        kind = event.get("type")
        if kind == "error":
            error = event.get("error")
            found = error if isinstance(error, dict) else {"message": str(error)}
            status = _ERROR_TYPE_STATUS.get(str(found.get("type")), 500)
            raise to_model_error(status, found, {})
        if kind == "message_start":
            message = event.get("message") or {}
            self.model = message.get("model")
            self.usage = dict(message.get("usage") or {})
        elif kind == "content_block_start":
            return self._start(event.get("index"), event.get("content_block") or {})
        elif kind == "content_block_delta":
            index = event.get("index")
            block = self.blocks.get(index) if isinstance(index, int) else None
            return self._delta(block, event.get("delta") or {})
        elif kind == "message_delta":
            self.stop_reason = (event.get("delta") or {}).get("stop_reason") or self.stop_reason
            usage = event.get("usage") or {}
            self.usage |= {name: usage[name] for name in _USAGE_FIELDS if usage.get(name) is not None}
        elif kind == "message_stop":
            self.stopped = True
        return []

    def _start(self, index: Any, block: Mapping[str, Any]) -> list[ModelEvent]:
        kind = str(block.get("type"))
        started = _Content(kind)
        if isinstance(index, int):
            self.blocks[index] = started
        if kind == "text" and block.get("text"):
            started.text.append(str(block["text"]))
        elif kind == "thinking":
            started.signature = str(block.get("signature") or "")
        elif kind == "tool_use":
            started.id, started.name = str(block.get("id") or ""), str(block.get("name") or "")
            started.input = block.get("input")
            return [ToolCallStarted(id=started.id, name=started.name)]
        return []

    @staticmethod
    def _delta(block: _Content | None, delta: Mapping[str, Any]) -> list[ModelEvent]:
        if block is None:
            return []
        kind = delta.get("type")
        if kind == "text_delta" and (text := delta.get("text")):
            block.text.append(text)
            return [TextDelta(text=text)]
        if kind == "thinking_delta" and (thinking := delta.get("thinking")):
            block.text.append(thinking)
            return [ThinkingDelta(thinking=thinking)]
        if kind == "signature_delta":
            block.signature += str(delta.get("signature") or "")
        elif kind == "input_json_delta":
            block.partial_json.append(str(delta.get("partial_json") or ""))
        return []

    def close(self) -> list[ModelEvent]:
        """Nothing: the Messages API's stream says all it has as it goes."""
        return []

    def response(self) -> ModelResponse:
        """The whole message, once the stream ended with ``message_stop``."""
        if not self.stopped:
            raise TransientModelError("anthropic: the stream ended before the message did")
        parts: list[Part] = []
        for index in sorted(self.blocks):
            block = self.blocks[index]
            if block.type == "text" and block.text:
                parts.append(TextPart(text="".join(block.text)))
            elif block.type == "thinking":
                thinking = "".join(block.text)
                parts.append(ThinkingPart(thinking=thinking, signature=block.signature or None))
            elif block.type == "tool_use":
                parts.append(ToolCallPart(id=block.id, name=block.name, arguments=_input(block)))
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=Usage(
                input_tokens=_int(self.usage.get("input_tokens")),
                output_tokens=_int(self.usage.get("output_tokens")),
                cache_read_tokens=_int(self.usage.get("cache_read_input_tokens")),
                cache_write_tokens=_int(self.usage.get("cache_creation_input_tokens")),
                requests=1,
            ),
            stop_reason=self.stop_reason,
            model=self.model,
        )


def _input(block: _Content) -> dict[str, Any]:
    """A tool call's input: its streamed JSON, else what its start gave. Text that is not
    a JSON object is kept under ``invalid_json_arguments`` for the tool's validation to
    explain to the model."""
    streamed = "".join(block.partial_json)
    if not streamed.strip():
        return dict(block.input) if isinstance(block.input, dict) else {}
    try:
        value = json.loads(streamed)
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"invalid_json_arguments": streamed}


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# --- errors --------------------------------------------------------------------------


def to_model_error(status: int, error: Mapping[str, Any], headers: Mapping[str, str]) -> ModelError:
    """An error response (`status`, its ``error`` object, headers) as our error:
    `TransientModelError` for 408, 429, 5xx and 529; `PermanentModelError`
    (`ContextLengthExceeded` for a prompt too long) for the other statuses."""
    kind = error.get("type")
    message = f"anthropic {status} {kind or 'error'}: {error.get('message') or f'HTTP {status}'}"
    if status in (408, 429) or status >= 500:
        return TransientModelError(message, status=status, retry_after=retry_after(headers))
    details = {"status": status, "type": kind, "request_id": headers.get("request-id")}
    if status == 400 and "too long" in str(error.get("message") or "").lower():
        return ContextLengthExceeded(message, details=details)
    return PermanentModelError(message, details=details)


def error_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelError:
    """An error response as our error (`to_model_error` of its ``error`` object)."""
    return to_model_error(status, error_object(body), headers)


def error_object(body: bytes) -> Json:
    """The ``error`` object of an error response (``{"type": "error", "error": {...}}``),
    or the body's text as its message when it is something else (a proxy's page)."""
    try:
        data = json.loads(body)
    except ValueError:
        return {"message": body.decode("utf-8", "replace")[:500]}
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return error
    return {"message": str(data)[:500]}


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds, as the API sends)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None
