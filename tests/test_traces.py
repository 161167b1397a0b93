"""Traces: the spans of a run with a tool, a parent and its child, and the trace route.

Spans go to the SDK's in-memory exporter (`tracing.setup.with_exporter`); the route test
keeps them in the instance table on moto, as the local stack does.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_runtime import tracing
from agent_runtime.children import child_ref
from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.models.test import ScriptedModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.testing.backends import FakeClock, memory_backend
from agent_runtime.tools import tool
from agent_runtime.tracing.setup import with_exporter

pytestmark = pytest.mark.asyncio


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(with_exporter(exporter))
    yield exporter
    tracing.reset()


@tool
def lookup_order(order_id: str) -> str:
    """Fetch one order by id."""
    return f"order {order_id}: shipped"


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    named = {s.name: s for s in finished}
    assert len(named) == len(finished), [s.name for s in finished]
    return named


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def own_id(span: ReadableSpan) -> int:
    context = span.get_span_context()
    assert context is not None
    return context.span_id


async def test_a_run_with_a_tool_makes_the_submission_attempt_turn_chat_and_tool_spans(
    spans: InMemorySpanExporter, clock: FakeClock
) -> None:
    model = ScriptedModel([ToolCall("lookup_order", {"order_id": "A1"}, id="call-1"), "It shipped."])
    registry = Registry()
    registry.add("support", create_agent(model=model, tools=[lookup_order]))
    rt = memory_backend().runtime(registry, clock=clock)
    admitted = await rt.prompt("support", "T-1", "where is A1?", session="s1")
    await rt.drain(InstanceRef("support", "T-1"), deadline=clock() + 600)
    assert (await rt.submission("support", "T-1", admitted.record.id)).outcome is Outcome.completed

    finished = spans.get_finished_spans()
    chats = [s for s in finished if s.name == "chat scripted"]
    named = by_name(tuple(s for s in finished if s not in chats))
    assert sorted(named) == ["attempt 1", "execute_tool lookup_order", "invoke_agent support", "turn 1", "turn 2"]
    submission, attempt = named["invoke_agent support"], named["attempt 1"]
    turn1, turn2, tool_span = named["turn 1"], named["turn 2"], named["execute_tool lookup_order"]
    # One trace; the submission is its root, everything else hangs below it.
    assert len({s.context.trace_id for s in named.values() if s.context}) == 1
    assert submission.parent is None
    assert parent_id(attempt) == own_id(submission)
    assert parent_id(turn1) == parent_id(turn2) == own_id(attempt)
    assert parent_id(tool_span) == own_id(turn1)
    assert [parent_id(chat) for chat in chats] == [own_id(turn1), own_id(turn2)]
    for span in [*named.values(), *chats]:  # the instance, the session and the submission on every span
        attributes = dict(span.attributes or {})
        assert attributes["agent_runtime.agent"] == "support"
        assert attributes["agent_runtime.instance.id"] == "T-1"
        assert attributes["agent_runtime.session"] == "s1"
        assert attributes["agent_runtime.submission.id"] == admitted.record.id
    assert dict(submission.attributes or {})["agent_runtime.outcome"] == "completed"
    tool_attributes = dict(tool_span.attributes or {})
    assert (tool_attributes["gen_ai.operation.name"], tool_attributes["gen_ai.tool.name"], tool_attributes["gen_ai.tool.call.id"]) == (
        "execute_tool",
        "lookup_order",
        "call-1",
    )
    # The model calls, by the GenAI conventions.
    first = dict(chats[0].attributes or {})
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.provider.name"] == first["gen_ai.system"] == "test"
    assert first["gen_ai.request.model"] == first["gen_ai.response.model"] == "scripted"
    assert first["gen_ai.response.finish_reasons"] == ("tool_use",)
    assert first["gen_ai.usage.input_tokens"] > 0 and first["gen_ai.usage.output_tokens"] > 0
    assert dict(chats[1].attributes or {})["gen_ai.response.finish_reasons"] == ("end_turn",)


async def test_a_childs_spans_hang_below_the_parents_task_call(spans: InMemorySpanExporter, clock: FakeClock) -> None:
    researcher = define_agent_profile(
        name="policy_researcher", description="Finds policy text.", model=ScriptedModel(["refunds within 30 days"])
    )
    parent_model = ScriptedModel(
        [ToolCall("task", {"agent": "policy_researcher", "prompt": "find the refund policy"}, id="call-t"), "30 days."]
    )
    registry = Registry()
    registry.add("coordinator", create_agent(model=parent_model, subagents=[researcher]))
    rt = memory_backend().runtime(registry, clock=clock)
    root = InstanceRef("coordinator", "T-9")
    admitted = await rt.prompt(root.agent, root.id, "refunds?")
    await rt.drain(root, deadline=clock() + 600)  # runs up to the task call, then waits
    child = InstanceRef("policy-researcher", f"{root.id}~{child_ref(admitted.record.id, 'call-t')}")
    await rt.drain(child, deadline=clock() + 600)
    await rt.drain(root, deadline=clock() + 600)
    assert (await rt.submission(root.agent, root.id, admitted.record.id)).outcome is Outcome.completed

    finished = spans.get_finished_spans()
    of_child = [s for s in finished if dict(s.attributes or {})["agent_runtime.agent"] == "policy-researcher"]
    of_parent = [s for s in finished if s not in of_child]
    (task_call,) = [s for s in of_parent if s.name == "execute_tool task"]
    (child_submission,) = [s for s in of_child if s.name == "invoke_agent policy-researcher"]
    (parent_submission,) = [s for s in of_parent if s.name == "invoke_agent coordinator"]
    assert dict(child_submission.attributes or {})["agent_runtime.instance.id"] == child.id
    # The child's submission is parented by the parent's task call, in the parent's trace.
    assert parent_id(child_submission) == own_id(task_call)
    assert {s.context.trace_id for s in finished if s.context} == {parent_submission.context.trace_id}  # type: ignore[union-attr]
    # Both attempts of the parent (before and after the child) hang below its submission.
    attempts = [s for s in of_parent if s.name.startswith("attempt ")]
    assert len(attempts) == 2 and {parent_id(s) for s in attempts} == {own_id(parent_submission)}
    (child_attempt,) = [s for s in of_child if s.name.startswith("attempt ")]
    assert parent_id(child_attempt) == own_id(child_submission)
