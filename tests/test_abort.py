"""An abort reaches a running attempt between its boundaries, on both adapters: a model
stream is cancelled within about one poll, a running tool is told through its context,
and the tool calls not yet started do not run."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.errors import AbortRequested
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.loop.abort import cancelled_on_abort
from agent_runtime.messages import Message
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
)
from agent_runtime.models.test import ScriptedModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.tools import AbortSignal, ToolContext, tool

pytestmark = pytest.mark.asyncio

POLL = 0.02


class EndlessModel(Model):
    """Streams text until its consumer stops reading."""

    name = "test/endless"

    def __init__(self) -> None:
        self.streaming = asyncio.Event()  # set once a few deltas went out
        self.closed = False

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        try:
            for count in range(1, 1_000_000):
                await asyncio.sleep(0.005)
                if count == 3:
                    self.streaming.set()
                yield TextDelta(text="more ")
        finally:
            self.closed = True


def _runtime(backend: Backend, clock: FakeClock, name: str, **config: object) -> Runtime:
    registry = Registry()
    registry.add(name, create_agent(**config))
    return backend.runtime(registry, clock=clock, lease_seconds=30, sleep=clock.sleep, abort_poll_seconds=POLL)


async def test_an_abort_cancels_a_model_stream_in_flight(backend: Backend, clock: FakeClock) -> None:
    model = EndlessModel()
    rt = _runtime(backend, clock, "talker", model=model)
    admitted = await rt.prompt("talker", "x", "talk forever")
    drain = asyncio.ensure_future(rt.drain(InstanceRef("talker", "x"), deadline=clock() + 10_000))
    async with asyncio.timeout(5):
        await model.streaming.wait()

    await rt.abort("talker", "x")
    async with asyncio.timeout(20 * POLL + 1):  # about one poll, with room for a slow machine
        await drain

    assert model.closed  # the stream was cancelled, not left running
    record = await rt.submission("talker", "x", admitted.record.id)
    assert record.outcome is Outcome.aborted and record.error and record.error["type"] == "aborted"
    page = await rt.history("talker", "x", "default")
    # The unfinished reply is not kept: history holds the input alone.
    assert [m.message.role for m in page.messages] == ["user"]


async def test_a_running_tool_is_told_and_the_calls_after_it_do_not_run(backend: Backend, clock: FakeClock) -> None:
    calls: list[str] = []
    running = asyncio.Event()

    @tool
    async def long_job(ctx: ToolContext, step: str) -> str:
        """Works until its submission is aborted."""
        calls.append(step)
        running.set()
        await asyncio.wait_for(ctx.abort.wait(), timeout=5)
        return f"{step} stopped: {ctx.abort.reason}"

    model = ScriptedModel([[ToolCall("long_job", {"step": "one"}), ToolCall("long_job", {"step": "two"})]])
    rt = _runtime(backend, clock, "worker-agent", model=model, tools=[long_job])
    admitted = await rt.prompt("worker-agent", "x", "go")
    drain = asyncio.ensure_future(rt.drain(InstanceRef("worker-agent", "x"), deadline=clock() + 10_000))
    async with asyncio.timeout(5):
        await running.wait()

    await rt.abort("worker-agent", "x")
    async with asyncio.timeout(20 * POLL + 1):
        await drain

    assert calls == ["one"]  # the second call never started
    record = await rt.submission("worker-agent", "x", admitted.record.id)
    assert record.outcome is Outcome.aborted
    page = await rt.history("worker-agent", "x", "default")
    results = [p for m in page.messages for p in m.message.parts if p.type == "tool_result"]
    # The told tool's own answer stands; the call after it never ran.
    assert [r.status for r in results] == ["ok", "interrupted"]
    assert results[0].content == "one stopped: aborted on request"
    assert "not run" in results[1].content


async def test_a_short_call_reads_no_abort_flag(backend: Backend, clock: FakeClock) -> None:
    """Polling starts one interval into a call: quick turns cost no extra read."""
    reads: list[str] = []
    original = backend.stores.ledger.abort_requested

    async def counted(instance: InstanceRef, submission_id: str) -> bool:
        reads.append(submission_id)
        return await original(instance, submission_id)

    backend.stores.ledger.abort_requested = counted  # type: ignore[method-assign]
    rt = _runtime(backend, clock, "echo", model="test/echo")
    admitted = await rt.prompt("echo", "x", "hello")
    await rt.drain(InstanceRef("echo", "x"), deadline=clock() + 10_000)
    assert (await rt.submission("echo", "x", admitted.record.id)).outcome is Outcome.completed
    assert reads == []


async def test_an_abort_closes_a_real_model_stream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the anthropic provider and a socket: the reply would stream for 10 s; an abort
    ends the submission within about a poll, without a second request."""
    from agent_runtime.models.anthropic import AnthropicModel
    from agent_runtime.models.base import allow_model_requests
    from agent_runtime.testing.backends import memory_backend
    from agent_runtime.testing.fake_anthropic import FakeAnthropic, FakeAnthropicServer

    fake = FakeAnthropic(["word " * 200], api_key="sk-test")
    clock = FakeClock()
    backend = memory_backend()
    with allow_model_requests(True), FakeAnthropicServer(fake, event_delay=0.05) as server:
        model = AnthropicModel("claude-haiku-4-5", api_key="sk-test", base_url=server.base_url)
        rt = _runtime(backend, clock, "talker", model=model)
        admitted = await rt.prompt("talker", "x", "talk")
        drain = asyncio.ensure_future(rt.drain(InstanceRef("talker", "x"), deadline=clock() + 10_000))
        await asyncio.sleep(0.5)  # a few deltas in
        started = asyncio.get_running_loop().time()
        await rt.abort("talker", "x")
        async with asyncio.timeout(5):
            await drain
        took = asyncio.get_running_loop().time() - started
        await model.aclose()

    assert took < 1.0  # not the 10 s the reply would have taken
    record = await rt.submission("talker", "x", admitted.record.id)
    assert record.outcome is Outcome.aborted
    assert len(fake.requests) == 1  # one request, cancelled; no retry after the abort


