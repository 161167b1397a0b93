"""The sweeper Lambda on moto, through the real handler: lost wake-ups are re-sent once the
work has been idle long enough, at most once per instance per window, and a running attempt
is left alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from moto import mock_aws

import functions.worker as worker
from agent_runtime import settings
from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence, Outcome, Status
from agent_runtime.ports import WakeUps
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock, moto_backend
from agent_runtime.testing.lambda_events import LambdaContext, pump
from functions import sweeper

IDLE = settings.SWEEP_IDLE_SECONDS


def registry() -> Registry:
    agents = Registry()
    agents.add("echo", create_agent(model="test/echo"))
    return agents


@dataclass
class Stack:
    backend: Backend
    runtime: Runtime
    clock: FakeClock

    @property
    def sqs(self) -> Any:
        return self.backend.clients["sqs"]

    @property
    def queue_url(self) -> str:
        assert self.backend.resources
        return self.backend.resources.queue_url

    def take_wakeups(self) -> list[dict[str, Any]]:
        """Receive and delete every visible wake-up (a lost message, seen from the worker)."""
        bodies: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not messages:
                return bodies
            for message in messages:
                bodies.append(json.loads(message["Body"]))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def run_workers(self) -> None:
        assert self.backend.resources
        pump(self.sqs, self.queue_url, self.backend.resources.queue_arn, worker.handler)


@pytest.fixture
def stack(clock: FakeClock) -> Iterator[Stack]:
    with mock_aws():
        backend = moto_backend(visibility_timeout=30)
        runtime = backend.runtime(registry(), clock=clock)
        original = worker.runtime
        worker.runtime = lambda: runtime  # type: ignore[assignment]
        sweeper.set_runtime(runtime)
        try:
            yield Stack(backend, runtime, clock)
        finally:
            sweeper.set_runtime(None)
            worker.runtime = original  # type: ignore[assignment]


def sweep() -> dict[str, int]:
    return sweeper.handler({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, LambdaContext())


def test_a_lost_wakeup_is_sent_again_once_the_work_is_idle(stack: Stack) -> None:
    admitted = run(stack.runtime.prompt("echo", "T-1", "hello"))
    assert [w["reason"] for w in stack.take_wakeups()] == ["admit"]  # ... and lost

    assert sweep() == {"pending": 0, "woken": 0}, "not idle long enough yet"
    stack.clock.advance(IDLE)
    assert sweep() == {"pending": 1, "woken": 1}
    assert sweep() == {"pending": 1, "woken": 1}, "the same window: SQS drops the second"
    assert [(w["instance"], w["reason"]) for w in stack.take_wakeups()] == [("echo/T-1", "sweep")]

    # Lost again: the next window sends again.
    stack.clock.advance(settings.SWEEP_INTERVAL_SECONDS)
    assert sweep() == {"pending": 1, "woken": 1}
    stack.run_workers()
    record = run(stack.runtime.submission("echo", "T-1", admitted.record.id))
    assert record.outcome is Outcome.completed

    stack.clock.advance(10 * IDLE)
    assert sweep() == {"pending": 0, "woken": 0}, "settled work is not swept"
    assert stack.take_wakeups() == []


def test_only_idle_instances_are_woken_and_counts_are_logged(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    # Whatever POWERTOOLS_LOG_LEVEL says (CI quiets it), the count line is an INFO record.
    level = sweeper.logger.log_level
    sweeper.logger.setLevel("INFO")
    try:
        _only_idle_instances_are_woken(stack, caplog)
    finally:
        sweeper.logger.setLevel(level)


def _only_idle_instances_are_woken(stack: Stack, caplog: pytest.LogCaptureFixture) -> None:
    run(stack.runtime.prompt("echo", "old", "a"))
    stack.clock.advance(IDLE)
    run(stack.runtime.prompt("echo", "recent", "b"))
    stack.take_wakeups()

    assert sweep() == {"pending": 1, "woken": 1}
    assert [w["instance"] for w in stack.take_wakeups()] == ["echo/old"]
    swept = [r for r in caplog.records if r.getMessage() == "swept"]
    assert len(swept) == 1
    assert (swept[0].pending, swept[0].woken, swept[0].failed) == (1, 1, 0)  # type: ignore[attr-defined]


def test_a_running_attempt_is_not_disturbed(stack: Stack) -> None:
    instance = InstanceRef("echo", "busy")
    admitted = run(stack.runtime.prompt("echo", "busy", "hello"))
    stack.take_wakeups()
    # Another worker holds the head on a live lease, for longer than the idle threshold.
    claim = run(
        stack.runtime.stores.attempts.claim_head(instance, attempt_id="live", now=stack.clock(), lease_seconds=10 * IDLE)
    )
    assert claim.state == "claimed" and claim.record
    stack.clock.advance(IDLE)

    assert sweep() == {"pending": 1, "woken": 1}
    with pytest.raises(BatchProcessingError):
        stack.run_workers()  # finds the head busy: the wake-up fails, for a later redelivery

    record = run(stack.runtime.submission("echo", "busy", admitted.record.id))
    assert record.status is Status.running and record.attempt_id == "live" and record.attempts == 1
    run(stack.runtime.stores.attempts.settle(instance, record.id, Outcome.completed, now=stack.clock(), fence=Fence.of(claim.record)))
    assert run(stack.runtime.submission("echo", "busy", admitted.record.id)).outcome is Outcome.completed


class FailingFor:
    """Wake-ups that fail for one instance and pass the rest through."""

    def __init__(self, inner: WakeUps, instance: str) -> None:
        self.inner = inner
        self.instance = instance

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        if instance.key == self.instance:
            raise ConnectionError("SQS unreachable")
        await self.inner.send(instance, reason=reason, dedupe_id=dedupe_id)


def test_a_failed_send_fails_the_run_after_waking_the_others(stack: Stack) -> None:
    for name in ("a", "b", "c"):
        run(stack.runtime.prompt("echo", name, "x"))
        stack.clock.advance(1)
    stack.take_wakeups()
    stack.clock.advance(IDLE)
    sweeper.set_runtime(
        Runtime(
            registry=stack.runtime.registry,
            stores=stack.runtime.stores,
            wakeups=FailingFor(stack.runtime.wakeups, "echo/b"),
            clock=stack.clock,
        )
    )
    with pytest.raises(sweeper.SweepIncomplete, match="1 of 3"):
        sweep()
    assert sorted(w["instance"] for w in stack.take_wakeups()) == ["echo/a", "echo/c"]


def test_the_sweep_is_bounded_by_its_limit(stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    for n in range(5):
        run(stack.runtime.prompt("echo", f"T-{n}", "x"))
        stack.clock.advance(1)
    stack.take_wakeups()
    stack.clock.advance(IDLE)
    monkeypatch.setattr(settings, "SWEEP_LIMIT", 2)
    assert sweep() == {"pending": 2, "woken": 2}
    assert [w["instance"] for w in stack.take_wakeups()] == ["echo/T-0", "echo/T-1"], "oldest first"


def test_the_deployed_sweeper_runs_no_agent_code(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The handler's own runtime discovers no agents: an agent module that fails to
    import does not stop the sweep that re-wakes everyone else's work."""
    import time

    from agent_runtime.adapters.aws import bootstrap

    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "broken.py").write_text("raise RuntimeError('this agent module is broken')\n")
    with mock_aws():
        backend = moto_backend(visibility_timeout=30)
        assert backend.resources
        for name, value in {**backend.resources.env(), settings.ENV_AGENTS: str(agents)}.items():
            monkeypatch.setenv(name, value)
        an_hour_ago = FakeClock(time.time() - 3600)
        admitting = backend.runtime(registry(), clock=an_hour_ago)
        run(admitting.prompt("echo", "T-9", "hello"))
        backend.clients["sqs"].purge_queue(QueueUrl=backend.resources.queue_url)  # the wake-up is lost
        bootstrap.default_runtime.cache_clear()
        try:
            assert sweep() == {"pending": 1, "woken": 1}
        finally:
            bootstrap.default_runtime.cache_clear()
