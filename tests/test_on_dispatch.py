"""Trusted dispatch on both adapters: `on_dispatch(ctx)` runs dispatched input in
application code with `ctx.session.task(...)` children as journaled steps: a crash
between two tasks re-runs neither finished task, an abort ends it, prompts keep the
model path."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import BaseModel

from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status
from agent_runtime.loop.dispatch import DispatchContext, TaskFailed
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import tool
from tests.served import Served, crash_once

ROOT = InstanceRef("proposals", "P-1")


class Quote(BaseModel):
    quote: str
    section: str


def build(backend: Backend, handler: Callable[[DispatchContext], Any], runs: Counter[str]) -> Runtime:
    def research(request: ModelRequest) -> str:
        runs["researcher"] += 1
        try:
            asked = json.loads(last_user_text(request))
        except ValueError:
            return "no topic given"  # not a Quote: a task asking for one fails
        quote = {"quote": f"refunds for {asked['topic']}", "section": "4.2"}
        if any(t.name == "final_result" for t in request.tools):  # the task's `result=` reached the child
            return ToolCall("final_result", quote)
        return json.dumps(quote)

    def write(request: ModelRequest) -> str:
        runs["writer"] += 1
        return f"proposal using: {last_user_text(request)}"

    def coordinator(request: ModelRequest) -> str:
        runs["coordinator-model"] += 1
        return f"model answered: {last_user_text(request)}"

    researcher = define_agent_profile(name="policy_researcher", description="Quotes.", model=FunctionModel(research))
    writer = define_agent_profile(name="proposal_writer", description="Writes.", model=FunctionModel(write))
    registry = Registry()
    registry.add(
        ROOT.agent,
        create_agent(model=FunctionModel(coordinator), subagents=[researcher, writer]),
        on_dispatch=handler,
    )
    return backend.runtime(registry, lease_seconds=0.3)


@pytest.mark.parametrize("crash_between", [False, True], ids=["clean", "crash-between-tasks"])
def test_two_tasks_run_once_each_and_the_return_value_is_the_result(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], crash_between: bool
) -> None:
    runs: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    async def on_dispatch(ctx: DispatchContext) -> Quote:
        runs["handler"] += 1
        found = await ctx.session.task(json.dumps(ctx.input), agent="policy_researcher", result=Quote)
        if crash_between:
            crash_once(crashes, "between")
        draft = await ctx.session.task(found.data.quote, agent="proposal_writer")
        return Quote(quote=draft.text, section=found.data.section)

    runtime = build(backend, on_dispatch, runs)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, {"topic": "shoes"}, dispatch_id="d-1"))
    served.until(served.settled(ROOT, admitted.record.id), crash_ok=True)
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert record.result and record.result["data"] == {"quote": "proposal using: refunds for shoes", "section": "4.2"}
    assert runs["researcher"] == 1 and runs["writer"] == 1, "no finished task ran twice"
    assert runs["coordinator-model"] == 0, "dispatch ran the handler, not a model turn"
    # Replayed: once to start each task, once to finish (and once more after the crash).
    assert runs["handler"] == 3 + crash_between
    assert served.crashes == crash_between
    started = [e for e in asyncio.run(runtime.events_after(ROOT.agent, ROOT.id, after=0, limit=500)).events if e.type == "task_start"]
    assert [e.call_id for e in started] == ["dispatch-1", "dispatch-2"]


def test_a_prompt_keeps_the_model_path(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    runs: Counter[str] = Counter()

    async def on_dispatch(ctx: DispatchContext) -> str:
        raise AssertionError("not for prompts")

    runtime = build(backend, on_dispatch, runs)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "hello"))
    served.until(served.settled(ROOT, admitted.record.id))
    record = served.record(ROOT, admitted.record.id)
    assert record.result and record.result["text"] == "model answered: hello"


def test_a_failed_task_is_an_exception_the_handler_may_catch(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    runs: Counter[str] = Counter()

    async def on_dispatch(ctx: DispatchContext) -> str:
        try:
            await ctx.session.task("x", agent="policy_researcher", result=Quote)  # not JSON: invalid
        except TaskFailed as exc:
            return f"handled: {exc.message}"
        return "unexpected"

    runtime = build(backend, on_dispatch, runs)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, "anything"))
    served.until(served.settled(ROOT, admitted.record.id), crash_ok=True)
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert record.result and record.result["text"].startswith("handled: the subagent policy-researcher failed: invalid_result")


def test_an_abort_ends_a_running_handler(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    runs: Counter[str] = Counter()
    async def on_dispatch(ctx: DispatchContext) -> str:
        runs["handler"] += 1
        for _ in range(200):
            if ctx.signal.aborted:
                raise RuntimeError("stopping: aborted")
            await asyncio.sleep(0.02)
        return "finished anyway"

    runtime = build(backend, on_dispatch, runs)
    runtime.abort_poll_seconds = 0.05
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, {"long": True}))
    import threading

    def abort_soon() -> None:
        import time

        while served.record(ROOT, admitted.record.id).status is not Status.running:
            time.sleep(0.02)
        asyncio.run(runtime.abort(ROOT.agent, ROOT.id))

    thread = threading.Thread(target=abort_soon)
    thread.start()
    served.until(served.settled(ROOT, admitted.record.id))
    thread.join()
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.aborted and runs["handler"] == 1


def test_unknown_subagents_and_unready_arguments_are_clear(backend: Backend) -> None:
    runs: Counter[str] = Counter()

    async def on_dispatch(ctx: DispatchContext) -> str:
        await ctx.session.task("x", agent="nobody")
        return "no"

    runtime = build(backend, on_dispatch, runs)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, 1))
    asyncio.run(runtime.drain(ROOT, deadline=runtime.clock() + 30))
    record = asyncio.run(runtime.submission(ROOT.agent, ROOT.id, admitted.record.id))
    assert record.outcome is Outcome.failed and record.attempts == 1, "a developer's mistake is not retried"
    assert record.error and record.error["type"] == "user_error" and "unknown subagent 'nobody'" in record.error["message"]


@tool
def lookup_section(topic: str) -> str:
    """Find the policy section for a topic."""
    return f"section-for-{topic}"


@tool
def read_policy() -> str:
    """The researcher's own tool."""
    return "policy text"


