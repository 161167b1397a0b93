"""Recovery matrix: kill the attempt right after each journal phase, redeliver, check.

After recovery, on both adapters: the submission settles, the input is in history
once, no tool with a recorded result ran twice (side effects are counted), and a
call whose outcome is unknown carries an ``interrupted`` result unless its tool is
idempotent (then it is re-run).
"""

from __future__ import annotations

from collections import Counter

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Phase, SubmissionRecord
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import tool

pytestmark = pytest.mark.asyncio

INST = InstanceRef("payments", "order-7")
LEASE = 30.0


class Crash(BaseException):
    """Process death: not an Exception, so nothing in the runtime catches it."""


def build(backend: Backend, clock: FakeClock, crash_at: Phase | None, crash_in_tool: str | None = None):
    effects: Counter[str] = Counter()
    model_calls: list[ModelRequest] = []

    @tool
    def charge(amount: int) -> str:
        """Charge the card (not idempotent)."""
        effects["charge"] += 1
        if crash_in_tool == "charge" and effects["charge"] == 1:
            raise Crash("died inside charge")
        return f"charged {amount}"

    @tool(idempotent=True)
    def lookup(order: str) -> str:
        """Read the order (safe to repeat)."""
        effects["lookup"] += 1
        if crash_in_tool == "lookup" and effects["lookup"] == 1:
            raise Crash("died inside lookup")
        return f"order {order} ok"

    def respond(request: ModelRequest):
        model_calls.append(request)
        clock.advance(1)  # a model call takes time: events of one run get distinct times
        last = request.messages[-1]
        if last.role == "user" and not any(isinstance(p, ToolResultPart) for p in last.parts):
            return [ToolCall("charge", {"amount": 5}, id="c-charge"), ToolCall("lookup", {"order": "7"}, id="c-lookup")]
        results = {p.call_id: p for p in last.parts if isinstance(p, ToolResultPart)}
        return "done: " + ", ".join(f"{k}={v.status}" for k, v in sorted(results.items()))

    registry = Registry()
    registry.add("payments", create_agent(lambda ctx: dict(model=FunctionModel(respond), tools=[charge, lookup])))
    crashed: list[Phase] = []

    def checkpoint(phase: Phase, record: SubmissionRecord) -> None:
        if phase is crash_at and not crashed:
            crashed.append(phase)
            raise Crash(f"died after {phase}")

    runtime = backend.runtime(registry, clock=clock, lease_seconds=LEASE, checkpoint=checkpoint, sleep=clock.sleep)
    return runtime, effects, model_calls


async def run_until_settled(runtime, clock: FakeClock, submission_id: str) -> SubmissionRecord:
    for _ in range(5):
        try:
            await runtime.drain(INST, deadline=clock() + 600)
        except Crash:
            clock.advance(LEASE + 1)  # the lease of the dead attempt runs out; SQS redelivers
            continue
        record = await runtime.submission(INST.agent, INST.id, submission_id)
        if record.settled:
            return record
    raise AssertionError("did not settle")


PHASES = [Phase.before_model, Phase.model_done, Phase.tools_requested, Phase.tool_result, Phase.committed]


@pytest.mark.parametrize("phase", PHASES, ids=[p.value for p in PHASES])
async def test_kill_after_each_phase(backend: Backend, clock: FakeClock, phase: Phase) -> None:
    runtime, effects, _ = build(backend, clock, crash_at=phase)
    admission = await runtime.prompt(INST.agent, INST.id, "pay order 7")
    record = await run_until_settled(runtime, clock, admission.record.id)

    assert record.outcome is Outcome.completed, record.error
    assert record.attempts == 2
    history = [m.message for m in (await runtime.history(INST.agent, INST.id, "default")).messages]
    assert [m.text for m in history if m.role == "user" and m.text] == ["pay order 7"], "input applied once"
    results = {p.call_id: p for m in history for p in m.parts if isinstance(p, ToolResultPart)}
    assert set(results) == {"c-charge", "c-lookup"}
    roles = [m.role for m in history]
    assert roles == ["user", "assistant", "user", "assistant"], "well-formed history"

    if phase in (Phase.before_model, Phase.model_done):
        # No tool had started: everything runs once, normally.
        assert effects == {"charge": 1, "lookup": 1}
        assert results["c-charge"].status == "ok" and results["c-lookup"].status == "ok"
    elif phase is Phase.tools_requested:
        # Outcomes unknown: the non-idempotent call is not re-run; the idempotent one is.
        assert (effects["charge"], effects["lookup"]) == (0, 1)
        assert results["c-charge"].status == "interrupted"
        assert results["c-lookup"].status == "ok"
    elif phase is Phase.tool_result:
        # charge's result was recorded before the crash: never run again.
        assert effects == {"charge": 1, "lookup": 1}
        assert results["c-charge"].status == "ok" and results["c-charge"].content == "charged 5"
    else:  # committed: both results recorded, only the final model turn remains
        assert effects == {"charge": 1, "lookup": 1}
    assert record.result and record.result["text"].startswith("done: ")


async def test_crash_inside_a_tool_gives_interrupted_not_a_rerun(backend: Backend, clock: FakeClock) -> None:
    runtime, effects, _ = build(backend, clock, crash_at=None, crash_in_tool="charge")
    admission = await runtime.prompt(INST.agent, INST.id, "pay")
    record = await run_until_settled(runtime, clock, admission.record.id)
    assert record.outcome is Outcome.completed
    assert effects["charge"] == 1, "the charge that may have happened is not repeated"
    assert record.result and "c-charge=interrupted" in record.result["text"]


async def test_crash_inside_an_idempotent_tool_reruns_it(backend: Backend, clock: FakeClock) -> None:
    runtime, effects, _ = build(backend, clock, crash_at=None, crash_in_tool="lookup")
    admission = await runtime.prompt(INST.agent, INST.id, "pay")
    record = await run_until_settled(runtime, clock, admission.record.id)
    assert record.outcome is Outcome.completed
    assert effects == {"charge": 1, "lookup": 2}
    assert record.result and "c-lookup=ok" in record.result["text"] and "c-charge=ok" in record.result["text"]


async def test_later_submissions_wait_for_the_recovered_head(backend: Backend, clock: FakeClock) -> None:
    runtime, _effects, model_calls = build(backend, clock, crash_at=Phase.tools_requested)
    first = await runtime.prompt(INST.agent, INST.id, "one")
    second = await runtime.prompt(INST.agent, INST.id, "two")
    with pytest.raises(Crash):
        await runtime.drain(INST, deadline=clock() + 600)
    # The head is leased by the dead attempt: the instance is busy, the second must wait.
    assert (await runtime.drain(INST, deadline=clock() + 600)).state == "busy"
    assert not (await runtime.submission(INST.agent, INST.id, second.record.id)).settled
    clock.advance(LEASE + 1)
    recovered_at = clock()
    result = await runtime.drain(INST, deadline=clock() + 600)
    assert result.settled == 2
    assert [s.submission_id for s in result.settlements] == [first.record.id, second.record.id]
    a = await runtime.submission(INST.agent, INST.id, first.record.id)
    b = await runtime.submission(INST.agent, INST.id, second.record.id)
    # The recovered head still had a model call to make (the clock moves 1 s per call),
    # so it settled after the recovery began, and the second started only after that.
    assert a.settled_at and b.started_at and b.settled_at
    assert recovered_at < a.settled_at <= b.started_at < b.settled_at
    # Every model call for the second came after the last one for the first.
    for_second = [any(m.text == "two" for m in request.messages) for request in model_calls]
    assert for_second == sorted(for_second) and for_second.count(True) == 2
