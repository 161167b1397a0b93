"""Concurrency policies on both adapters, with an instance kept busy by a claimed (running)
submission and queued ones behind it: queue admits; reject answers Busy (409) and admits
nothing; interrupt aborts the user submissions in progress and queued so the new one runs
next; latest aborts only the queued ones; a dispatch is never aborted; each decision is an
event."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.errors import Busy
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Status
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock

INST = InstanceRef("chat", "U-1")


def busy(backend: Backend, policy: str) -> tuple[Runtime, list[str]]:
    """The instance with a running prompt, a queued dispatch and a queued prompt."""
    registry = Registry()
    registry.add(INST.agent, create_agent(model="test/echo", concurrency=policy))
    clock = FakeClock()
    runtime = backend.runtime(registry, clock=clock)
    running = asyncio.run(runtime.prompt(INST.agent, INST.id, "first", concurrency="queue")).record.id
    claim = asyncio.run(runtime.stores.attempts.claim_head(INST, attempt_id="a1", now=clock(), lease_seconds=60))
    assert claim.record and claim.record.id == running
    dispatched = asyncio.run(runtime.dispatch(INST.agent, INST.id, {"job": 1})).record.id
    queued = asyncio.run(runtime.prompt(INST.agent, INST.id, "second", concurrency="queue")).record.id
    return runtime, [running, dispatched, queued]


def status(runtime: Runtime, submission_id: str) -> tuple[Any, Any, bool]:
    record = asyncio.run(runtime.submission(INST.agent, INST.id, submission_id))
    return record.status, record.outcome, record.abort_requested


def decisions(runtime: Runtime) -> list[tuple[str, list[str]]]:
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    return [(e.decision, e.submissions) for e in events if e.type == "concurrency"]


def test_reject_refuses_while_busy(backend: Backend) -> None:
    runtime, (running, dispatched, queued) = busy(backend, "reject")
    before = len(asyncio.run(runtime.stores.ledger.list_submissions(INST)))
    with pytest.raises(Busy) as refused:
        asyncio.run(runtime.prompt(INST.agent, INST.id, "third"))
    assert refused.value.type == "busy" and refused.value.details["submission_id"] == running
    assert len(asyncio.run(runtime.stores.ledger.list_submissions(INST))) == before, "nothing admitted"
    assert decisions(runtime) == [("rejected", [running, dispatched, queued])]
    assert asyncio.run(runtime.dispatch(INST.agent, INST.id, {"job": 2})).record.status is Status.queued, "dispatch queues"


def test_interrupt_aborts_the_user_work_and_the_new_prompt_runs_next(backend: Backend) -> None:
    runtime, (running, dispatched, queued) = busy(backend, "interrupt")
    new = asyncio.run(runtime.prompt(INST.agent, INST.id, "third")).record.id
    assert status(runtime, running)[2] is True, "the running attempt is asked to stop"
    assert status(runtime, queued)[:2] == (Status.settled, Outcome.aborted)
    assert status(runtime, dispatched)[:2] == (Status.queued, None), "a dispatch is not the user's to interrupt"
    assert status(runtime, new)[0] is Status.queued
    assert decisions(runtime) == [("interrupted", [running, queued])]


def test_latest_replaces_the_queued_prompts_only(backend: Backend) -> None:
    runtime, (running, dispatched, queued) = busy(backend, "latest")
    new = asyncio.run(runtime.prompt(INST.agent, INST.id, "third")).record.id
    assert status(runtime, running) == (Status.running, None, False), "the running one goes on"
    assert status(runtime, queued)[:2] == (Status.settled, Outcome.aborted)
    assert status(runtime, dispatched)[:2] == (Status.queued, None)
    assert status(runtime, new)[0] is Status.queued
    assert decisions(runtime) == [("replaced", [queued])]


def test_a_request_may_choose_its_policy(backend: Backend) -> None:
    runtime, _ = busy(backend, "queue")
    with pytest.raises(Busy):
        asyncio.run(runtime.prompt(INST.agent, INST.id, "third", concurrency="reject"))
    assert asyncio.run(runtime.prompt(INST.agent, INST.id, "fourth")).record.status is Status.queued
