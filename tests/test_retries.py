"""The retry budget through the runtime, on both adapters: a hand-back out of invocation
time spends no attempt, a failed attempt waits out its backoff, and an attempt that
dies every time ends `failed` after `max_attempts` claims instead of looping forever."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.definition import Durability, create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import Tool, tool

pytestmark = pytest.mark.asyncio

INST = InstanceRef("steps", "s-1")
LEASE = 30.0


class Crash(BaseException):
    """Process death: not an Exception, so nothing in the runtime catches it."""


def runtime_for(
    backend: Backend, clock: FakeClock, respond: Callable[[ModelRequest], Any], *, tools: list[Tool], retry: int = 10
) -> Runtime:
    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(respond), tools=tools, durability=Durability(retry=retry)))
    return backend.runtime(registry, clock=clock, lease_seconds=LEASE, sleep=clock.sleep)


def tool_results(request: ModelRequest) -> list[ToolResultPart]:
    return [p for m in request.messages for p in m.parts if isinstance(p, ToolResultPart)]


async def test_out_of_invocation_time_hands_back_without_spending_an_attempt(backend: Backend, clock: FakeClock) -> None:
    runs: list[float] = []

    @tool
    def slow_step() -> str:
        """Takes 100 s (not idempotent)."""
        runs.append(clock())
        clock.advance(100)
        return "stepped"

    def respond(request: ModelRequest) -> Any:
        return "done" if tool_results(request) else [ToolCall("slow_step", {}, id="c-1")]

    # One attempt in the budget: a hand-back that spent it would leave none.
    runtime = runtime_for(backend, clock, respond, tools=[slow_step], retry=1)
    admission = await runtime.prompt(INST.agent, INST.id, "go")

    first = await runtime.drain(INST, deadline=clock() + 50)
    assert first.state == "more" and first.settled == 0, "past the invocation deadline the attempt hands back"
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.status is Status.queued and record.attempt_id is None and not record.settled
    assert record.attempts == 0 and record.yields == 1, "a hand-back gives its attempt back"
    assert record.not_before is None, "and is claimable at once"
    assert len(runs) == 1

    second = await runtime.drain(INST, deadline=clock() + 50)
    assert second.state == "idle" and second.settled == 1
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert record.attempts == 1 and record.result and record.result["text"] == "done"
    assert len(runs) == 1, "the recorded tool result is not recomputed"


async def test_a_failed_attempt_waits_out_its_backoff(backend: Backend, clock: FakeClock) -> None:
    calls: list[float] = []

    def respond(request: ModelRequest) -> str:
        calls.append(clock())
        if len(calls) == 1:
            raise RuntimeError("provider down")
        return "ok"

    runtime = runtime_for(backend, clock, respond, tools=[])
    admission = await runtime.prompt(INST.agent, INST.id, "go")
    failed_at = clock()

    # Less time left than the backoff: the drain stops instead of retrying early.
    first = await runtime.drain(INST, deadline=clock() + 0.25)
    assert first.state == "more" and first.settled == 0
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.status is Status.queued and record.attempts == 1
    assert record.error and record.error["type"] == "RuntimeError"
    assert record.not_before is not None and failed_at + 0.5 <= record.not_before <= failed_at + 1.0
    held = await runtime.stores.attempts.claim_head(INST, attempt_id="probe", now=clock(), lease_seconds=LEASE)
    assert held.state == "backoff" and held.record and held.record.id == record.id
    assert len(calls) == 1

    clock.advance(record.not_before - clock())
    second = await runtime.drain(INST, deadline=clock() + 60)
    assert second.state == "idle" and second.settled == 1
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.completed and record.attempts == 2
    assert calls[1] - calls[0] >= 0.5


async def test_a_drain_with_time_left_sleeps_through_the_backoff(backend: Backend, clock: FakeClock) -> None:
    calls: list[float] = []

    def respond(request: ModelRequest) -> str:
        calls.append(clock())
        if len(calls) < 3:
            raise RuntimeError("provider down")
        return "ok"

    runtime = runtime_for(backend, clock, respond, tools=[])
    admission = await runtime.prompt(INST.agent, INST.id, "go")
    result = await runtime.drain(INST, deadline=clock() + 600)
    assert result.state == "idle" and result.settled == 1
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.completed and record.attempts == 3
    # base 1 s doubling, each with jitter in [0.5, 1.0] of it
    assert calls[1] - calls[0] >= 0.5
    assert calls[2] - calls[1] >= 1.0


async def test_an_attempt_that_dies_every_time_ends_failed_after_max_attempts(backend: Backend, clock: FakeClock) -> None:
    entered: list[float] = []

    @tool(idempotent=True)
    def fragile() -> str:
        """Kills the process whenever it runs (idempotent, so each attempt re-runs it)."""
        entered.append(clock())
        raise Crash("died inside fragile")

    def respond(request: ModelRequest) -> Any:
        return "unreachable" if tool_results(request) else [ToolCall("fragile", {}, id="c-1")]

    runtime = runtime_for(backend, clock, respond, tools=[fragile], retry=3)
    admission = await runtime.prompt(INST.agent, INST.id, "go")
    crashes = 0
    for _ in range(10):
        try:
            await runtime.drain(INST, deadline=clock() + 600)
        except Crash:
            crashes += 1
            clock.advance(LEASE + 1)  # the dead attempt's lease runs out; the wake-up is redelivered
            continue
        break
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.failed, f"still {record.status} after {crashes} crashes"
    assert record.error and record.error["type"] == "retries_exhausted"
    assert crashes == 3 and len(entered) == 3, "one run per attempt in the budget, then no more"
    assert (await runtime.drain(INST, deadline=clock() + 600)).state == "idle"


@pytest.mark.parametrize("crash_in_tool", [False, True], ids=["clean", "crash-in-tool"])
async def test_a_hand_back_before_the_tools_runs_them_in_the_next_attempt(
    backend: Backend, clock: FakeClock, crash_in_tool: bool
) -> None:
    charges: list[float] = []

    @tool
    def charge(amount: int) -> str:
        """Charge the card (not idempotent)."""
        charges.append(clock())
        if crash_in_tool and len(charges) == 1:
            raise Crash("died inside charge")
        return f"charged {amount}"

    def respond(request: ModelRequest) -> Any:
        results = tool_results(request)
        if results:
            return f"done: {results[0].status} {results[0].content}"
        clock.advance(100)  # the model takes the invocation's remaining time
        return [ToolCall("charge", {"amount": 5}, id="c-1")]

    runtime = runtime_for(backend, clock, respond, tools=[charge], retry=3)
    admission = await runtime.prompt(INST.agent, INST.id, "pay")
    first = await runtime.drain(INST, deadline=clock() + 50)
    assert first.state == "more" and not charges, "handed back between the model call and its tools"
    if crash_in_tool:
        with pytest.raises(Crash):
            await runtime.drain(INST, deadline=clock() + 500)
        clock.advance(LEASE + 1)
    await runtime.drain(INST, deadline=clock() + 500)
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.completed, record.error
    assert len(charges) == 1, "the charge runs once, never twice"
    assert record.result
    if crash_in_tool:  # died inside the charge: its outcome is unknown, never re-run
        assert record.result["text"].startswith("done: interrupted")
    else:  # a clean hand-back: the call never started, so it runs normally
        assert record.result["text"] == "done: ok charged 5"
        assert record.attempts == 1


async def test_a_model_call_cut_off_by_the_invocation_deadline_hands_back(backend: Backend) -> None:
    import asyncio
    import time

    replies: list[str] = []

    async def slow_reply(request: ModelRequest) -> str:
        await asyncio.sleep(0.3)
        replies.append("answered")
        return "late but fine"

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(slow_reply), durability=Durability(retry=1)))
    runtime = backend.runtime(registry, lease_seconds=LEASE)
    admission = await runtime.prompt(INST.agent, INST.id, "go")
    first = await runtime.drain(INST, deadline=time.time() + 0.1)
    assert first.state == "more" and first.settled == 0
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.status is Status.queued and record.attempts == 0 and record.yields == 1
    assert record.error is None and record.not_before is None, "not a failed attempt: no error, no backoff"
    assert replies == []
    await runtime.drain(INST, deadline=time.time() + 30)
    record = await runtime.submission(INST.agent, INST.id, admission.record.id)
    assert record.outcome is Outcome.completed and record.attempts == 1, record.error
    assert record.result and record.result["text"] == "late but fine"
