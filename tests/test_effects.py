"""Effects on both adapters (memory, and DynamoDB + EventBridge Scheduler on moto): a tool
schedules one, it is listed (and on moto a one-time schedule exists for it), nothing runs
before it is due, it fires once however often its timer delivers, runs as an ``effect``
submission whose result is what the function returns, may prompt the model and schedule
again; cancelled ones never run; a tool run again after a crash schedules it once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.effects import EffectNotFound, EffectNotPending, effect
from agent_runtime.errors import DefinitionError, InvalidInput
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status
from agent_runtime.loop.dispatch import DispatchContext
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.effects import due_events, fire_due
from agent_runtime.tools import ToolContext, tool

INST = InstanceRef("support", "T-1")
HOUR = 3600.0


class Agent:
    """The support agent: `remind` schedules `follow_up`, which prompts the model and
    (with ``again``) schedules itself once more."""

    def __init__(self, backend: Backend) -> None:
        self.runs: Counter[str] = Counter()
        self.crash_tool_once = False
        self.clock = FakeClock()
        runs = self.runs

        @effect
        async def follow_up(ctx: DispatchContext, ticket: str, again: bool = False) -> dict[str, Any]:
            """Check on a ticket."""
            runs["follow_up"] += 1
            queued = await ctx.session.prompt(f"follow up on {ticket}")
            nxt = await ctx.schedule("follow_up", {"ticket": ticket}, delay=HOUR) if again else None
            await ctx.kv.put(f"followed/{ticket}", runs["follow_up"])
            return {"ticket": ticket, "prompt": queued, "next": nxt, "effect_id": ctx.effect_id}

        @tool(idempotent=True)
        async def remind(ticket: str, hours: float, again: bool, ctx: ToolContext) -> str:
            """Remind me later."""
            effect_id = await ctx.schedule("follow_up", {"ticket": ticket, "again": again}, delay=hours * HOUR)
            runs["remind"] += 1
            if self.crash_tool_once and runs["remind"] == 1:
                raise SystemExit("the worker died after scheduling")  # not an Exception: a crash
            return effect_id

        def model(request: ModelRequest) -> Any:
            if any(isinstance(p, ToolResultPart) for p in request.messages[-1].parts):
                return "reminder set"
            text = last_user_text(request)
            if text.startswith("remind"):
                _, ticket, hours, again = text.split()
                return ToolCall("remind", {"ticket": ticket, "hours": float(hours), "again": again == "again"})
            return f"model: {text}"

        registry = Registry()
        registry.add(INST.agent, create_agent(model=FunctionModel(model), tools=[remind], effects=[follow_up]))
        self.runtime: Runtime = backend.runtime(registry, clock=self.clock, lease_seconds=30)

    def run(self, coro: Any) -> Any:
        return asyncio.run(coro)

    def drain(self) -> None:
        """As the queue would: one drain per wake-up, until one settles nothing."""
        while self.run(self.runtime.drain(INST, deadline=self.clock() + 60)).settlements:
            pass

    def prompt(self, text: str) -> str:
        sid = self.run(self.runtime.prompt(INST.agent, INST.id, text)).record.id
        self.drain()
        return sid

    def effects(self, status: Any = None) -> list[Any]:
        return self.run(self.runtime.list_effects(INST.agent, INST.id, status=status))

    def fire(self, **kw: Any) -> list[str | None]:
        fired = self.run(fire_due(self.runtime, **kw))
        self.drain()
        return fired

    def submission(self, sid: str) -> Any:
        return self.run(self.runtime.submission(INST.agent, INST.id, sid))


def test_scheduled_listed_fired_once_and_its_return_value_is_the_result(backend: Backend) -> None:
    agent = Agent(backend)
    sid = agent.prompt("remind T-1 24 once")
    assert agent.submission(sid).result["text"] == "reminder set"
    [scheduled] = agent.effects()
    assert (scheduled.name, scheduled.args, scheduled.status) == ("follow_up", {"ticket": "T-1", "again": False}, "scheduled")
    assert scheduled.due_at == pytest.approx(agent.clock() + 24 * HOUR, abs=1)
    assert scheduled.scheduled_by == sid and scheduled.session == "default"
    if backend.kind == "moto":  # a one-time schedule that runs the dispatch function
        [event] = due_events(agent.runtime, agent.clock() + 25 * HOUR, keep=True)
        assert event["detail"] == {"agent": INST.agent, "id": INST.id, "effect_id": scheduled.id}

    assert agent.fire() == [], "not due yet"
    agent.clock.advance(24 * HOUR + 1)
    [fired] = agent.fire()
    assert fired is not None
    record = agent.submission(fired)
    assert (record.kind, record.status, record.outcome) == ("effect", Status.settled, Outcome.completed)
    assert record.result["data"]["ticket"] == "T-1" and record.result["data"]["effect_id"] == scheduled.id
    assert agent.runs["follow_up"] == 1
    [done] = agent.effects()
    assert (done.status, done.submission_id) == ("fired", fired)
    assert agent.effects(status="scheduled") == []

    # The prompt the effect queued was answered by the model, after the effect.
    prompted = agent.submission(record.result["data"]["prompt"])
    assert prompted.result["text"] == "model: follow up on T-1" and prompted.sequence > record.sequence

    # A timer that delivers again (Scheduler is at-least-once) runs nothing new.
    again = agent.run(agent.runtime.fire_effect(INST.agent, INST.id, scheduled.id))
    assert again is not None and again.replayed and again.record.id == fired
    agent.drain()
    assert agent.runs["follow_up"] == 1


def test_an_effect_schedules_again_and_the_chain_goes_on(backend: Backend) -> None:
    agent = Agent(backend)
    agent.prompt("remind T-9 1 again")
    agent.clock.advance(HOUR + 1)
    [first] = agent.fire()
    follow = agent.submission(first or "").result["data"]
    assert follow["next"] is not None
    [pending] = agent.effects(status="scheduled")
    assert pending.id == follow["next"] and pending.scheduled_by == first
    agent.clock.advance(HOUR + 1)
    assert len(agent.fire()) == 1
    assert agent.runs["follow_up"] == 2
    assert agent.run(agent.runtime.stores.kv.get(INST, "followed/T-9")) == 2


def test_cancelled_effects_never_run_and_cancelling_twice_or_late_is_clear(backend: Backend) -> None:
    agent = Agent(backend)
    agent.prompt("remind T-2 1 once")
    agent.prompt("remind T-3 2 once")
    first, second = agent.effects()
    cancelled = agent.run(agent.runtime.cancel_effect(INST.agent, INST.id, first.id))
    assert cancelled.status == "cancelled"
    with pytest.raises(EffectNotPending) as twice:
        agent.run(agent.runtime.cancel_effect(INST.agent, INST.id, first.id))
    assert twice.value.details["status"] == "cancelled"
    # A timer already on its way when the cancel came runs nothing.
    assert agent.run(agent.runtime.fire_effect(INST.agent, INST.id, first.id)) is None
    agent.clock.advance(3 * HOUR)
    assert len(agent.fire()) == 1, "only the second one is still armed"
    assert agent.runs["follow_up"] == 1
    with pytest.raises(EffectNotPending, match="already fired"):
        agent.run(agent.runtime.cancel_effect(INST.agent, INST.id, second.id))
    with pytest.raises(EffectNotFound):
        agent.run(agent.runtime.cancel_effect(INST.agent, INST.id, "eff-" + "a" * 26))
    with pytest.raises(InvalidInput):
        agent.run(agent.runtime.cancel_effect(INST.agent, INST.id, "../x"))


def test_a_tool_run_again_after_a_crash_schedules_its_effect_once(backend: Backend) -> None:
    agent = Agent(backend)
    agent.crash_tool_once = True
    sid = agent.run(agent.runtime.prompt(INST.agent, INST.id, "remind T-4 1 once")).record.id
    with pytest.raises(SystemExit):
        agent.drain()
    agent.clock.advance(31)  # the crashed attempt's lease runs out
    agent.drain()
    assert agent.submission(sid).result["text"] == "reminder set"
    assert agent.runs["remind"] == 2, "the idempotent tool ran again"
    assert len(agent.effects()) == 1, "and scheduled the same effect, not a second"
    agent.clock.advance(HOUR + 1)
    assert len(agent.fire()) == 1
    assert agent.runs["follow_up"] == 1


def test_an_effect_that_crashes_runs_again_and_fires_once(backend: Backend) -> None:
    agent = Agent(backend)
    agent.prompt("remind T-5 1 once")
    agent.clock.advance(HOUR + 1)
    crashes: Counter[str] = Counter()
    original = agent.runtime.stores.kv.put

    async def crash_once(instance: InstanceRef, key: str, value: Any) -> None:
        crashes[key] += 1
        if key.startswith("followed/") and crashes[key] == 1:
            raise SystemExit("the worker died inside the effect")
        await original(instance, key, value)

    agent.runtime.stores.kv.put = crash_once  # type: ignore[method-assign]
    [fired] = agent.run(fire_due(agent.runtime))
    with pytest.raises(SystemExit):
        agent.drain()
    agent.clock.advance(31)
    agent.drain()
    record = agent.submission(fired or "")
    assert record.outcome is Outcome.completed and record.attempts == 2
    prompts = [s for s in agent.run(agent.runtime.stores.ledger.list_submissions(INST)) if s.kind == "direct"]
    assert len(prompts) == 2, "the first prompt and the effect's one prompt: its replay queued nothing new"


def test_mistakes_are_refused_when_scheduling(backend: Backend) -> None:
    agent = Agent(backend)
    agent.prompt("remind T-6 1 once")
    sid = agent.effects()[0].scheduled_by or ""
    surroundings_record = agent.submission(sid)
    from agent_runtime.loop.effects_view import EffectsView

    view = EffectsView(
        agent.runtime.stores,
        agent.runtime.config(INST),
        INST,
        submission_id=surroundings_record.id,
        session="default",
        clock=agent.clock,
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "nope", "args": {}, "delay": 1}, "unknown effect 'nope'"),
        ({"name": "follow_up", "args": {"ticket": 1}, "delay": 1}, "ticket"),
        ({"name": "follow_up", "args": {"ticket": "x", "extra": 1}, "delay": 1}, "extra"),
        ({"name": "follow_up", "args": {"ticket": "x"}}, "exactly one of delay"),
        ({"name": "follow_up", "args": {"ticket": "x"}, "delay": -1}, "delay must be"),
        ({"name": "follow_up", "args": {"ticket": "x"}, "delay": 400 * 86400}, "at most 366 days"),
        ({"name": "follow_up", "args": {"ticket": "x"}, "at": datetime(2030, 1, 1)}, "timezone-aware"),
    ]
    for case, message in cases:
        name, args = case.pop("name"), case.pop("args")
        with pytest.raises(InvalidInput, match=message):
            agent.run(view.schedule("test", name, args, session=None, **{"delay": None, "at": None, **case}))
    when = datetime.fromtimestamp(agent.clock(), UTC) + timedelta(days=2)
    effect_id = agent.run(view.schedule("test", "follow_up", {"ticket": "x"}, delay=None, at=when, session="other"))
    record = next(e for e in agent.effects() if e.id == effect_id)
    assert record.due_at == pytest.approx(when.timestamp()) and record.session == "other"


def test_effect_definitions_are_checked() -> None:
    async def follow_up(ctx: Any, ticket: str) -> None: ...

    with pytest.raises(DefinitionError, match="distinct"):
        create_agent(model="test/echo", effects=[effect(follow_up), effect(follow_up)])
    with pytest.raises(DefinitionError, match="must match"):
        effect(name="bad name")(follow_up)
    with pytest.raises(DefinitionError, match="first parameter"):
        effect(name="no_context")(lambda: None)
    with pytest.raises(DefinitionError, match="list of @effect"):
        create_agent(model="test/echo", effects=[follow_up])


def test_the_timer_event_reaches_the_dispatch_function(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> None:
    import functions.dispatch_events as dispatch
    from agent_runtime.testing.lambda_events import LambdaContext

    agent = Agent(backend)
    agent.prompt("remind T-7 1 once")
    agent.clock.advance(HOUR + 1)
    [event] = due_events(agent.runtime, agent.clock())
    event = {"version": "0", "source": "agent-runtime.scheduler", "time": "", "region": "", "account": "",
             "resources": [], **event}
    monkeypatch.setattr(dispatch, "run", agent.run)
    dispatch.set_runtime(agent.runtime)
    try:
        first = dispatch.handler(json.loads(json.dumps(event)), LambdaContext())
        second = dispatch.handler(event, LambdaContext())
    finally:
        dispatch.set_runtime(None)
    assert first["status"] == "admitted" and second["replayed"] is True
    assert first["submission_id"] == second["submission_id"]


@pytest.mark.parametrize("point", ["before-arming", "before-admission", "before-noting"])
def test_a_crash_at_each_durable_step_of_an_effect_runs_it_once(backend: Backend, point: str) -> None:
    """Scheduling writes the record then arms the timer; firing marks it fired, admits its
    submission, then notes which: a crash between any two, then the retry (the tool run
    again, the timer delivering again), leaves one effect, one submission, one run."""
    agent = Agent(backend)
    stores = agent.runtime.stores
    crashed: Counter[str] = Counter()

    def crash_once_in(obj: Any, method: str, when: Any = lambda *a, **k: True) -> None:
        original = getattr(obj, method)

        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            if point not in crashed and when(*args, **kwargs):
                crashed[point] += 1
                raise SystemExit(point)
            return await original(*args, **kwargs)

        setattr(obj, method, wrapper)

    if point == "before-arming":
        crash_once_in(stores.timers, "arm")
    elif point == "before-admission":
        crash_once_in(stores.ledger, "admit", lambda instance, draft, **k: draft.kind == "effect")
    else:
        crash_once_in(stores.effects, "transition", lambda *a, **k: k.get("submission_id") is not None)

    sid = agent.run(agent.runtime.prompt(INST.agent, INST.id, "remind T-8 1 once")).record.id
    if point == "before-arming":
        with pytest.raises(SystemExit):
            agent.drain()
        agent.clock.advance(31)
    agent.drain()
    assert agent.submission(sid).result["text"] == "reminder set"
    [scheduled] = agent.effects()
    agent.clock.advance(HOUR + 1)
    events = due_events(agent.runtime, agent.clock(), keep=True)
    assert len(events) == 1, "armed once"
    if point != "before-arming":
        with pytest.raises(SystemExit):
            agent.run(agent.runtime.fire_effect(INST.agent, INST.id, scheduled.id))
    admission = agent.run(agent.runtime.fire_effect(INST.agent, INST.id, scheduled.id))  # the timer again
    agent.drain()
    effect_subs = [s for s in agent.run(stores.ledger.list_submissions(INST)) if s.kind == "effect"]
    assert [s.id for s in effect_subs] == [admission.record.id]
    assert agent.runs["follow_up"] == 1 and crashed[point] == 1
    [fired] = agent.effects()
    assert (fired.status, fired.submission_id) == ("fired", admission.record.id)
