"""Deterministic models for tests and offline runs; no network, no credentials.

- ``test/echo``: replies ``echo: <last user text>``.
- `ScriptedModel(steps=[...])`: plays its steps in order, records every request, and
  fails loudly when asked past its script or (`assert_done`) when steps are left.
- `FunctionModel(fn)`: calls ``fn(request)`` for each turn.

They stream like real models (text in word-sized deltas) so the streaming paths run.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_runtime.errors import DefinitionError
from agent_runtime.message_sums import MessageSum
from agent_runtime.messages import Message, Part, TextPart, ToolCallPart, ToolResultPart, Usage
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ToolCallStarted,
)


@dataclass(frozen=True)
class ToolCall:
    """A scripted tool call; `id` defaults to a deterministic one."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


Step = str | ToolCall | Sequence[str | ToolCall] | ModelResponse | Exception


def _text_chars(message: Message) -> int:
    return sum(len(p.text) for p in message.parts if isinstance(p, TextPart))


#: The history's text, summed without walking every earlier message on each request.
_history_chars = MessageSum(_text_chars)


def _usage_for(request: ModelRequest, message: Message) -> Usage:
    """Roughly four characters a token, from the text parts: deterministic and cheap."""
    prompt = _history_chars(request.messages) + len(request.system or "")
    out = _text_chars(message)
    return Usage(input_tokens=max(1, prompt // 4), output_tokens=max(1, out // 4), requests=1)


def _stream_response(response: ModelResponse) -> Iterator[ModelEvent]:
    """The events of `response`, as a model streams them. A plain generator: a reader
    that stops at `ResponseDone` leaves nothing for the event loop to close."""
    for part in response.message.parts:
        if isinstance(part, TextPart):
            for chunk in re.findall(r"\S+\s*|\s+", part.text):
                yield TextDelta(text=chunk)
        elif isinstance(part, ToolCallPart):
            yield ToolCallStarted(id=part.id, name=part.name)
    yield ResponseDone(response=response)


class _TestModel(Model):
    _ids = itertools.count(1)
    _lock = threading.Lock()

    def _call_id(self) -> str:
        with self._lock:
            return f"call_{next(self._ids):06d}"

    def _message(self, step: str | ToolCall | Sequence[str | ToolCall]) -> Message:
        items = [step] if isinstance(step, str | ToolCall) else list(step)
        parts: list[Part] = []
        for item in items:
            if isinstance(item, str):
                parts.append(TextPart(text=item))
            else:
                parts.append(ToolCallPart(id=item.id or self._call_id(), name=item.name, arguments=item.arguments))
        return Message(role="assistant", parts=parts)


class EchoModel(_TestModel):
    """Replies ``echo: <last user text>``; after tool results, echoes them."""

    name = "test/echo"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        text = ""
        for message in reversed(request.messages):
            if message.role != "user":
                continue
            results = [p for p in message.parts if isinstance(p, ToolResultPart)]
            text = message.text or "; ".join(r.content for r in results)
            break
        reply = Message.assistant(f"echo: {text}")
        response = ModelResponse(message=reply, usage=_usage_for(request, reply), stop_reason="end_turn", model=self.name)
        for event in _stream_response(response):
            yield event


class ScriptedModel(_TestModel):
    """Plays `steps` in order: a str is a text reply, a `ToolCall` (or a list mixing
    both) is an assistant turn with tool calls, an Exception is raised, a
    `ModelResponse` is returned as is. Every request is kept in `requests`."""

    name = "test/scripted"

    def __init__(self, steps: Sequence[Step], *, delay: float = 0.0) -> None:
        self.steps = list(steps)
        self.requests: list[ModelRequest] = []
        self.delay = delay
        self._position = 0
        self._step_lock = threading.Lock()

    @property
    def remaining(self) -> int:
        return len(self.steps) - self._position

    def assert_done(self) -> None:
        if self.remaining:
            raise AssertionError(f"ScriptedModel has {self.remaining} unused step(s)")

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        with self._step_lock:
            self.requests.append(request)
            if self._position >= len(self.steps):
                raise AssertionError(
                    f"ScriptedModel was asked for turn {self._position + 1} but has {len(self.steps)} step(s)"
                )
            step = self.steps[self._position]
            self._position += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(step, Exception):
            raise step
        if isinstance(step, ModelResponse):
            response = step
        else:
            message = self._message(step)
            stop = "tool_use" if message.tool_calls else "end_turn"
            response = ModelResponse(message=message, usage=_usage_for(request, message), stop_reason=stop, model=self.name)
        for event in _stream_response(response):
            yield event


FunctionResult = str | ToolCall | Sequence[str | ToolCall] | ModelResponse


class FunctionModel(_TestModel):
    """Calls ``fn(request)`` (sync or async) for each turn."""

    name = "test/function"

    def __init__(self, fn: Callable[[ModelRequest], FunctionResult | Awaitable[FunctionResult]]) -> None:
        self.fn = fn
        self.requests: list[ModelRequest] = []

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.requests.append(request)
        result = self.fn(request)
        if isinstance(result, Awaitable):
            result = await result
        if isinstance(result, ModelResponse):
            response = result
        else:
            message = self._message(result)
            stop = "tool_use" if message.tool_calls else "end_turn"
            response = ModelResponse(message=message, usage=_usage_for(request, message), stop_reason=stop, model=self.name)
        for event in _stream_response(response):
            yield event


def last_user_text(request: ModelRequest) -> str:
    for message in reversed(request.messages):
        if message.role == "user" and message.text:
            return message.text
    return ""


def resolve_test_model(name: str) -> Model:
    if name == "echo":
        return EchoModel()
    raise DefinitionError(
        "model",
        f"unknown test model 'test/{name}': use 'test/echo', or pass ScriptedModel(...) / FunctionModel(...) as the model",
    )