# --- the pieces: a signal's listeners, the scope a model call runs in ---------------------


async def test_a_signal_calls_its_listeners_once_and_forgets_on_request() -> None:
    signal = AbortSignal()
    heard: list[str] = []
    forget = signal.on_abort(lambda: heard.append("kept"))
    signal.on_abort(lambda: heard.append("other"))
    forgotten = signal.on_abort(lambda: heard.append("forgotten"))
    forgotten()
    signal.abort("stop")
    signal.abort("again")  # listeners hear the first abort only
    assert heard == ["kept", "other"] and signal.reason == "again"
    forget()  # harmless once called
    signal.on_abort(lambda: heard.append("late"))  # already set: called at once
    assert heard == ["kept", "other", "late"]


async def test_an_abort_inside_the_scope_cancels_the_wait_and_raises_abort_requested() -> None:
    signal = AbortSignal()
    asyncio.get_running_loop().call_later(0.01, signal.abort)
    with pytest.raises(AbortRequested):
        async with cancelled_on_abort(signal, "sub-1"):
            await asyncio.sleep(5)
    task = asyncio.current_task()
    assert task is not None and task.cancelling() == 0
    await asyncio.sleep(0)  # no cancellation left pending on the task


async def test_a_scope_left_before_the_abort_no_longer_reaches_the_task() -> None:
    signal = AbortSignal()
    async with cancelled_on_abort(signal, "sub-1"):
        await asyncio.sleep(0)
    signal.abort()
    await asyncio.sleep(0.01)  # would raise CancelledError if the abort still reached us


async def test_a_timeout_around_the_scope_stays_a_timeout() -> None:
    signal = AbortSignal()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01), cancelled_on_abort(signal, "sub-1"):
            await asyncio.sleep(5)
    signal.abort()
    await asyncio.sleep(0)


async def test_a_model_stream_is_closed_by_the_attempt_that_read_it(backend: Backend, clock: FakeClock) -> None:
    """Once its reply is read, a model's stream is closed at once, in the attempt's own
    task, not later by the garbage collector through the event loop."""

    class Tidy(Model):
        name = "test/tidy"
        closed_in: asyncio.Task[object] | None = None

        async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
            try:
                yield ResponseDone(response=ModelResponse(message=Message.assistant("done")))
                yield TextDelta(text="never read")
            finally:
                Tidy.closed_in = asyncio.current_task()

    rt = _runtime(backend, clock, "tidy", model=Tidy())
    await rt.prompt("tidy", "x", "hi")
    drain = asyncio.ensure_future(rt.drain(InstanceRef("tidy", "x"), deadline=clock() + 10_000))
    await drain
    assert Tidy.closed_in is drain
