"""Agents as tools on both adapters: `profile.as_tool(...)` runs the profile as an isolated,
durable blocking child; the caller stays in control; an output extractor shapes what the
caller's model reads from the callee's validated result."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from pydantic import BaseModel

from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from tests.served import Served

INST = InstanceRef("triage", "R-1")


class Summary(BaseModel):
    summary: str
    score: int


def test_a_profile_as_a_tool_with_an_output_extractor(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen_by_callee: list[ModelRequest] = []
    caller_results: list[ToolResultPart] = []

    def analyst(request: ModelRequest) -> ToolCall:
        seen_by_callee.append(request)
        return ToolCall("final_result", {"summary": f"low risk for {last_user_text(request)}", "score": 2})

    def caller(request: ModelRequest) -> str | ToolCall:
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if results:
            caller_results.extend(results)
            return f"the analyst says: {results[0].content}"
        return ToolCall("risk_writeup", {"input": "order 991"}, id="r-1")

    risk = define_agent_profile(name="RiskAnalystAgent", description="Writes risk summaries.", model=FunctionModel(analyst), result=Summary)
    tool = risk.as_tool(tool_name="risk_writeup", tool_description="Get a risk write-up", output_extractor=lambda r: r.data.summary)
    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(caller), tools=[tool]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "assess the order, and keep this secret: 123"))
    served.until(served.settled(INST, admitted.record.id))
    done = served.record(INST, admitted.record.id)
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == "the analyst says: low risk for order 991"
    assert caller_results[0].name == "risk_writeup" and caller_results[0].content == "low risk for order 991"
    # Isolated: the callee saw only its input, never the caller's conversation.
    assert [m.text for m in seen_by_callee[0].messages] == ["order 991"]
    (entry, child), = asyncio.run(runtime.list_children(INST.agent, INST.id))
    assert entry.child.agent == "risk-analyst-agent" and child is not None and child.result
    assert child.result["data"] == {"summary": "low risk for order 991", "score": 2}


def test_agent_tool_names_are_checked() -> None:
    risk = define_agent_profile(name="RiskAnalystAgent", description="Risk.")
    assert risk.as_tool().name == "risk_analyst_agent"
    with pytest.raises(DefinitionError, match="tool name must match"):
        risk.as_tool(tool_name="no spaces allowed")
    with pytest.raises(DefinitionError, match="duplicate tool name"):
        create_agent(model="test/echo", tools=[risk.as_tool(), risk.as_tool()])


def test_an_agent_exposed_as_a_tool(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    def checker(request: ModelRequest) -> str:
        return f"checked: {last_user_text(request)}"

    exposed = create_agent(
        model=FunctionModel(checker), name="fraud_check", expose_as_tool=True, tool_description="Check an order for fraud."
    )

    def caller(request: ModelRequest) -> str | ToolCall:
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if results:
            return results[0].content
        assert [t.name for t in request.tools] == ["fraud_check"]
        return ToolCall("fraud_check", {"input": "order 7"}, id="f-1")

    registry = Registry()
    registry.add("fraud", exposed)  # reachable on its own too
    registry.add(INST.agent, create_agent(model=FunctionModel(caller), tools=[exposed]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "go"))
    served.until(served.settled(INST, admitted.record.id))
    done = served.record(INST, admitted.record.id)
    assert done.result and done.result["text"] == "checked: order 7"
    with pytest.raises(DefinitionError, match="expose_as_tool=True"):
        create_agent(model="test/echo", tools=[create_agent(model="test/echo")])
