"""The runtime's rules on both adapters: budgets, timeouts, structured results, abort."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from agent_runtime.definition import create_agent
from agent_runtime.errors import (
    AgentNotFound,
    Conflict,
    InvalidInput,
    PayloadTooLarge,
    TransientModelError,
)
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ScriptedModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import ToolContext, tool

pytestmark = pytest.mark.asyncio


def runtime_with(backend: Backend, clock: FakeClock, **agents):
    registry = Registry()
    for name, definition in agents.items():
        registry.add(name.replace("_", "-"), definition)
    return backend.runtime(registry, clock=clock, lease_seconds=30, sleep=clock.sleep)


async def settle(runtime, clock: FakeClock, agent: str, instance_id: str, submission_id: str):
    await runtime.drain(InstanceRef(agent, instance_id), deadline=clock() + 10_000)
    return await runtime.submission(agent, instance_id, submission_id)


async def test_echo_completes_with_usage(backend: Backend, clock: FakeClock) -> None:
    rt = runtime_with(backend, clock, echo=create_agent(model="test/echo"))
    a = await rt.prompt("echo", "u1", "hello there")
    record = await settle(rt, clock, "echo", "u1", a.record.id)
    assert record.outcome is Outcome.completed
    assert record.result and record.result["text"] == "echo: hello there"
    assert record.result["usage"]["requests"] == 1


async def test_transient_errors_retry_within_the_budget(backend: Backend, clock: FakeClock) -> None:
    model = ScriptedModel([TransientModelError("overloaded", status=529), TransientModelError("rate", status=429), "fine"])
    rt = runtime_with(backend, clock, flaky=create_agent(model=model))
    a = await rt.prompt("flaky", "x", "go")
    record = await settle(rt, clock, "flaky", "x", a.record.id)
    assert record.outcome is Outcome.completed and record.attempts == 3
    assert record.result and record.result["text"] == "fine"
    model.assert_done()


async def test_retry_budget_exhaustion_fails_with_the_last_error(backend: Backend, clock: FakeClock) -> None:
    model = ScriptedModel([RuntimeError(f"boom {i}") for i in range(3)])
    rt = runtime_with(backend, clock, broken=create_agent(model=model, durability={"retry": 3}))
    a = await rt.prompt("broken", "x", "go")
    record = await settle(rt, clock, "broken", "x", a.record.id)
    assert record.outcome is Outcome.failed and record.attempts == 3
    assert record.error and record.error["type"] == "retries_exhausted"
    assert "boom 2" in record.error["last_error"]["message"]
    model.assert_done()


async def test_timeout_settles_failed(backend: Backend, clock: FakeClock) -> None:
    def slow(request: ModelRequest) -> ToolCall:
        clock.advance(40)
        return ToolCall("noop", {})

    @tool
    def noop() -> str:
        """Nothing."""
        return "ok"

    rt = runtime_with(backend, clock, slow=create_agent(model=FunctionModel(slow), tools=[noop], durability={"timeout": 100}))
    a = await rt.prompt("slow", "x", "go")
    record = await settle(rt, clock, "slow", "x", a.record.id)
    assert record.outcome is Outcome.failed and record.error and record.error["type"] == "timeout"
    history = [m.message for m in (await rt.history("slow", "x", "default")).messages]
    assert history[-1].role == "user", "open tool calls are closed in history"


async def test_max_turns(backend: Backend, clock: FakeClock) -> None:
    @tool
    def again() -> str:
        """Loop."""
        return "again"

    rt = runtime_with(backend, clock, looper=create_agent(model=FunctionModel(lambda r: ToolCall("again")), tools=[again], max_turns=3))
    a = await rt.prompt("looper", "x", "go")
    record = await settle(rt, clock, "looper", "x", a.record.id)
    assert record.outcome is Outcome.failed and record.error and record.error["type"] == "max_turns"
    assert record.journal.usage.requests == 3


class Ticket(BaseModel):
    priority: int
    summary: str


async def test_structured_result_is_repaired_then_accepted(backend: Backend, clock: FakeClock) -> None:
    model = ScriptedModel(
        [
            "plain text, no tool",
            ToolCall("final_result", {"priority": "high", "summary": "x"}),
            ToolCall("final_result", {"priority": 2, "summary": "printer on fire"}),
        ]
    )
    rt = runtime_with(backend, clock, triage=create_agent(model=model, result=Ticket))
    a = await rt.prompt("triage", "t", "triage this")
    record = await settle(rt, clock, "triage", "t", a.record.id)
    assert record.outcome is Outcome.completed
    assert record.result and record.result["data"] == {"priority": 2, "summary": "printer on fire"}
    assert model.requests[0].tool_choice == "required"
    assert any(t.name == "final_result" for t in model.requests[0].tools)
    assert "priority" in model.requests[2].messages[-1].parts[0].content  # type: ignore[union-attr]


async def test_structured_result_gives_up_after_bounded_repairs(backend: Backend, clock: FakeClock) -> None:
    model = FunctionModel(lambda r: ToolCall("final_result", {"priority": "never"}))
    rt = runtime_with(backend, clock, triage=create_agent(model=model, result=Ticket))
    a = await rt.prompt("triage", "t", "go")
    record = await settle(rt, clock, "triage", "t", a.record.id)
    assert record.outcome is Outcome.failed and record.error and record.error["type"] == "invalid_result"
    assert len(model.requests) == 4


async def test_bad_tool_arguments_go_back_to_the_model(backend: Backend, clock: FakeClock) -> None:
    @tool
    def square(n: int) -> int:
        """Square a number."""
        return n * n

    model = ScriptedModel([ToolCall("square", {"n": "seven"}), ToolCall("nope", {}), ToolCall("square", {"n": 7}), "49"])
    rt = runtime_with(backend, clock, calc=create_agent(model=model, tools=[square]))
    a = await rt.prompt("calc", "c", "7^2")
    record = await settle(rt, clock, "calc", "c", a.record.id)
    assert record.outcome is Outcome.completed
    results = [m.messages[-1].parts[0] for m in model.requests[1:]]
    assert results[0].is_error and "invalid arguments" in results[0].content  # type: ignore[union-attr]
    assert results[1].is_error and "unknown tool" in results[1].content  # type: ignore[union-attr]
    assert results[2].content == "49"  # type: ignore[union-attr]


async def test_tool_context_kv_and_address(backend: Backend, clock: FakeClock) -> None:
    seen: list[tuple[str, str]] = []

    @tool
    async def remember(note: str, ctx: ToolContext) -> str:
        """Keep a note."""
        seen.append((ctx.instance.key, ctx.session))
        notes = await ctx.kv.get("notes") or []
        await ctx.kv.put("notes", [*notes, note])
        return "kept"

    model = FunctionModel(lambda r: "ok" if r.messages[-1].parts[0].type == "tool_result" else ToolCall("remember", {"note": "n"}))
    rt = runtime_with(backend, clock, notes=create_agent(model=model, tools=[remember]))
    for _ in range(2):
        a = await rt.prompt("notes", "n1", "remember", session="work")
        await settle(rt, clock, "notes", "n1", a.record.id)
    assert seen == [("notes/n1", "work")] * 2
    assert await backend.stores.kv.get(InstanceRef("notes", "n1"), "notes") == ["n", "n"]


async def test_abort_running_and_queued(backend: Backend, clock: FakeClock) -> None:
    rt = runtime_with(backend, clock, echo=create_agent(model="test/echo"))
    first = await rt.prompt("echo", "a", "one")
    second = await rt.prompt("echo", "a", "two")
    claim = await backend.stores.attempts.claim_head(InstanceRef("echo", "a"), attempt_id="x", now=clock(), lease_seconds=5)
    assert claim.record and claim.record.id == first.record.id
    only_running = await rt.abort("echo", "a")
    assert [r.id for r in only_running] == [first.record.id]
    assert (await rt.submission("echo", "a", second.record.id)).status is Status.queued
    aborted = await rt.abort("echo", "a", queued=True)
    assert [r.id for r in aborted] == [first.record.id, second.record.id]
    clock.advance(6)  # the claimed attempt died; the next worker settles it aborted
    await rt.drain(InstanceRef("echo", "a"), deadline=clock() + 100)
    assert (await rt.submission("echo", "a", first.record.id)).outcome is Outcome.aborted
    assert (await rt.submission("echo", "a", second.record.id)).outcome is Outcome.aborted


async def test_dispatch_receipts(backend: Backend, clock: FakeClock) -> None:
    rt = runtime_with(backend, clock, echo=create_agent(model="test/echo"))
    first = await rt.dispatch("echo", "d", {"ticket": 1}, dispatch_id="evt-1")
    again = await rt.dispatch("echo", "d", {"ticket": 1}, dispatch_id="evt-1")
    assert again.replayed and again.record.id == first.record.id and again.record.kind == "dispatch"
    with pytest.raises(Conflict):
        await rt.dispatch("echo", "d", {"ticket": 2}, dispatch_id="evt-1")
    record = await settle(rt, clock, "echo", "d", first.record.id)
    assert record.result and record.result["text"] == 'echo: {"ticket": 1}'


async def test_bad_input_is_refused_with_typed_errors(backend: Backend, clock: FakeClock) -> None:
    rt = runtime_with(backend, clock, echo=create_agent(model="test/echo"))
    with pytest.raises(AgentNotFound):
        await rt.prompt("missing", "x", "hi")
    for name, ident in [("Echo", "x"), ("echo", "a/b"), ("echo", "x" * 80), ("e" * 49, "x"), ("echo", "")]:
        with pytest.raises(InvalidInput):
            await rt.prompt(name, ident, "hi")
    with pytest.raises(InvalidInput):
        await rt.prompt("echo", "x", "hi", session="a#b")
    with pytest.raises(InvalidInput):
        await rt.dispatch("echo", "x", {1, 2})
    with pytest.raises(InvalidInput):
        await rt.dispatch("echo", "x", float("nan"))
    with pytest.raises(PayloadTooLarge):
        await rt.prompt("echo", "x", "x" * 1_000_001)
    with pytest.raises(InvalidInput):
        await rt.prompt("echo", "x", "hi", idempotency_key="has space")
    assert await backend.stores.ledger.list_submissions(InstanceRef("echo", "x")) == []


async def test_abort_during_the_final_model_call_wins(backend: Backend, clock: FakeClock) -> None:
    holder: dict[str, object] = {}

    async def answer(request: ModelRequest) -> str:
        rt = holder["rt"]
        await rt.abort("talker", "x")  # type: ignore[attr-defined]
        return "a complete answer"

    rt = runtime_with(backend, clock, talker=create_agent(model=FunctionModel(answer)))
    holder["rt"] = rt
    a = await rt.prompt("talker", "x", "go")
    record = await settle(rt, clock, "talker", "x", a.record.id)
    assert record.outcome is Outcome.aborted


async def test_bad_history_cursor_is_invalid_input(backend: Backend, clock: FakeClock) -> None:
    rt = runtime_with(backend, clock, echo=create_agent(model="test/echo"))
    with pytest.raises(InvalidInput):
        await rt.history("echo", "x", "default", cursor="nope")


async def test_an_abort_between_tool_calls_keeps_recorded_results_in_history(backend: Backend, clock: FakeClock) -> None:
    holder: dict[str, Any] = {}

    @tool
    def first() -> str:
        """Succeeds."""
        return "first done"

    @tool
    async def second() -> str:
        """Asks for the abort while it runs."""
        await holder["rt"].abort("tools", "t")
        return "second done"

    model = ScriptedModel([[ToolCall("first"), ToolCall("second"), ToolCall("first")]])
    rt = runtime_with(backend, clock, tools=create_agent(model=model, tools=[first, second]))
    holder["rt"] = rt
    admitted = await rt.prompt("tools", "t", "go")
    record = await settle(rt, clock, "tools", "t", admitted.record.id)
    assert record.outcome is Outcome.aborted
    page = await rt.history("tools", "t", "default")
    results = [p for m in page.messages for p in m.message.parts if p.type == "tool_result"]
    # The tool that asked for the abort finished: its result stands, though the abort
    # kept the store from recording it; the call after it never ran.
    assert [(r.name, r.status) for r in results] == [("first", "ok"), ("second", "ok"), ("first", "interrupted")]
    assert [r.content for r in results[:2]] == ["first done", "second done"]
    assert "not run" in results[2].content


async def test_a_tool_that_takes_no_context_costs_no_read_of_the_sessions_state(backend: Backend, clock: FakeClock) -> None:
    reads: list[str] = []
    original = backend.stores.sessions.get

    async def counted(instance: InstanceRef, session: str) -> Any:
        reads.append(session)
        return await original(instance, session)

    backend.stores.sessions.get = counted  # type: ignore[method-assign]

    @tool
    async def weather(city: str) -> str:
        """The weather of a city."""
        return f"sunny in {city}"

    @tool
    async def remember(ctx: ToolContext) -> str:
        """Remember that the weather was asked."""
        ctx.context["asked"] = True
        return "noted"

    model = ScriptedModel([ToolCall("weather", {"city": "Paris"}), "sunny", ToolCall("remember"), "noted"])
    rt = runtime_with(backend, clock, desk=create_agent(model=model, tools=[weather, remember]))
    first = await rt.prompt("desk", "x", "weather?")
    assert (await settle(rt, clock, "desk", "x", first.record.id)).outcome is Outcome.completed
    assert reads == []  # the plain tool could not have seen the session's context
    second = await rt.prompt("desk", "x", "remember it")
    assert (await settle(rt, clock, "desk", "x", second.record.id)).outcome is Outcome.completed
    assert reads == ["default"]
    assert (await original(InstanceRef("desk", "x"), "default")).context == {"asked": True}
