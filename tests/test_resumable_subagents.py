"""Resumable subagents on both adapters: `subagent_create` starts a child that lives on,
`subagent_message` continues its session through its FIFO, `max_instances` bounds them,
and a child talks back implicitly (each finished message) or explicitly (only through
`ctx.notify_parent`), blocking or not; a notice made again after a crash is admitted once."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.definition import Resumable, create_agent, define_agent_profile, subagent
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolContext, tool
from tests.served import Served, crash_once

ROOT = InstanceRef("coordinator", "T-7")
MONITOR = "inbox-monitor"


def results_in(request: ModelRequest) -> list[ToolResultPart]:
    return [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]


def coordinator(requests: list[ModelRequest]) -> FunctionModel:
    """'create [n]' makes n monitors, 'message <ref> <text>' talks to one, results are echoed."""

    def respond(request: ModelRequest) -> str | ToolCall | list[str | ToolCall]:
        requests.append(request)
        results = results_in(request)
        if results:
            return " | ".join(r.content for r in results)
        text = last_user_text(request)
        if text.startswith("create"):
            count = int(text.split()[1]) if " " in text else 1
            return [
                ToolCall("subagent_create", {"agent": "inbox_monitor", "prompt": f"watch box {n}"}, id=f"c-{n}")
                for n in range(count)
            ]
        if text.startswith("message "):
            _, ref, message = text.split(" ", 2)
            return ToolCall("subagent_message", {"ref": ref, "message": message}, id=f"m-{len(requests)}")
        return f"noted: {text}"

    return FunctionModel(respond)


def monitor_model(seen: list[list[str]]) -> FunctionModel:
    """Answers with every user message of its session so far: proof that it remembers."""

    def respond(request: ModelRequest) -> str:
        users = [m.text or "" for m in request.messages if m.role == "user" and not m.synthetic]
        seen.append(users)
        return f"monitor heard: {' / '.join(users)}"

    return FunctionModel(respond)


def build(backend: Backend, monitor: Any, requests: list[ModelRequest], **options: Any) -> Runtime:
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=coordinator(requests), subagents=[monitor]))
    return backend.runtime(registry, lease_seconds=options.pop("lease_seconds", 5), **options)


def submissions(runtime: Runtime, instance: InstanceRef) -> list[Any]:
    return asyncio.run(runtime.stores.ledger.list_submissions(instance))


def settle_all(served: Served, runtime: Runtime, *instances: InstanceRef, crash_ok: bool = False) -> None:
    def done() -> bool:
        return all(s.settled for i in instances for s in submissions(runtime, i))

    served.until(done, crash_ok=crash_ok)
    served.until(served.idle, crash_ok=crash_ok)


def the_child(runtime: Runtime) -> InstanceRef:
    children = asyncio.run(runtime.list_children(ROOT.agent, ROOT.id))
    assert len(children) == 1
    return children[0][0].child


def test_a_resumable_child_keeps_its_session_across_messages(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    seen: list[list[str]] = []
    requests: list[ModelRequest] = []
    profile = define_agent_profile(name="inbox_monitor", description="Watches the inbox.", model=monitor_model(seen))
    runtime = build(backend, subagent(profile, blocking=False, resumable=Resumable(max_instances=2)), requests)
    served = serve(backend, runtime)

    first = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "create"))
    served.until(served.settled(ROOT, first.record.id))
    done = served.record(ROOT, first.record.id)
    child = the_child(runtime)
    ref = child.id.rsplit("~", 1)[1]
    assert done.result and done.result["text"].startswith(f"created inbox_monitor with ref {ref}; it runs on its own")
    assert [t.name for t in requests[0].tools] == ["subagent_create", "subagent_message"], "no `task`: all are resumable"
    settle_all(served, runtime, ROOT, child)

    second = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, f"message {ref} any news?"))
    served.until(served.settled(ROOT, second.record.id))
    settle_all(served, runtime, ROOT, child)

    assert seen == [["watch box 0"], ["watch box 0", "any news?"]], "the second message continues the child's session"
    child_subs = submissions(runtime, child)
    assert [s.kind for s in child_subs] == ["task", "task"]
    kinds = [s.kind for s in submissions(runtime, ROOT)]
    assert kinds.count("child_report") == 2, "implicit: each finished message is reported"
    history = [m.message.text or "" for m in asyncio.run(runtime.history(ROOT.agent, ROOT.id, "default")).messages]
    assert any("monitor heard: watch box 0 / any news?" in t for t in history)
    listed = asyncio.run(runtime.list_children(ROOT.agent, ROOT.id))
    entry, latest = listed[0]
    assert entry.resumable and entry.submission_id == child_subs[0].id
    assert latest is not None and latest.id == child_subs[1].id, "the listing shows the latest message's submission"


def test_max_instances_and_unknown_refs_are_tool_errors(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    requests: list[ModelRequest] = []
    profile = define_agent_profile(name="inbox_monitor", description="Watches.", model=monitor_model([]))
    runtime = build(backend, subagent(profile, blocking=False, resumable=Resumable(max_instances=2)), requests)
    served = serve(backend, runtime)

    first = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "create 3"))
    served.until(served.settled(ROOT, first.record.id))
    results = results_in(requests[-1])
    assert [r.is_error for r in results] == [False, False, True]
    refs = [e.ref for e, _ in asyncio.run(runtime.list_children(ROOT.agent, ROOT.id))]
    assert len(refs) == 2
    assert results[2].content == (
        f"inbox_monitor already has 2 of at most 2 instances (refs: {', '.join(refs)}); "
        "send one of them a message with subagent_message instead"
    )
    second = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "message nosuchref hello"))
    served.until(served.settled(ROOT, second.record.id))
    assert results_in(requests[-1])[0].content == "no subagent with ref 'nosuchref': create one with subagent_create"


def test_an_explicit_child_talks_back_only_through_notify_parent(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    crashes: Counter[str] = Counter()
    runs: Counter[str] = Counter()

    @tool(idempotent=True)
    async def tell_parent(text: str, ctx: ToolContext) -> str:
        """Tell the coordinator something."""
        runs["tool"] += 1
        await ctx.notify_parent(text)
        crash_once(crashes, "after-notice")  # the tool runs again: its notice is admitted once
        return "sent"

    def child(request: ModelRequest) -> str | ToolCall:
        runs["child-model"] += 1
        if results_in(request):
            return "done watching"  # explicit: this answer is not reported
        return ToolCall("tell_parent", {"text": "found 2 leaked keys"}, id="n-1")

    profile = define_agent_profile(name="inbox_monitor", description="Watches.", model=FunctionModel(child), tools=[tell_parent])
    watcher = subagent(profile, blocking=False, resumable=Resumable(parent_communication="explicit"))
    requests: list[ModelRequest] = []
    runtime = build(backend, watcher, requests, lease_seconds=0.3)
    served = serve(backend, runtime)
    asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "create"))
    served.until(lambda: bool(asyncio.run(runtime.list_children(ROOT.agent, ROOT.id))))
    child_instance = the_child(runtime)
    settle_all(served, runtime, ROOT, child_instance, crash_ok=True)

    assert served.crashes == 1 and runs["tool"] == 2
    reports = [s for s in submissions(runtime, ROOT) if s.kind == "child_report"]
    assert [r.payload["text"] for r in reports] == ["found 2 leaked keys"], "one notice, no completion report"
    history = [m.message.text or "" for m in asyncio.run(runtime.history(ROOT.agent, ROOT.id, "default")).messages]
    assert f"[subagent {child_instance.key} writes] found 2 leaked keys" in history
    assert [s.outcome for s in submissions(runtime, child_instance)] == [Outcome.completed]


def test_a_blocking_resumable_child_answers_each_message(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    seen: list[list[str]] = []
    requests: list[ModelRequest] = []
    profile = define_agent_profile(name="inbox_monitor", description="Watches.", model=monitor_model(seen))
    runtime = build(backend, subagent(profile, resumable=Resumable()), requests)
    served = serve(backend, runtime)

    first = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "create"))
    served.until(served.settled(ROOT, first.record.id))
    child = the_child(runtime)
    ref = child.id.rsplit("~", 1)[1]
    done = served.record(ROOT, first.record.id)
    assert done.result and done.result["text"] == f"[{MONITOR} ref {ref}] monitor heard: watch box 0"
    second = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, f"message {ref} and now?"))
    served.until(served.settled(ROOT, second.record.id))
    again = served.record(ROOT, second.record.id)
    assert again.result and again.result["text"] == f"[{MONITOR} ref {ref}] monitor heard: watch box 0 / and now?"
    assert not any(s.kind == "child_report" for s in submissions(runtime, ROOT)), "blocking: answers are results"


def test_notify_parent_outside_a_subagent_is_a_tool_error(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    @tool
    async def shout(ctx: ToolContext) -> str:
        """Try to reach a parent."""
        await ctx.notify_parent("hello?")
        return "sent"

    seen: list[ToolResultPart] = []

    def model(request: ModelRequest) -> str | ToolCall:
        results = results_in(request)
        if results:
            seen.extend(results)
            return "ok"
        return ToolCall("shout", {}, id="s-1")

    registry = Registry()
    registry.add("loner", create_agent(model=FunctionModel(model), tools=[shout]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt("loner", "L-1", "go"))
    served.until(served.settled(InstanceRef("loner", "L-1"), admitted.record.id))
    assert seen[0].is_error
    assert seen[0].content == "notify_parent: this agent is not running as a subagent, so it has no parent"


def test_resumable_definitions_are_checked() -> None:
    profile = define_agent_profile(name="inbox_monitor", description="Watches.")
    with pytest.raises(DefinitionError, match="explicit parent communication needs blocking=False"):
        subagent(profile, resumable=Resumable(parent_communication="explicit"))
    with pytest.raises(DefinitionError, match="max_instances"):
        Resumable(max_instances=0)
    with pytest.raises(DefinitionError, match="parent_communication"):
        Resumable(parent_communication="loud")  # type: ignore[arg-type]
    with pytest.raises(DefinitionError, match="reserved"):

        @tool
        def subagent_create() -> str:
            """Not allowed."""
            return ""

        create_agent(model="test/echo", tools=[subagent_create])
