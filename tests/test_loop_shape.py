"""The loop's shape on both adapters: a built-in that suspends the submission and its
resume at that point (crash-safe, nothing run twice), the one settle path for waiting
work, and definitions that break at run time."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence

import pytest

from agent_runtime.definition import AgentContext, create_agent
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Phase, Status, SubmissionRecord
from agent_runtime.loop import Builtin, CallContext, Handled, Router
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import ModelRequest, ToolChoice, ToolSpec
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import tool

pytestmark = pytest.mark.asyncio

INST = InstanceRef("coordinator", "T-9")
LEASE = 30.0


class Crash(BaseException):
    """Process death: nothing in the runtime catches it."""


class WaitFor:
    """A test built-in: waits on an outside answer, named after its call id."""

    silent = False
    spec = ToolSpec(name="wait_for", description="Wait for an outside answer.", parameters={"type": "object"})

    def __init__(self, calls: Counter[str]) -> None:
        self.calls = calls

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        self.calls["wait_for"] += 1
        pending = ToolResultPart(call_id=call.id, name=call.name, content="")
        return Handled(pending, suspend=f"answer-{call.id}")


class WaitFamily:
    def __init__(self, calls: Counter[str]) -> None:
        self.builtin = WaitFor(calls)

    def builtins(self) -> Sequence[Builtin]:
        return [self.builtin]

    def text_answer(self, message: Message) -> None:
        return None

    def tool_choice(self, choice: ToolChoice) -> ToolChoice:
        return choice


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Every router gets the `wait_for` built-in; counts what ran."""
    calls: Counter[str] = Counter()
    original = Router.for_config.__func__  # type: ignore[attr-defined]

    def for_config(cls: type[Router], config, *extra, **options):  # type: ignore[no-untyped-def]
        return original(cls, config, *extra, WaitFamily(calls), **options)

    monkeypatch.setattr(Router, "for_config", classmethod(for_config))
    return calls


def build(backend: Backend, clock: FakeClock, counts: Counter[str], crash_at: Phase | None = None):
    @tool
    def charge(amount: int) -> str:
        """Charge the card (not idempotent)."""
        counts["charge"] += 1
        return f"charged {amount}"

    def respond(request: ModelRequest) -> str | list[ToolCall]:
        counts["model"] += 1
        last = request.messages[-1]
        results = {p.call_id: p for p in last.parts if isinstance(p, ToolResultPart)}
        if last.text == "next":
            return "fine"
        if not results:
            return [ToolCall("charge", {"amount": 5}, id="c-charge"), ToolCall("wait_for", {}, id="c-wait")]
        return "done: " + ", ".join(f"{k}={v.content}" for k, v in sorted(results.items()))

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(respond), tools=[charge]))
    crashed: list[Phase] = []

    def checkpoint(phase: Phase, record: SubmissionRecord) -> None:
        if phase is crash_at and not crashed:
            crashed.append(phase)
            raise Crash(f"died after {phase}")

    return backend.runtime(registry, clock=clock, lease_seconds=LEASE, checkpoint=checkpoint, sleep=clock.sleep)


async def drain(runtime, clock: FakeClock):
    for _ in range(3):
        try:
            return await runtime.drain(INST, deadline=clock() + 600)
        except Crash:
            clock.advance(LEASE + 1)
    raise AssertionError("kept crashing")


@pytest.mark.parametrize("crash_at", [None, Phase.tools_requested, Phase.tool_result], ids=["clean", "tools_requested", "tool_result"])
async def test_a_suspended_submission_waits_then_resumes_where_it_stopped(
    backend: Backend, clock: FakeClock, counts: Counter[str], crash_at: Phase | None
) -> None:
    runtime = build(backend, clock, counts, crash_at)
    first = await runtime.prompt(INST.agent, INST.id, "pay and wait")
    second = await runtime.prompt(INST.agent, INST.id, "next")
    result = await drain(runtime, clock)
    assert result.state == "idle" and result.settled == 0, "waiting is not settled and holds no worker"
    waiting = await runtime.submission(INST.agent, INST.id, first.record.id)
    assert waiting.status is Status.waiting and waiting.waiting_on == "answer-c-wait"
    assert (await runtime.submission(INST.agent, INST.id, second.record.id)).status is Status.queued

    answer = ToolResultPart(call_id="c-wait", name="wait_for", content="approved")
    assert await runtime.stores.attempts.resume(INST, first.record.id, reason="answer-c-wait", now=clock(), result=answer)
    result = await drain(runtime, clock)
    assert result.settled == 2
    done = await runtime.submission(INST.agent, INST.id, first.record.id)
    assert done.outcome is Outcome.completed, done.error
    charged = "charged 5"
    if crash_at is Phase.tools_requested:  # died before the charge: its outcome is unknown, never re-run
        charged = "interrupted: the runtime restarted while this call was running; its outcome is unknown"
    assert done.result and done.result["text"] == f"done: c-charge={charged}, c-wait=approved"
    # Nothing ran twice: the charge at most once, the built-in once, the model once per
    # turn (plus one for the second submission).
    assert counts["charge"] == (0 if crash_at is Phase.tools_requested else 1)
    assert counts["wait_for"] == 1 and counts["model"] == 3
    history = [m.message for m in (await runtime.history(INST.agent, INST.id, "default")).messages]
    assert [m.role for m in history] == ["user", "assistant", "user", "assistant", "user", "assistant"]
    later = await runtime.submission(INST.agent, INST.id, second.record.id)
    assert done.settled_at is not None and later.started_at is not None and later.started_at >= done.settled_at


