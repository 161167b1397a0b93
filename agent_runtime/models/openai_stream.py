"""Reading a Chat Completions response, for `agent_runtime.models.openai`: the data of
server-sent events, chunks put together into one turn, usage, and error responses mapped
onto the exception tree.

A streamed completion is a run of ``data:`` lines, each a JSON chunk, until ``[DONE]``::

    data: {"id": "chatcmpl-1", "model": "gpt-4.1-mini", "choices": [{"index": 0,
           "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": null}],
           "usage": null}
    data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1",
           "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}}]}
    data: {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0,
           "function": {"arguments": "{\\"city\\": \\"Paris\\"}"}}]}}]}
    data: {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}
    data: {"choices": [], "usage": {"prompt_tokens": 120, "completion_tokens": 9,
           "prompt_tokens_details": {"cached_tokens": 100}}}
    data: [DONE]

A failure after the stream began arrives as a chunk holding an ``error`` object instead.
No httpx2 here: the transport's own errors are mapped by the model, which imports it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from time import time
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
from agent_runtime.models.sse import sse_data

__all__ = ["StreamedTurn", "error_object", "retry_after", "sse_data", "to_model_error", "to_usage"]

Json = dict[str, Any]

# The status an `error` object inside a 200 stream stands for, by its code or type
# (anything else counts as a 500).
_ERROR_STATUS = {
    "invalid_request_error": 400,
    "context_length_exceeded": 400,
    "invalid_api_key": 401,
    "insufficient_quota": 429,
    "rate_limit_exceeded": 429,
    "tokens": 429,
    "requests": 429,
}


@dataclass
class _Call:
    id: str = ""
    name: str = ""
    arguments: str = ""
    announced: bool = False


class StreamedTurn:
    """One streamed completion, put together from its chunks."""

    def __init__(self) -> None:
        self.text: list[str] = []
        self.thinking: list[str] = []
        self.calls: dict[int, _Call] = {}
        self.finish_reason: str | None = None
        self.usage: Mapping[str, Any] | None = None
        self.model: str | None = None

    def feed(self, data: str) -> list[ModelEvent]:
        try:
            chunk = json.loads(data)
        except ValueError as err:
            raise ModelError(f"openai: a stream chunk is not JSON: {data[:200]!r}") from err
        if not isinstance(chunk, dict):
            raise ModelError(f"openai: a stream chunk is not an object: {data[:200]!r}")
        if chunk.get("error") is not None:
            error = chunk["error"]
            found = error if isinstance(error, dict) else {"message": str(error)}
            raise to_model_error(_stream_error_status(found), found, {})
        self.model = chunk.get("model") or self.model
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        events: list[ModelEvent] = []
        for choice in chunk.get("choices") or ():
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                self.thinking.append(reasoning)
                events.append(ThinkingDelta(thinking=reasoning))
            for key in ("content", "refusal"):
                if isinstance(text := delta.get(key), str) and text:
                    self.text.append(text)
                    events.append(TextDelta(text=text))
            for call in delta.get("tool_calls") or ():
                events.extend(self._call_delta(call))
            if choice.get("finish_reason"):
                self.finish_reason = str(choice["finish_reason"])
        return events

    def _call_delta(self, delta: Mapping[str, Any]) -> list[ModelEvent]:
        index = delta.get("index")
        call = self.calls.setdefault(index if isinstance(index, int) else len(self.calls), _Call())
        function = delta.get("function") or {}
        call.id = call.id or str(delta.get("id") or "")
        call.name = call.name or str(function.get("name") or "")
        if isinstance(arguments := function.get("arguments"), str):
            call.arguments += arguments
        return self._announce(call) if call.id and call.name else []

    @staticmethod
    def _announce(call: _Call) -> list[ModelEvent]:
        if call.announced:
            return []
        call.announced = True
        return [ToolCallStarted(id=call.id, name=call.name)]

    def close(self) -> list[ModelEvent]:
        """At the end of the stream: it must have finished; calls a server sent without an
        id get one (and their `ToolCallStarted`)."""
        if self.finish_reason is None and self.usage is None:
            raise TransientModelError("openai: the stream ended before the response finished")
        events: list[ModelEvent] = []
        for call in self.calls.values():
            if not call.name:
                raise ModelError("openai: the server sent a tool call without a name")
            call.id = call.id or f"call_{uuid.uuid4().hex[:24]}"
            events.extend(self._announce(call))
        return events

    def response(self) -> ModelResponse:
        parts: list[Part] = []
        if self.thinking:
            parts.append(ThinkingPart(thinking="".join(self.thinking)))
        if self.text:
            parts.append(TextPart(text="".join(self.text)))
        for index in sorted(self.calls):
            call = self.calls[index]
            parts.append(ToolCallPart(id=call.id, name=call.name, arguments=_arguments(call)))
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=to_usage(self.usage),
            stop_reason=self.finish_reason,
            model=self.model,
        )


def _arguments(call: _Call) -> dict[str, Any]:
    """A call's arguments as an object. Text that is not a JSON object is kept under
    ``invalid_json_arguments``: the tool's validation then tells the model what went wrong,
    and the history shows what it sent."""
    try:
        value = json.loads(call.arguments) if call.arguments.strip() else {}
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {"invalid_json_arguments": call.arguments}


def to_usage(usage: Mapping[str, Any] | None) -> Usage:
    """OpenAI's ``prompt_tokens`` include the cached ones (``prompt_tokens_details.
    cached_tokens``, or DeepSeek's ``prompt_cache_hit_tokens``): `Usage.input_tokens` is
    the uncached rest, so that the two add up to the prompt, as for anthropic."""
    if not usage:
        return Usage(requests=1)
    details = usage.get("prompt_tokens_details") or {}
    cached = _int(details.get("cached_tokens")) or _int(usage.get("prompt_cache_hit_tokens"))
    return Usage(
        input_tokens=max(0, _int(usage.get("prompt_tokens")) - cached),
        output_tokens=_int(usage.get("completion_tokens")),
        cache_read_tokens=cached,
        requests=1,
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


# --- errors --------------------------------------------------------------------------


def to_model_error(status: int, error: Mapping[str, Any], headers: Mapping[str, str]) -> ModelError:
    """An error response (`status`, its ``error`` object, headers) as our error: 408, 409,
    429 and 5xx transient (a 429 ``insufficient_quota`` excepted: billing, not load); a
    context length exceeded `ContextLengthExceeded`; any other status permanent."""
    message = str(error.get("message") or "").strip() or f"HTTP {status}"
    code = error.get("code")
    kind = error.get("type")
    label = code if isinstance(code, str) and code else kind or "error"
    text = f"openai {status} {label}: {message}"
    details = {"status": status, "type": kind, "code": code, "request_id": headers.get("x-request-id")}
    if status == 429 and code == "insufficient_quota":
        return PermanentModelError(text, details=details)
    if status in (408, 409, 429) or status >= 500:
        return TransientModelError(text, status=status, retry_after=retry_after(headers))
    if status == 400 and _context_exceeded(code, kind, message):
        return ContextLengthExceeded(text, details=details)
    return PermanentModelError(text, details=details)


def _context_exceeded(code: Any, kind: Any, message: str) -> bool:
    if code == "context_length_exceeded" or kind == "exceed_context_size_error":
        return True
    lowered = message.lower()
    return any(f"context {word}" in lowered for word in ("length", "window", "size")) and any(
        word in lowered for word in ("exceed", "maximum", "too long", "reduce")
    )


def error_object(body: bytes) -> Json:
    """The ``error`` object of an error response: OpenAI's ``{"error": {...}}``, a bare
    object with a ``message`` (older vLLM), ``{"error": "text"}``, or the body's text."""
    try:
        data = json.loads(body)
    except ValueError:
        return {"message": body.decode("utf-8", "replace")[:500]}
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict):
            return error
        if isinstance(error, str):
            return {"message": error}
        if "message" in data:
            return data
    return {"message": str(data)[:500]}


def _stream_error_status(error: Mapping[str, Any]) -> int:
    for key in ("status", "code"):
        if isinstance(value := error.get(key), int) and 400 <= value < 600:
            return value
    return _ERROR_STATUS.get(str(error.get("code")), _ERROR_STATUS.get(str(error.get("type")), 500))


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or an HTTP date)."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return max(0.0, float(ms) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
