"""Subagents on both adapters: the `task` built-in, children as instances, blocking
children (in process on memory; on moto, moto's Step Functions executing the real state
machine), their errors as tool errors, the depth cap and cycles, and crashes on the
child's path with counts proving no child ran twice.

Wake-ups go through the worker Lambda's record handler, as deployed: on moto that
includes the state machine's wake-up of the child, which carries its task token.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.adapters.aws.stepfunctions import execution_name
from agent_runtime.adapters.memory import MemoryWakeUps
from agent_runtime.children import MAX_DEPTH, ChildLink, child_ref
from agent_runtime.definition import AgentProfile, create_agent, define_agent_profile
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status, SubmissionRecord
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import tool
from tests.served import Served, crash_once

ROOT = InstanceRef("coordinator", "T-42")


def results_in(request: ModelRequest) -> list[ToolResultPart]:
    last = request.messages[-1]
    return [p for p in last.parts if isinstance(p, ToolResultPart)]


def delegator(label: str, calls: Counter[str], task: Callable[[ModelRequest], dict[str, Any]] | None = None):
    """A model that delegates once through `task` (when it has it), then answers with
    what came back; without `task`, it answers at once."""

    def respond(request: ModelRequest) -> str | ToolCall:
        calls[label] += 1
        results = results_in(request)
        if results:
            return f"{label} got: {results[0].content}"
        names = [t.name for t in request.tools]
        if "task" in names:
            if task is not None:
                return ToolCall("task", task(request), id=f"call-{label}")
            agent = request.tools[names.index("task")].parameters["properties"]["agent"]["enum"][0]
            return ToolCall("task", {"agent": agent, "prompt": f"help {label} with: {last_user_text(request)}"}, id=f"call-{label}")
        return f"{label} answers: {last_user_text(request)}"

    return FunctionModel(respond)


def chain(depth: int, calls: Counter[str]) -> AgentProfile:
    """Profiles level1 -> level2 -> ... -> level<depth>, each delegating to the next."""
    below: AgentProfile | None = None
    for n in range(depth, 0, -1):
        below = define_agent_profile(
            name=f"level{n}",
            description=f"Level {n} of the chain.",
            model=delegator(f"level{n}", calls),
            subagents=[below] if below else None,
        )
    assert below is not None
    return below


def coordinator_runtime(backend: Backend, calls: Counter[str], researcher: AgentProfile, **options: Any) -> Runtime:
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=delegator("coordinator", calls), subagents=[researcher]))
    return backend.runtime(registry, lease_seconds=5, **options)


def researcher_profile(calls: Counter[str], *, tools: list[Any] | None = None) -> AgentProfile:
    return define_agent_profile(
        name="policy_researcher",
        description="Finds policy text and quotes it.",
        model=delegator("researcher", calls),
        tools=tools,
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def events_of(runtime: Runtime, instance: InstanceRef) -> list[Any]:
    return asyncio.run(runtime.events_after(instance.agent, instance.id, after=0, limit=1000)).events


def test_a_blocking_child_round_trip(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    calls: Counter[str] = Counter()
    runtime = coordinator_runtime(backend, calls, researcher_profile(calls))
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "is the refund allowed?"))
    first = asyncio.run(runtime.submission(ROOT.agent, ROOT.id, admitted.record.id))

    # The parent's first wake-up runs its turn up to the task call: then it waits.
    served.until(lambda: served.record(ROOT, first.id).status is Status.waiting)
    child = InstanceRef("policy-researcher", f"{ROOT.id}~{child_ref(first.id, 'call-coordinator')}")
    started = [e for e in events_of(runtime, ROOT) if e.type == "task_start"]
    assert [(e.child, e.call_id) for e in started] == [(child.key, "call-coordinator")]

    served.until(served.settled(ROOT, first.id))
    done = served.record(ROOT, first.id)
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == (
        "coordinator got: researcher answers: help coordinator with: is the refund allowed?"
    )
    assert calls == {"coordinator": 2, "researcher": 1}, "each ran once"
    # The child is an instance of its own: its history has only its prompt and answer.
    history = asyncio.run(runtime.history(child.agent, child.id, "default")).messages
    assert [m.message.text for m in history] == [
        "help coordinator with: is the refund allowed?",
        "researcher answers: help coordinator with: is the refund allowed?",
    ]
    child_submission = started[0].child_submission_id
    assert served.record(child, child_submission).kind == "task"
    recorded = [e for e in events_of(runtime, ROOT) if e.type == "task"]
    assert [(e.status, e.child, e.child_submission_id) for e in recorded] == [("ok", child.key, child_submission)]
    assert all(e.type not in ("task_start", "task") for e in events_of(runtime, child))
    if backend.kind == "moto":  # one execution of the real state machine, named after the call
        sfn = backend.clients["stepfunctions"]
        (machine,) = sfn.list_state_machines()["stateMachines"]
        executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        assert [e["name"] for e in executions] == [execution_name(ChildLink(ROOT, first.id, "call-coordinator", child, ""))]
        wait_for(lambda: sfn.describe_execution(executionArn=executions[0]["executionArn"])["status"] == "SUCCEEDED")
        assert served.handled == 3, "parent, child (woken by the execution, with its token), parent again"


def test_mistakes_in_a_task_call_are_tool_errors(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen: list[str] = []
    attempts = iter(
        [
            {"agent": "nobody", "prompt": "x"},
            {"agent": "policy_researcher"},
            {"agent": "policy_researcher", "prompt": "x", "attachments": ["/attachments/a.png"]},
        ]
    )

    def respond(request: ModelRequest) -> str | ToolCall:
        results = results_in(request)
        if results:
            seen.append(results[0].content)
        try:
            return ToolCall("task", next(attempts), id=f"c{len(seen)}")
        except StopIteration:
            return "gave up"

    calls: Counter[str] = Counter()
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=FunctionModel(respond), subagents=[researcher_profile(calls)]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "go"))
    served.until(served.settled(ROOT, admitted.record.id))
    assert served.record(ROOT, admitted.record.id).outcome is Outcome.completed
    assert "unknown subagent 'nobody' (available: policy_researcher)" in seen[0]
    assert "prompt" in seen[1] and "Field required" in seen[1]
    assert seen[2] == "no file /attachments/a.png to hand over"
    assert calls["researcher"] == 0, "no child started"


def test_the_task_tool_lists_the_subagents(backend: Backend) -> None:
    requests: list[ModelRequest] = []

    def respond(request: ModelRequest) -> str:
        requests.append(request)
        return "ok"

    calls: Counter[str] = Counter()
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=FunctionModel(respond), subagents=[researcher_profile(calls)]))
    registry.add("plain", create_agent(model=FunctionModel(respond)))
    runtime = backend.runtime(registry)
    for agent in (ROOT.agent, "plain"):
        asyncio.run(runtime.prompt(agent, "x", "hi"))
        asyncio.run(runtime.drain(InstanceRef(agent, "x"), deadline=time.time() + 30))
    with_task, without = requests
    (task,) = [t for t in with_task.tools if t.name == "task"]
    assert task.parameters["properties"]["agent"]["enum"] == ["policy_researcher"]
    assert "policy_researcher: Finds policy text and quotes it." in task.description
    assert "task" not in [t.name for t in without.tools], "only agents with subagents get it"


def test_the_depth_of_a_tree_is_capped(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    calls: Counter[str] = Counter()
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=delegator("coordinator", calls), subagents=[chain(MAX_DEPTH + 1, calls)]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "dig"))
    served.until(served.settled(ROOT, admitted.record.id))
    text = served.record(ROOT, admitted.record.id).result["text"]  # type: ignore[index]
    assert f"subagents may nest {MAX_DEPTH} deep" in text
    assert calls[f"level{MAX_DEPTH}"] == 2 and calls[f"level{MAX_DEPTH + 1}"] == 0



def test_a_task_that_would_make_a_cycle_is_refused() -> None:
    from agent_runtime.adapters.memory import MemoryChildren, memory_stores
    from agent_runtime.definition import Subagent
    from agent_runtime.ledger import Draft, Fence, input_hash
    from agent_runtime.loop.builtins import CallContext
    from agent_runtime.loop.builtins.task import TaskBuiltin
    from agent_runtime.loop.child_runs import ChildRuns
    from agent_runtime.messages import ToolCallPart

    calls: Counter[str] = Counter()
    x = define_agent_profile(name="x", description="X.", model=delegator("x", calls))
    stores, wakeups = memory_stores(), MemoryWakeUps()
    # An instance of y, itself a child of x, itself a child of the root.
    here = InstanceRef("y", "L-1~aaaaaaaaaa~bbbbbbbbbb")
    payload = {"prompt": "go", "link": {}, "ancestors": ["loop-root", "x"]}
    draft = Draft(kind="task", session="default", payload=payload, receipt_key="task:k", receipt_hash=input_hash("task", "default", payload))
    record = asyncio.run(stores.ledger.admit(here, draft, now=0.0)).record
    claimed = asyncio.run(stores.attempts.claim_head(here, attempt_id="a", now=0.0, lease_seconds=60)).record
    assert claimed

    async def emit(*args: Any, **values: Any) -> None:
        raise AssertionError("nothing starts")

    builtin = TaskBuiltin([Subagent(profile=x)], ChildRuns(MemoryChildren(wakeups), stores.ledger, wakeups))
    ctx = CallContext(claimed, Fence.of(claimed), 1, stores, lambda: 0.0, emit)
    handled = asyncio.run(builtin.call(ToolCallPart(id="c1", name="task", arguments={"agent": "x", "prompt": "again"}), ctx))
    assert handled.result.is_error and handled.suspend is None
    assert handled.result.content == "refused: the task would make a cycle (loop-root -> x -> y -> x)"
    assert wakeups.sent == [] and record.id


def test_two_subagents_of_one_name_must_be_one_definition() -> None:
    from agent_runtime.errors import DefinitionError

    calls: Counter[str] = Counter()
    one = define_agent_profile(name="helper", description="One.", model=delegator("one", calls))
    other = define_agent_profile(name="helper", description="Another.", model=delegator("other", calls))
    registry = Registry()
    registry.add("first", create_agent(model=delegator("first", calls), subagents=[one]))
    registry.add("same", create_agent(model=delegator("same", calls), subagents=[one]))  # shared: fine
    with pytest.raises(DefinitionError) as info:
        registry.add("second", create_agent(model=delegator("second", calls), subagents=[other]))
    assert info.value.field == "subagents" and "'helper'" in str(info.value)


@pytest.mark.parametrize(
    "point", ["parent-after-start", "child-mid-run", "child-settled-parent-not-told", "child-settled-wakeup-lost"]
)
def test_crashes_on_the_child_path_run_nothing_twice(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    calls: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    @tool
    def quote_policy(section: str) -> str:
        """Quote one section of the policy (not idempotent: it bills a lookup)."""
        calls["quote_policy"] += 1
        if point == "child-mid-run":
            crash_once(crashes, "tool")
        return f"section {section}: refunds within 30 days"

    def research(request: ModelRequest) -> str | ToolCall:
        calls["researcher"] += 1
        results = results_in(request)
        if results:
            return f"quoted ({results[0].status}): {results[0].content}"
        return ToolCall("quote_policy", {"section": "4.2"}, id="q-1")

    researcher = define_agent_profile(
        name="policy_researcher", description="Quotes policy.", model=FunctionModel(research), tools=[quote_policy]
    )
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=delegator("coordinator", calls), subagents=[researcher]))
    runtime = backend.runtime(registry, lease_seconds=0.3)
    assert runtime.children is not None
    children = runtime.children
    if point == "parent-after-start":
        real_start = children.start

        async def start(link: ChildLink) -> None:
            await real_start(link)
            crash_once(crashes, "start")

        monkeypatch.setattr(children, "start", start)
    if point.startswith("child-settled"):
        assert runtime.child_runs is not None
        tell = runtime.child_runs.settled

        async def settled(link: ChildLink, child: SubmissionRecord, *, now: float, session: str) -> None:
            crash_once(crashes, "tell")  # dies after the child's settle, before the parent hears
            await tell(link, child, now=now, session=session)

        monkeypatch.setattr(runtime.child_runs, "settled", settled)
    served = serve(backend, runtime)
    served.lose_on_crash = point == "child-settled-wakeup-lost"
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "refunds?"))
    child = InstanceRef("policy-researcher", f"{ROOT.id}~{child_ref(admitted.record.id, 'call-coordinator')}")
    if point == "child-settled-wakeup-lost":
        # The crashed child's wake-up is lost too: only the sweeper finds the waiting parent
        # (its instance stays pending) and wakes it; it resumes from the child's record.
        served.until(lambda: served.crashes == 1, crash_ok=True)
        served.until(lambda: served.idle(), crash_ok=True)
        assert served.record(ROOT, admitted.record.id).status is Status.waiting
        from agent_runtime.sweep import sweep

        asyncio.run(sweep(runtime.stores.ledger, runtime.wakeups, now=time.time(), idle_seconds=-1))
    served.until(served.settled(ROOT, admitted.record.id), crash_ok=True)
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert served.crashes == 1, crashes
    assert calls["quote_policy"] == 1, "the child's tool never ran twice"
    expected = "interrupted" if point == "child-mid-run" else "ok"
    assert record.result and record.result["text"].startswith(f"coordinator got: quoted ({expected})")
    children_admitted = asyncio.run(runtime.stores.ledger.list_submissions(child))
    assert len(children_admitted) == 1, "one child submission, however often the call ran"
    assert calls["coordinator"] == 2


def test_a_child_that_never_answers_ends_as_a_tool_error(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    if backend.kind == "memory":
        pytest.skip("in process, a child is bounded by its own timeout; the heartbeat is the state machine's")
    from agent_runtime.adapters.aws.stepfunctions import StepFunctionsChildren
    from agent_runtime.blocking import blocking_child_definition

    assert backend.resources
    sfn = backend.clients["stepfunctions"]
    definition = blocking_child_definition(
        table=backend.resources.table, queue_url=backend.resources.queue_url, heartbeat_seconds=1, timeout_seconds=30
    )
    arn = sfn.create_state_machine(
        name="impatient", definition=json.dumps(definition), roleArn="arn:aws:iam::123456789012:role/x"
    )["stateMachineArn"]
    children = StepFunctionsChildren(
        stepfunctions=sfn, state_machine_arn=arn, dynamodb=backend.clients["dynamodb"], table=backend.resources.table
    )
    calls: Counter[str] = Counter()
    runtime = coordinator_runtime(backend, calls, researcher_profile(calls), children=children)
    served = serve(backend, runtime)
    served.drop = lambda instance: instance.agent == "policy-researcher"  # its worker never runs
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "anyone there?"))
    served.until(served.settled(ROOT, admitted.record.id), timeout=30)
    record = served.record(ROOT, admitted.record.id)
    assert record.outcome is Outcome.completed
    assert record.result and record.result["text"].startswith(
        "coordinator got: the subagent policy-researcher did not finish: States."
    )
    assert calls["researcher"] == 0
    (task,) = [e for e in events_of(runtime, ROOT) if e.type == "task"]
    assert task.status == "error"


def test_children_are_listed_and_read_through_the_parents_routes(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    from agent_runtime.endpoints import child_events, child_messages, child_submission, children
    from agent_runtime.endpoints import serve as route
    from agent_runtime.routing import Headers, RouteRequest, RouteResponse

    seen: list[str] = []

    async def guard(req: RouteRequest, call_next: Callable[[], Any]) -> RouteResponse:
        seen.append(req.path)
        if req.headers.get("authorization") != "Bearer parent":
            return req.json({"error": "Unauthorized"}, status=401)
        return await call_next()

    calls: Counter[str] = Counter()
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=delegator("coordinator", calls), subagents=[researcher_profile(calls)]), route=guard)
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "who may get a refund?"))
    served.until(served.settled(ROOT, admitted.record.id))

    def get(path: str, endpoint: Any, token: str = "parent", **params: str) -> RouteResponse:
        req = RouteRequest(
            method="GET",
            path=path,
            headers=Headers({"authorization": f"Bearer {token}"}),
            query={},
            params={"name": ROOT.agent, "id": ROOT.id, **params},
        )
        return asyncio.run(route(runtime, req, endpoint))

    listed = get("/children", children).json()
    (kid,) = listed["children"]
    ref = child_ref(admitted.record.id, "call-coordinator")
    assert kid["ref"] == ref and kid["agent"] == "policy-researcher" and kid["id"] == f"{ROOT.id}~{ref}"
    assert kid["status"] == "settled" and kid["outcome"] == "completed" and listed["next"] is None
    submission = get("/child-submission", child_submission, ref=ref, submission_id=kid["submission_id"]).json()
    assert submission["kind"] == "task" and submission["result"]["text"].startswith("researcher answers:")
    messages = get("/child-messages", child_messages, ref=ref, session="default").json()["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant"]
    events = get("/child-events", child_events, ref=ref).json()["events"]
    assert {"agent_start", "agent_end"} <= {e["type"] for e in events}
    assert get("/children", children, token="someone-else").status == 401, "the parent's hook guards its children"
    missing = get("/child-events", child_events, ref="0123456789")
    assert missing.status == 404 and missing.json()["error"]["type"] == "child_not_found"


def test_a_child_that_runs_long_keeps_telling_its_driver(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    import agent_runtime.worker as worker_module

    monkeypatch.setattr(worker_module, "HEARTBEAT_SECONDS", 0.05)
    beats: list[ChildLink] = []
    calls: Counter[str] = Counter()

    @tool
    async def slow_search(question: str) -> str:
        """Search, slowly."""
        await asyncio.sleep(0.4)
        return "found it"

    def research(request: ModelRequest) -> str | ToolCall:
        return "done: found" if results_in(request) else ToolCall("slow_search", {"question": "q"})

    profile = define_agent_profile(name="slowpoke", description="Slow.", model=FunctionModel(research), tools=[slow_search])
    runtime = coordinator_runtime(backend, calls, profile)
    assert runtime.children is not None
    real = runtime.children.heartbeat

    async def heartbeat(link: ChildLink) -> None:
        beats.append(link)
        await real(link)  # on moto: SendTaskHeartbeat with the kept token

    monkeypatch.setattr(runtime.children, "heartbeat", heartbeat)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "take your time"))
    served.until(served.settled(ROOT, admitted.record.id))
    assert served.record(ROOT, admitted.record.id).outcome is Outcome.completed
    assert len(beats) >= 3 and {b.child.agent for b in beats} == {"slowpoke"}


def test_a_non_blocking_child_reports_when_it_is_done(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    from agent_runtime.definition import subagent

    gate: list[str] = []
    requests: list[ModelRequest] = []

    def monitor(request: ModelRequest) -> str:
        gate.append(last_user_text(request))
        return "inbox: 3 new messages"

    def coordinator(request: ModelRequest) -> str | ToolCall:
        requests.append(request)
        results = results_in(request)
        if last_user_text(request) == "watch the inbox" and not results:
            return ToolCall("task", {"agent": "inbox_monitor", "prompt": "check the inbox"}, id="t-1")
        if results:
            return f"started: {results[0].content}"
        return f"you said: {last_user_text(request)}"

    watcher = define_agent_profile(name="inbox_monitor", description="Watches the inbox.", model=FunctionModel(monitor))
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=FunctionModel(coordinator), subagents=[subagent(watcher, blocking=False)]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    first = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "watch the inbox"))
    # The call returns at once: the parent settles without waiting for the child.
    served.drop = lambda instance: instance.agent == "inbox-monitor"
    served.until(served.settled(ROOT, first.record.id))
    done = served.record(ROOT, first.record.id)
    assert done.result and done.result["text"].startswith("started: started inbox_monitor as inbox-monitor/T-42~")
    assert gate == [], "the child has not run yet"
    # A second prompt is queued; then the child runs, and its report queues behind it.
    second = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "anything new?"))
    child = InstanceRef("inbox-monitor", f"{ROOT.id}~{child_ref(first.record.id, 't-1')}")
    child_submission = asyncio.run(runtime.stores.ledger.list_submissions(child))[0]
    served.drop = lambda instance: False
    asyncio.run(runtime.wakeups.send(child, reason="child", dedupe_id="again"))  # its lost wake-up, redelivered
    served.until(served.settled(child, child_submission.id))
    served.until(served.settled(ROOT, second.record.id))
    served.until(lambda: all(s.settled for s in asyncio.run(runtime.stores.ledger.list_submissions(ROOT))))
    submissions = asyncio.run(runtime.stores.ledger.list_submissions(ROOT))
    assert [s.kind for s in submissions] == ["direct", "direct", "child_report"]
    report = submissions[2]
    assert report.outcome is Outcome.completed and report.payload["outcome"] == "completed"
    # Silent: the report is in the parent's history, with no model call for it ...
    history = [m.message for m in asyncio.run(runtime.history(ROOT.agent, ROOT.id, "default")).messages]
    assert history[-1].text == f"[subagent {child.key} (call t-1) completed] inbox: 3 new messages"
    assert len(requests) == 3
    # ... and the model reads it on its next turn.
    third = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "and now?"))
    served.until(served.settled(ROOT, third.record.id))
    assert any("inbox: 3 new messages" in (m.text or "") for m in requests[-1].messages)
    started = [e for e in events_of(runtime, ROOT) if e.type == "task_start"]
    assert [e.blocking for e in started] == [False]


def test_a_non_blocking_report_survives_a_crash_before_it_is_admitted(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_runtime.definition import subagent

    crashes: Counter[str] = Counter()
    runs: Counter[str] = Counter()

    def monitor(request: ModelRequest) -> str:
        runs["monitor"] += 1
        return "inbox: empty"

    def coordinator(request: ModelRequest) -> str | ToolCall:
        results = results_in(request)
        if results:
            return "watching"
        return ToolCall("task", {"agent": "inbox_monitor", "prompt": "check"}, id="t-9")

    watcher = define_agent_profile(name="inbox_monitor", description="Watches.", model=FunctionModel(monitor))
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=FunctionModel(coordinator), subagents=[subagent(watcher, blocking=False)]))
    runtime = backend.runtime(registry, lease_seconds=0.3)
    assert runtime.child_runs is not None
    tell = runtime.child_runs.settled

    async def settled(link: ChildLink, child: SubmissionRecord, *, now: float, session: str) -> None:
        crash_once(crashes, "tell")
        await tell(link, child, now=now, session=session)

    monkeypatch.setattr(runtime.child_runs, "settled", settled)
    served = serve(backend, runtime)
    asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "watch"))

    def reported() -> bool:
        return any(s.kind == "child_report" and s.settled for s in asyncio.run(runtime.stores.ledger.list_submissions(ROOT)))

    served.until(reported, crash_ok=True)
    served.until(served.idle)
    assert served.crashes == 1 and runs["monitor"] == 1
    kinds = [s.kind for s in asyncio.run(runtime.stores.ledger.list_submissions(ROOT))]
    assert kinds == ["direct", "child_report"], "reported once, after the crash"
    history = [m.message.text for m in asyncio.run(runtime.history(ROOT.agent, ROOT.id, "default")).messages]
    assert sum("inbox: empty" in (t or "") for t in history) == 1


def test_aborting_a_queued_non_blocking_child_reports_it(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    from agent_runtime.definition import subagent

    def coordinator(request: ModelRequest) -> str | ToolCall:
        return "started" if results_in(request) else ToolCall("task", {"agent": "inbox_monitor", "prompt": "watch"}, id="t-2")

    calls: Counter[str] = Counter()
    watcher = define_agent_profile(name="inbox_monitor", description="Watches.", model=delegator("monitor", calls))
    registry = Registry()
    registry.add(ROOT.agent, create_agent(model=FunctionModel(coordinator), subagents=[subagent(watcher, blocking=False)]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    served.drop = lambda instance: instance.agent == "inbox-monitor"  # the child stays queued
    first = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "watch"))
    served.until(served.settled(ROOT, first.record.id))
    child = InstanceRef("inbox-monitor", f"{ROOT.id}~{child_ref(first.record.id, 't-2')}")
    (aborted,) = asyncio.run(runtime.abort(child.agent, child.id, queued=True))
    assert aborted.outcome is Outcome.aborted
    served.until(lambda: len(asyncio.run(runtime.stores.ledger.list_submissions(ROOT))) == 2)
    report = asyncio.run(runtime.stores.ledger.list_submissions(ROOT))[1]
    assert report.kind == "child_report" and report.payload["outcome"] == "aborted"
    served.until(served.settled(ROOT, report.id))
    assert calls["monitor"] == 0
