"""Subprompts on both adapters: one model step as a tool, with only its mapped message (and
attachments) or with the caller's conversation (with or without past tool calls), a result
schema, and definition errors for a property missing from the schema."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agent_runtime.definition import create_agent
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.subprompts import subprompt
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import tool
from tests.served import Served

INST = InstanceRef("mailer", "M-1")


class Tone(BaseModel):
    tone: str
    rude_words: int


@tool
def lookup_customer() -> str:
    """Who the customer is."""
    return "Ada, a regular"


def run(backend: Backend, serve: Callable[[Backend, Runtime], Served], tools: list[Any], script: list[Any], text: str) -> tuple[list[ToolResultPart], Runtime]:
    seen: list[ToolResultPart] = []

    def caller(request: ModelRequest) -> Any:
        seen.extend(p for p in request.messages[-1].parts if isinstance(p, ToolResultPart))
        return script.pop(0) if script else "done"

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(caller), tools=tools))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, text))
    served.until(served.settled(INST, admitted.record.id))
    return seen, runtime


def test_a_subprompt_sees_only_its_message_and_attachments(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    asked: list[ModelRequest] = []

    def polite(request: ModelRequest) -> str:
        asked.append(request)
        return "Dear Ada, thank you for your patience."

    polish = subprompt(
        name="polish_email",
        tool_description="Rewrite an email politely.",
        instructions="Rewrite politely.",
        model=FunctionModel(polite),
        init_user_message_property="text",
        init_attachments_property="files",
    )
    script = [ToolCall("polish_email", {"text": "fix it already", "files": ["/drafts/a.md"]}, id="p-1")]
    backend_files = backend.stores.files
    asyncio.run(backend_files.write(INST, "/drafts/a.md", b"# draft", media_type="text/markdown", now=1.0))
    seen, _ = run(backend, serve, [polish], script, "please send a polite reply, the customer said: you idiots")
    assert seen[0].content == "Dear Ada, thank you for your patience."
    (request,) = asked
    assert request.system == "Rewrite politely." and request.tools == []
    assert [m.text for m in request.messages] == ["fix it already"], "no caller conversation"
    assert [f.path for f in request.messages[0].files] == ["/drafts/a.md"] and request.files == {"/drafts/a.md": b"# draft"}


@pytest.mark.parametrize("with_tools", [False, True])
def test_a_subprompt_with_the_chat_and_a_result(backend: Backend, serve: Callable[[Backend, Runtime], Served], with_tools: bool) -> None:
    asked: list[ModelRequest] = []

    def judge(request: ModelRequest) -> ToolCall:
        asked.append(request)
        return ToolCall("final_result", {"tone": "angry", "rude_words": 1})

    tone = subprompt(
        name="judge_tone",
        tool_description="Judge the customer's tone.",
        instructions="Judge the tone of the conversation.",
        model=FunctionModel(judge),
        include_chat=True,
        include_past_tools=with_tools,
        result=Tone,
    )
    script = [ToolCall("lookup_customer", {}, id="l-1"), ToolCall("judge_tone", {"input": "how rude?"}, id="j-1")]
    seen, _ = run(backend, serve, [lookup_customer, tone], script, "you idiots")
    assert Tone.model_validate_json(seen[-1].content) == Tone(tone="angry", rude_words=1)
    (request,) = asked
    assert request.tool_choice == "required" and [t.name for t in request.tools] == ["final_result"]
    kinds = [[p.type for p in m.parts] for m in request.messages]
    if with_tools:
        assert kinds == [["text"], ["tool_call"], ["tool_result"], ["text"]]
    else:
        assert kinds == [["text"], ["text"]], "past tool calls left out; the pending call never shown"
    assert request.messages[0].text == "you idiots" and request.messages[-1].text == "how rude?"


def test_subprompt_definitions_are_checked() -> None:
    schema = {"type": "object", "properties": {"body": {"type": "string"}}, "required": ["body"]}
    with pytest.raises(DefinitionError, match="'text' is not in its required_schema"):
        subprompt(name="p", tool_description="d", instructions="i", init_user_message_property="text", required_schema=schema)
    with pytest.raises(DefinitionError, match="tool_description is required"):
        subprompt(name="p", tool_description="", instructions="i")
    ok = subprompt(name="p", tool_description="d", instructions="i")
    with pytest.raises(DefinitionError, match="duplicate tool name"):
        create_agent(model="test/echo", tools=[ok, ok])
