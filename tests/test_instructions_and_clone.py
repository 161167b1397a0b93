"""Instruction helpers render structured markdown (with the handoff targets for the swarm
and supervisor variants); callable instructions see the instance's variables and the
session's context; `clone` copies profiles and agents with changes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_runtime.definition import AgentContext, create_agent, define_agent_profile
from agent_runtime.ids import InstanceRef
from agent_runtime.instructions import instructions
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolContext, tool
from agent_runtime.variables import Variable
from tests.served import Served

BILLING = define_agent_profile(name="BillingAgent", description="Billing.", handoff_description="Handles refunds and invoices.")


def test_structured_instructions_render_markdown() -> None:
    plain = instructions(purpose=["You route customers."], routine=["Ask one question at a time.", "Be brief."])
    assert plain.render() == (
        "# Purpose\nYou route customers.\n\n# Routine\n1. Ask one question at a time.\n2. Be brief."
    )
    config = create_agent(
        model="test/echo", instructions=instructions.swarm(purpose="You route customers."), handoffs=[BILLING]
    ).configure(AgentContext(id="x"))
    text = config.render_instructions(AgentContext(id="x"))
    assert text is not None and text.startswith("# Role\nYou are one of several agents")
    assert text.endswith(
        "# Agents you can hand the conversation to\n"
        "- **BillingAgent** (`transfer_to_billing_agent`): Handles refunds and invoices."
    )
    back = instructions.supervisor_subagent(purpose="You handle billing.").render([BILLING])
    assert "# Hand back to\n- **BillingAgent**" in back
    assert "# Role\nYou supervise" in instructions.supervisor(purpose="x").render([BILLING])
    listed = create_agent(model="test/echo", instructions=["one", "two"]).configure(AgentContext(id="x"))
    assert listed.render_instructions(AgentContext(id="x")) == "one\ntwo"


@tool
async def set_mood(mood: str, ctx: ToolContext) -> str:
    """Set the conversation's mood."""
    ctx.context["mood"] = mood
    return "ok"


def test_callable_instructions_see_variables_and_the_sessions_context(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    systems: list[str | None] = []

    def model(request: ModelRequest) -> str | ToolCall:
        systems.append(request.system)
        if len(systems) == 1:
            return ToolCall("set_mood", {"mood": "cheerful"}, id="m-1")
        return "done"

    def prompt(ctx: AgentContext) -> str:
        return f"Ticket {ctx.id}, tier {ctx.variables.get('TIER')}, mood {ctx.context.get('mood', 'unknown')}."

    registry = Registry()
    registry.add("desk", create_agent(model=FunctionModel(model), instructions=prompt, tools=[set_mood], variables=[Variable("TIER")]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    asyncio.run(runtime.set_variable("desk", "T-1", "TIER", "gold"))
    admitted = asyncio.run(runtime.prompt("desk", "T-1", "hi"))
    served.until(served.settled(InstanceRef("desk", "T-1"), admitted.record.id))
    assert systems == ["Ticket T-1, tier gold, mood unknown.", "Ticket T-1, tier gold, mood cheerful."]


def test_clone_changes_some_fields_and_inherits_the_rest() -> None:
    copy = BILLING.clone(name="RefundsAgent", description="Refunds only.")
    assert (copy.name, copy.description, copy.handoff_description) == ("RefundsAgent", "Refunds only.", "Handles refunds and invoices.")
    base = create_agent(model="test/echo", instructions="Be kind.", max_turns=3, handoffs=[BILLING])
    other = base.clone(instructions="Be brief.")
    config = other.configure(AgentContext(id="x"))
    assert (config.instructions, config.max_turns, config.handoffs) == ("Be brief.", 3, (BILLING,))
    assert base.configure(AgentContext(id="x")).instructions == "Be kind."
