"""Two-sided agents on both adapters: a worker and a reviewer take turns; the reviewer
approves on its second turn (session_stop with a message and attachments), a worker
fails the session, turns run out, a crash between the sides resumes with the right side,
and a dual_ai agent as a blocking subagent hands its stop message to its parent."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.dual import LifecycleTool, Side
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Phase, SubmissionRecord
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolContext, tool
from tests.served import Served, crash_once

INST = InstanceRef("asset-maker", "A-1")


@tool
async def save_draft(text: str, ctx: ToolContext) -> str:
    """Save the asset's draft."""
    assert ctx.files is not None
    await ctx.files.write("/asset/draft.md", text, media_type="text/markdown")
    return "saved /asset/draft.md"


def sides(calls: Counter[str], seen: dict[str, list[ModelRequest]], *, reviewer_fails: bool = False, approve_on: int = 2) -> dict[str, Any]:
    def worker(request: ModelRequest) -> str | ToolCall:
        calls["worker"] += 1
        seen.setdefault("worker", []).append(request)
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if results:
            return f"draft v{calls['worker']} ready"
        return ToolCall("save_draft", {"text": f"draft {calls['worker']}"}, id=f"s-{calls['worker']}")

    def reviewer(request: ModelRequest) -> str | ToolCall:
        calls["reviewer"] += 1
        seen.setdefault("reviewer", []).append(request)
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if reviewer_fails:
            return ToolCall("reject_asset", {"summary": "cannot be saved"}, id=f"f-{calls['reviewer']}")
        if results:  # its status is set: this turn ends with its feedback
            return "make it shorter"
        if f"draft v{2 * approve_on} ready" in (request.messages[-1].text or ""):
            return ToolCall("approve_asset", {"summary": "approved: draft 2", "attachments": ["/asset/draft.md"]}, id="a-1")
        return ToolCall("asset_status", {"status": "needs work"}, id=f"st-{calls['reviewer']}")

    return dict(
        kind="dual_ai",
        max_session_turns=6,
        side_a=Side(label="Worker", instructions="Make the asset.", model=FunctionModel(worker), tools=[save_draft],
                    session_fail=LifecycleTool("fail_asset", message_property="summary")),
        side_b=Side(label="Reviewer", instructions="Review it.", model=FunctionModel(reviewer),
                    session_stop=LifecycleTool("approve_asset", message_property="summary", attachments_property="attachments"),
                    session_status=LifecycleTool("asset_status", message_property="status"),
                    session_fail=LifecycleTool("reject_asset", message_property="summary")),
    )  # fmt: skip


def ask(runtime: Runtime, served: Served, text: str, *, crash_ok: bool = False) -> SubmissionRecord:
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, text))
    served.until(served.settled(INST, admitted.record.id), crash_ok=crash_ok)
    return served.record(INST, admitted.record.id)


def build(backend: Backend, fields: dict[str, Any], **options: Any) -> Runtime:
    registry = Registry()
    registry.add(INST.agent, create_agent(**fields))
    return backend.runtime(registry, **options)


def test_the_reviewer_approves_on_its_second_turn(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    calls: Counter[str] = Counter()
    seen: dict[str, list[ModelRequest]] = {}
    runtime = build(backend, sides(calls, seen))
    served = serve(backend, runtime)
    done = ask(runtime, served, "make a banner")
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == "approved: draft 2"
    assert done.result["data"] == {"message": "approved: draft 2", "attachments": ["/asset/draft.md"]}
    # Each side sees the other's turns as labelled user messages, never the other's tool calls.
    first_review = seen["reviewer"][0].messages
    assert [m.role for m in first_review] == ["user"] and first_review[0].text == "make a banner[Worker] draft v2 ready"
    second_worker = seen["worker"][2].messages
    assert [m.role for m in second_worker] == ["user", "assistant", "user", "assistant", "user"]
    assert "[Reviewer] make it shorter" in (second_worker[-1].text or "")
    assert [t.name for t in seen["reviewer"][0].tools] == ["approve_asset", "reject_asset", "asset_status"]
    state = asyncio.run(runtime.stores.sessions.get(INST, "default"))
    assert state.status == "needs work" and state.exchanges == 3
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    assert [(e.side, e.status) for e in events if e.type == "session_status"] == [("Reviewer", "needs work")]


def test_a_failed_session_and_one_that_runs_out_of_turns(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    calls: Counter[str] = Counter()
    runtime = build(backend, sides(calls, {}, reviewer_fails=True))
    served = serve(backend, runtime)
    failed = ask(runtime, served, "make a banner")
    assert failed.outcome is Outcome.failed and failed.error == {"type": "session_failed", "message": "cannot be saved"}

    calls2: Counter[str] = Counter()
    endless = build(backend, {**sides(calls2, {}, approve_on=99), "max_session_turns": 4})
    served2 = serve(backend, endless)
    out = ask(endless, served2, "make another")
    assert out.outcome is Outcome.failed and out.error and out.error["type"] == "max_session_turns"
    assert asyncio.run(endless.stores.sessions.get(INST, "default")).exchanges == 4


def test_a_crash_between_the_sides_resumes_with_the_right_side(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    calls: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    def checkpoint(phase: Phase, record: SubmissionRecord) -> None:
        if phase is Phase.committed:
            crashes["commits"] += 1
            if crashes["commits"] == 2:  # the worker's turn has just been handed to the reviewer
                crash_once(crashes, "between-sides")

    runtime = build(backend, sides(calls, {}), checkpoint=checkpoint, lease_seconds=0.3)
    served = serve(backend, runtime)
    done = ask(runtime, served, "make a banner", crash_ok=True)
    assert served.crashes == 1
    assert done.outcome is Outcome.completed and done.result and done.result["text"] == "approved: draft 2"
    assert calls == Counter(worker=4, reviewer=3), "no side spoke twice for one turn"


def test_a_dual_ai_subagent_returns_its_stop_message(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    calls: Counter[str] = Counter()
    maker = define_agent_profile(name="asset_maker", description="Makes assets.", **sides(calls, {}))

    def parent(request: ModelRequest) -> str | ToolCall:
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if results:
            return f"got: {results[0].content}"
        return ToolCall("task", {"agent": "asset_maker", "prompt": "a banner"}, id="t-1")

    registry = Registry()
    registry.add("studio", create_agent(model=FunctionModel(parent), subagents=[maker]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    studio = InstanceRef("studio", "S-1")
    admitted = asyncio.run(runtime.prompt(studio.agent, studio.id, "make one"))
    served.until(served.settled(studio, admitted.record.id))
    done = served.record(studio, admitted.record.id)
    assert done.outcome is Outcome.completed, done.error
    assert done.result and json.loads(done.result["text"].removeprefix("got: ")) == {
        "message": "approved: draft 2",
        "attachments": ["/asset/draft.md"],
    }


def test_dual_ai_definitions_are_checked() -> None:
    a = Side(label="A", model="test/echo")
    with pytest.raises(DefinitionError, match="side_b"):
        create_agent(kind="dual_ai", max_session_turns=4, side_a=a)
    with pytest.raises(DefinitionError, match="max_session_turns"):
        create_agent(kind="dual_ai", side_a=a, side_b=a)
    clash = Side(label="B", model="test/echo", tools=[save_draft], session_stop="save_draft")
    with pytest.raises(DefinitionError, match="clash"):
        create_agent(kind="dual_ai", max_session_turns=4, side_a=a, side_b=clash)