@pytest.mark.parametrize("mode", ["extend", "replace"])
def test_a_task_gives_its_child_tools_and_a_result_schema_for_that_call(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], mode: str
) -> None:
    offered: list[list[str]] = []

    def research(request: ModelRequest) -> ToolCall:
        offered.append([t.name for t in request.tools])
        results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        if not results:
            return ToolCall("lookup_section", {"topic": "refunds"}, id="l-1")
        return ToolCall("final_result", {"quote": "refunds within 30 days", "section": results[0].content}, id="f-1")

    async def on_dispatch(ctx: DispatchContext) -> Quote:
        out = await ctx.session.task("find it", agent="policy_researcher", result=Quote, tools=[lookup_section], tools_mode=mode)  # type: ignore[arg-type]
        assert isinstance(out.data, Quote)
        return out.data

    researcher = define_agent_profile(
        name="policy_researcher", description="Quotes.", model=FunctionModel(research), tools=[read_policy]
    )
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model="test/echo", subagents=[researcher]), on_dispatch=on_dispatch)
    runtime = backend.runtime(registry, lease_seconds=5)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, {"topic": "refunds"}))
    served.until(served.settled(ROOT, admitted.record.id))
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert record.result and record.result["data"] == {"quote": "refunds within 30 days", "section": "section-for-refunds"}
    own = ["read_policy"] if mode == "extend" else []
    assert offered[0] == [*own, "lookup_section", "final_result"]


def test_a_task_tool_defined_in_a_function_is_refused_at_once(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    @tool
    def local_tool() -> str:
        """Made inside a function: no other process could find it."""
        return ""

    async def on_dispatch(ctx: DispatchContext) -> str:
        await ctx.session.task("find it", agent="policy_researcher", tools=[local_tool])
        return "unreachable"

    runs: Counter[str] = Counter()
    runtime = build(backend, on_dispatch, runs)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.dispatch(ROOT.agent, ROOT.id, "x"))
    served.until(served.settled(ROOT, admitted.record.id))
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.failed and record.attempts == 1
    assert record.error and record.error["type"] == "user_error"
    assert "'local_tool' must be defined at module level" in record.error["message"]
    assert runs["researcher"] == 0
