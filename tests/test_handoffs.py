"""Handoffs on both adapters: `transfer_to_<snake name>` moves the session to another agent
within the submission; the new owner answers, takes the session's later prompts, may hand
it back; the owner and the session's context survive a crash after the transfer without
the transfer being repeated; bad handoff definitions are refused."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.definition import AgentProfile, create_agent, define_agent_profile
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Phase, SubmissionRecord
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolContext, tool
from tests.served import Served, crash_once

INST = InstanceRef("front-desk", "C-9")


def results_in(request: ModelRequest) -> list[ToolResultPart]:
    return [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]


@tool
async def note_tier(tier: str, ctx: ToolContext) -> str:
    """Remember the customer's tier for whoever handles them next."""
    ctx.context["tier"] = tier
    return "noted"


@tool
async def read_tier(ctx: ToolContext) -> str:
    """The customer's tier, as noted."""
    return str(ctx.context.get("tier"))


def agents(calls: Counter[str]) -> tuple[AgentProfile, AgentProfile]:
    def triage(request: ModelRequest) -> str | ToolCall:
        calls["triage"] += 1
        results = results_in(request)
        names = [r.name for r in results]
        if "note_tier" in names:
            return ToolCall("transfer_to_billing_agent", {}, id=f"t-{calls['triage']}")
        if "transfer_to_billing_agent" in names:
            return "unexpected: triage spoke after the transfer"
        if "transfer_to_triage_agent" in names:
            return "triage here again"
        return ToolCall("note_tier", {"tier": "gold"}, id=f"n-{calls['triage']}")

    def billing(request: ModelRequest) -> str | ToolCall:
        calls["billing"] += 1
        results = results_in(request)
        if results and results[0].name == "read_tier":
            return f"billing here (tier {results[0].content}): {last_user_text(request)}"
        if last_user_text(request) == "back to triage please":
            return ToolCall("transfer_to_triage_agent", {}, id=f"b-{calls['billing']}")
        if results and results[0].name == "transfer_to_triage_agent":
            return "unexpected: billing spoke after handing back"
        return ToolCall("read_tier", {}, id=f"r-{calls['billing']}")

    triage_profile: AgentProfile
    billing_profile = define_agent_profile(
        name="BillingAgent",
        description="Billing questions.",
        handoff_description="Handles refunds and invoices.",
        model=FunctionModel(billing),
        tools=[read_tier],
        handoffs=[lambda: triage_profile],
    )
    triage_profile = define_agent_profile(
        name="TriageAgent",
        description="Routes customers.",
        model=FunctionModel(triage),
        tools=[note_tier],
        handoffs=[billing_profile],
    )
    return triage_profile, billing_profile


def build(backend: Backend, calls: Counter[str], **options: Any) -> Runtime:
    triage, _ = agents(calls)
    registry = Registry()
    registry.add(INST.agent, create_agent(profile=triage))
    return backend.runtime(registry, **options)


def ask(runtime: Runtime, served: Served, text: str, *, crash_ok: bool = False) -> SubmissionRecord:
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, text))
    served.until(served.settled(INST, admitted.record.id), crash_ok=crash_ok)
    return served.record(INST, admitted.record.id)


def test_a_handoff_moves_the_session_and_the_next_prompt_goes_to_the_new_owner(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    calls: Counter[str] = Counter()
    runtime = build(backend, calls)
    served = serve(backend, runtime)

    first = ask(runtime, served, "I was charged twice")
    assert first.outcome is Outcome.completed, first.error
    assert first.result and first.result["text"] == "billing here (tier gold): I was charged twice"
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    handoffs = [(e.from_agent, e.to_agent) for e in events if e.type == "handoff"]
    assert handoffs == [("TriageAgent", "BillingAgent")]

    second = ask(runtime, served, "and the invoice?")
    assert second.result and second.result["text"] == "billing here (tier gold): and the invoice?"
    assert calls == Counter(triage=2, billing=4), "the second prompt went straight to billing"
    state = asyncio.run(runtime.stores.sessions.get(INST, "default"))
    assert state.owner == "BillingAgent" and state.context == {"tier": "gold"}

    back = ask(runtime, served, "back to triage please")
    assert back.result and back.result["text"] == "triage here again"
    assert asyncio.run(runtime.stores.sessions.get(INST, "default")).owner is None, "handed back to the agent itself"
    history = asyncio.run(runtime.history(INST.agent, INST.id, "default")).messages
    transfers = [p.name for m in history for p in m.message.parts if isinstance(p, ToolResultPart) and p.name.startswith("transfer_to_")]
    assert transfers == ["transfer_to_billing_agent", "transfer_to_triage_agent"]


def test_a_crash_after_the_transfer_resumes_with_the_new_owner(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    calls: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    def checkpoint(phase: Phase, record: SubmissionRecord) -> None:
        if phase is Phase.tool_result:
            crashes["results"] += 1
            if crashes["results"] == 2:  # note_tier's, then the transfer's: crash right after it
                crash_once(crashes, "after-transfer")

    runtime = build(backend, calls, checkpoint=checkpoint, lease_seconds=0.3)
    served = serve(backend, runtime)
    done = ask(runtime, served, "refund please", crash_ok=True)
    assert served.crashes == 1
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == "billing here (tier gold): refund please"
    assert calls["triage"] == 2, "the transfer was not asked for again"
    assert asyncio.run(runtime.stores.sessions.get(INST, "default")).owner == "BillingAgent"


def test_bad_handoffs_are_definition_errors() -> None:
    target = define_agent_profile(name="BillingAgent", description="Billing.")
    twin = define_agent_profile(name="billing_agent", description="Billing again.")
    with pytest.raises(DefinitionError, match="duplicate handoff name"):
        create_agent(model="test/echo", handoffs=[target, target])
    with pytest.raises(DefinitionError, match="not a profile"):
        create_agent(model="test/echo", handoffs=["BillingAgent"])
    registry = Registry()
    with pytest.raises(DefinitionError, match="transfer_to_billing_agent"):
        registry.add("clash", create_agent(model="test/echo", handoffs=[target, twin]))
    with pytest.raises(DefinitionError, match="returned str"):
        registry.add("lazy", create_agent(model="test/echo", handoffs=[lambda: "nobody"]))