async def test_aborting_a_waiting_submission_settles_it_once(backend: Backend, clock: FakeClock, counts: Counter[str]) -> None:
    runtime = build(backend, clock, counts)
    first = await runtime.prompt(INST.agent, INST.id, "pay and wait")
    await drain(runtime, clock)
    aborted = await runtime.abort(INST.agent, INST.id)
    assert [r.id for r in aborted] == [first.record.id]
    assert aborted[0].outcome is Outcome.aborted
    record = await runtime.submission(INST.agent, INST.id, first.record.id)
    assert record.outcome is Outcome.aborted and record.error and "waited" in record.error["message"]
    answer = ToolResultPart(call_id="c-wait", name="wait_for", content="too late")
    assert not await runtime.stores.attempts.resume(INST, first.record.id, reason="answer-c-wait", now=clock(), result=answer)
    page = await runtime.events_after(INST.agent, INST.id, after=0, limit=100)
    settled = [e for e in page.events if e.type == "submission_settled" and e.submission_id == first.record.id]
    assert len(settled) == 1


async def test_a_definition_that_breaks_at_run_time_fails_at_once_naming_the_field(
    backend: Backend, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def init(ctx: AgentContext) -> dict[str, object]:
        if ctx.id == "bad":
            return {"model": "test/echo", "max_turn": 3}
        return {"model": "test/echo", "durability": {"retry": 5}}

    inits: Counter[str] = Counter()

    def counted(ctx: AgentContext) -> dict[str, object]:
        inits[ctx.id] += 1
        return init(ctx)

    registry = Registry()
    registry.add("picky", create_agent(counted))
    runtime = backend.runtime(registry, clock=clock, lease_seconds=LEASE, sleep=clock.sleep)
    inits.clear()
    admitted = await runtime.prompt("picky", "bad", "hello")
    assert inits["bad"] == 0, "admission does not run init(ctx)"
    with caplog.at_level(logging.ERROR, logger="agent_runtime"):
        await runtime.drain(InstanceRef("picky", "bad"), deadline=clock() + 600)
    record = await runtime.submission("picky", "bad", admitted.record.id)
    assert record.outcome is Outcome.failed and record.attempts == 1, "no retries"
    assert record.error and record.error["type"] == "agent_definition_error"
    assert record.error["agent"] == "picky" and record.error["field"] == "max_turn"
    logged = [r for r in caplog.records if r.getMessage() == "agent definition error"]
    assert logged and logged[0].agent == "picky" and logged[0].field == "max_turn"  # type: ignore[attr-defined]


async def test_callable_instructions_see_the_runtimes_env(backend: Backend, clock: FakeClock) -> None:
    seen: list[str | None] = []

    def reply(request: ModelRequest) -> str:
        seen.append(request.system)
        return "ok"

    agent = create_agent(lambda ctx: dict(model=FunctionModel(reply), instructions=lambda c: f"shop {c.env.get('SHOP')}"))
    registry = Registry()
    registry.add("shop", agent)
    runtime = backend.runtime(registry, clock=clock, env={"SHOP": "shoes"}, sleep=clock.sleep)
    admitted = await runtime.prompt("shop", "s1", "hi")
    await runtime.drain(InstanceRef("shop", "s1"), deadline=clock() + 600)
    assert (await runtime.submission("shop", "s1", admitted.record.id)).outcome is Outcome.completed
    assert seen == ["shop shoes"]


async def test_definition_errors_at_import_stay_definition_errors() -> None:
    with pytest.raises(DefinitionError) as info:
        create_agent(model="test/echo", max_turn=3)
    assert info.value.field == "max_turn"
