"""Hooks on both adapters: each is called at its point with the right arguments; filters
change only what the model is sent (never stored history, never a call without its
result); prepare_end and prepare_handoff may change the session's context; a hook that
raises fails the submission with a clear error."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.hooks import EndResult, HookContext, Hooks
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolFailure, tool
from tests.served import Served

INST = InstanceRef("hooked", "H-1")


@tool
def noisy() -> str:
    """Produces noise."""
    return "NOISE " * 10


@tool
def breaks() -> str:
    """Always fails."""
    raise ToolFailure("broken on purpose")


def parts(messages: list[Message]) -> list[list[str]]:
    return [[p.type for p in m.parts] for m in messages]


def test_every_hook_at_its_point(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    log: list[tuple[str, Any]] = []
    requests: list[ModelRequest] = []

    def model(request: ModelRequest) -> str | list[ToolCall]:
        requests.append(request)
        if len(requests) == 1:
            return [ToolCall("noisy", {}, id="n-1"), ToolCall("breaks", {}, id="b-1")]
        return "all done"

    def prefilter(messages: list[Message], ctx: HookContext) -> list[Message]:
        log.append(("prefilter_llm_history", (len(messages), ctx.agent, ctx.turn)))
        return messages

    def drop_noise(messages: list[Message], ctx: HookContext) -> list[Message]:
        log.append(("filter_messages", len(messages)))
        # Drops noisy's result only: its call must go too, or the request would be invalid.
        return [
            m.model_copy(update={"parts": [p for p in m.parts if not (isinstance(p, ToolResultPart) and p.name == "noisy")]})
            for m in messages
        ]

    async def before_create(message: Message, ctx: HookContext) -> Message:
        log.append(("before_create_message", message.text))
        return Message.assistant(message.text.upper()) if message.text else message

    def after_create(message: Message, ctx: HookContext) -> None:
        log.append(("after_create_message", message.text or [c.name for c in message.tool_calls]))

    def before_store(call: ToolCallPart, result: ToolResultPart, ctx: HookContext) -> ToolResultPart | None:
        log.append(("before_store_tool_result", call.name))
        return result.model_copy(update={"content": "noise (trimmed)"}) if call.name == "noisy" else None

    def success(call: ToolCallPart, result: ToolResultPart, ctx: HookContext) -> None:
        log.append(("after_tool_call_success", (call.name, result.content)))

    def failure(call: ToolCallPart, result: ToolResultPart, ctx: HookContext) -> None:
        log.append(("after_tool_call_failure", (call.name, result.content)))

    def prepare_end(result: EndResult, ctx: HookContext) -> EndResult:
        log.append(("prepare_end", result.text))
        ctx.context["ended"] = True
        return EndResult(text=f"{result.text}!", data={"turns": ctx.turn})

    hooks = Hooks(
        prefilter_llm_history=prefilter,
        filter_messages=drop_noise,
        before_create_message=before_create,
        after_create_message=after_create,
        before_store_tool_result=before_store,
        after_tool_call_success=success,
        after_tool_call_failure=failure,
        prepare_end=prepare_end,
    )
    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(model), tools=[noisy, breaks], hooks=hooks))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "go"))
    served.until(served.settled(INST, admitted.record.id))
    done = served.record(INST, admitted.record.id)
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == "ALL DONE!" and done.result["data"] == {"turns": 2}
    assert [name for name, _ in log] == [
        "prefilter_llm_history", "filter_messages", "before_create_message", "after_create_message",
        "before_store_tool_result", "after_tool_call_success", "before_store_tool_result", "after_tool_call_failure",
        "prefilter_llm_history", "filter_messages", "before_create_message", "after_create_message", "prepare_end",
    ]  # fmt: skip
    assert log[0][1] == (1, None, 1)
    assert ("after_tool_call_success", ("noisy", "noise (trimmed)")) in log
    assert ("after_tool_call_failure", ("breaks", "broken on purpose")) in log
    # The second request lost noisy's call and result together; breaks' pair stayed.
    second = requests[1].messages
    assert parts(second) == [["text"], ["tool_call"], ["tool_result"]]
    assert second[1].tool_calls[0].name == "breaks"
    # Stored history is untouched by the filters, and has the hooks' own changes.
    history = [m.message for m in asyncio.run(runtime.history(INST.agent, INST.id, "default")).messages]
    assert parts(history) == [["text"], ["tool_call", "tool_call"], ["tool_result", "tool_result"], ["text"]]
    assert history[2].parts[0].content == "noise (trimmed)" and history[-1].text == "ALL DONE"  # type: ignore[union-attr]
    assert asyncio.run(runtime.stores.sessions.get(INST, "default")).context == {"ended": True}


def test_prepare_handoff_and_a_hook_that_raises(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen: list[int] = []

    def prepare_handoff(messages: list[Message], ctx: HookContext) -> None:
        seen.append(len(messages))
        ctx.context["handed_by"] = ctx.agent

    target = define_agent_profile(name="Expert", description="Knows things.", model=FunctionModel(lambda r: "expert answer"))
    front = create_agent(
        model=FunctionModel(lambda r: ToolCall("transfer_to_expert", {}, id="t-1")),
        handoffs=[target],
        hooks=Hooks(prepare_handoff=prepare_handoff),
        name="Front",
    )
    registry = Registry()
    registry.add(INST.agent, front)
    registry.add("raising", create_agent(model="test/echo", hooks=Hooks(filter_messages=lambda m, ctx: 1 / 0)))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "help"))
    served.until(served.settled(INST, admitted.record.id))
    answer = served.record(INST, admitted.record.id).result
    assert answer and answer["text"] == "expert answer"
    assert seen == [2]
    assert asyncio.run(runtime.stores.sessions.get(INST, "default")).context == {"handed_by": "Front"}

    other = InstanceRef("raising", "R-1")
    failed = asyncio.run(runtime.prompt(other.agent, other.id, "hi"))
    served.until(served.settled(other, failed.record.id))
    record = served.record(other, failed.record.id)
    assert record.outcome is Outcome.failed and record.attempts == 1
    assert record.error and record.error["type"] == "hook_error"
    assert record.error["message"] == "the filter_messages hook raised ZeroDivisionError: division by zero"
