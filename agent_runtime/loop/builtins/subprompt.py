"""Subprompts as tools (`agent_runtime.subprompts`): one model step, whose answer is the
call's result (recorded like any tool result, so a crash after it never asks again)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from agent_runtime.errors import AgentRuntimeError, FileNotFound, InvalidInput
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.inputs import file_part, request_files
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import ModelRequest, ToolSpec
from agent_runtime.subprompts import Subprompt


def conversation(history: Sequence[Message], *, with_tools: bool) -> list[Message]:
    """The caller's conversation as a subprompt sees it: without the turn in progress (its
    calls have no results yet), and without tool calls and results unless `with_tools`."""
    messages = list(history)
    if messages and messages[-1].role == "assistant" and messages[-1].tool_calls:
        messages.pop()
    if with_tools:
        return messages
    kept = []
    for message in messages:
        parts = [p for p in message.parts if p.type not in ("tool_call", "tool_result")]
        if parts:
            kept.append(message.model_copy(update={"parts": parts}))
    return kept


class SubpromptCall:
    silent = False

    def __init__(self, prompt: Subprompt) -> None:
        self.prompt = prompt
        self.spec = ToolSpec(name=prompt.name, description=prompt.tool_description, parameters=prompt.parameters)

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        try:
            message = await self._message(call.arguments, ctx)
        except (InvalidInput, FileNotFound) as exc:
            return Handled(error_result(call, exc.message))
        messages = [*conversation(ctx.history, with_tools=self.prompt.include_past_tools), message] if self.prompt.include_chat else [message]
        model = ctx.model if self.prompt.model is None else ctx.models(self.prompt.model) if ctx.models else None
        if model is None:
            return Handled(error_result(call, f"{call.name}: no model to run on"))
        result = self.prompt.result
        tools = [] if result is None else [_final(result)]
        request = ModelRequest(
            system=self.prompt.instructions,
            messages=messages,
            tools=tools,
            tool_choice="auto" if result is None else "required",
            files=await request_files(ctx.stores, ctx.record.ref, messages),
        )
        try:
            response = await model.request(request)
        except AgentRuntimeError as exc:
            return Handled(error_result(call, f"{call.name}: the model failed: {exc.message}"))
        answer = response.message
        if result is None:
            return Handled(ToolResultPart(call_id=call.id, name=call.name, content=answer.text))
        calls = answer.tool_calls
        try:
            data = result.model_validate(calls[0].arguments) if calls else result.model_validate_json(answer.text)
        except ValidationError as exc:
            return Handled(error_result(call, f"{call.name}: the answer is not a valid {result.__name__}: {exc.error_count()} error(s)"))
        return Handled(ToolResultPart(call_id=call.id, name=call.name, content=data.model_dump_json()))

    async def _message(self, arguments: dict[str, Any], ctx: CallContext) -> Message:
        prompt = self.prompt
        key = prompt.init_user_message_property
        if key is None and prompt.required_schema is None:
            key = "input"
        text = arguments.get(key) if key else json.dumps(arguments, ensure_ascii=False)
        if not isinstance(text, str) or not text:
            raise InvalidInput(f"{prompt.name}: argument {key!r} must be a non-empty string")
        paths = arguments.get(prompt.init_attachments_property, []) if prompt.init_attachments_property else []
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise InvalidInput(f"{prompt.name}: argument {prompt.init_attachments_property!r} must be a list of paths")
        files = []
        for path in paths:
            info = await ctx.stores.files.stat(ctx.record.ref, path)
            if info is None:
                raise FileNotFound(f"no file {path}", details={"path": path})
            files.append(file_part(info))
        return Message.user(text, files=files)


def _final(result: Any) -> ToolSpec:
    schema = result.model_json_schema()
    schema.pop("title", None)
    return ToolSpec(name="final_result", description="Give the answer.", parameters=schema)


class SubpromptFamily(PlainFamily):
    def __init__(self, prompts: Sequence[Subprompt]) -> None:
        self.calls = [SubpromptCall(p) for p in prompts]

    def builtins(self) -> Sequence[Builtin]:
        return self.calls
