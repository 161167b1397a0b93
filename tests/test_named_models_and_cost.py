"""Named models with fallbacks, usage by model, cost and budgets, on both adapters: the
first entry overloaded before answering, the second answers and is recorded; a known usage
gives the expected cost; a budget stops the next model call; a permanent provider error
fails in one attempt and a transient one's retry-after is honoured."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from agent_runtime.definition import AgentContext, create_agent, set_models
from agent_runtime.errors import DefinitionError, PermanentModelError, TransientModelError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import Message, Usage
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    register_provider,
)
from agent_runtime.models.cost import Budget, Price, cost_usd, set_prices
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from tests.served import Served

INST = InstanceRef("named", "N-1")
CTX = AgentContext(id="N-1", agent="named")
calls: Counter[str] = Counter()
failures: dict[str, list[Exception]] = {}


class Scripted(Model):
    """``scripted/<name>``: fails with the queued errors first, then answers with 1000 input and 100 output tokens."""

    def __init__(self, name: str) -> None:
        self.name = f"scripted/{name}"
        self.short = name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        calls[self.short] += 1
        queued = failures.get(self.short, [])
        if queued:
            raise queued.pop(0)
        yield TextDelta(text=f"{self.short} says hi")
        usage = Usage(input_tokens=1000, output_tokens=100, requests=1)
        yield ResponseDone(response=ModelResponse(message=Message.assistant(f"{self.short} says hi"), usage=usage))


register_provider("scripted", Scripted)
set_prices({"scripted/primary": (3.0, 15.0), "scripted/backup": (1.0, 5.0)})


@pytest.fixture(autouse=True)
def reset() -> None:
    calls.clear()
    failures.clear()


def run(backend: Backend, serve: Callable[[Backend, Runtime], Served], **fields: Any) -> Any:
    registry = Registry()
    registry.add(INST.agent, create_agent(**fields))
    runtime = backend.runtime(registry, sleep=lambda s: asyncio.sleep(0))
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "hello"))
    served.until(served.settled(INST, admitted.record.id), timeout=60)
    return runtime, served.record(INST, admitted.record.id)


def test_an_overloaded_first_entry_falls_back_and_the_record_says_who_served(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    failures["primary"] = [TransientModelError("overloaded", status=529)]
    models = {"fast": ["scripted/primary", "scripted/backup"]}
    runtime, record = run(backend, serve, model="fast", models=models)
    assert record.outcome is Outcome.completed, record.error
    assert record.result["text"] == "backup says hi"
    assert record.result["models"] == {"scripted/backup": Usage(input_tokens=1000, output_tokens=100, requests=1).model_dump()}
    assert record.result["cost_usd"] == pytest.approx(0.0015)  # 1000 x $1/M + 100 x $5/M
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    assert [e.model for e in events if e.type == "turn_end"] == ["scripted/backup"]
    settled = [e for e in events if e.type == "submission_settled"][-1]
    assert settled.cost_usd == pytest.approx(0.0015) and settled.usage and settled.usage.input_tokens == 1000
    assert calls == Counter(primary=1, backup=1)


def test_project_level_named_models_serve_every_agent(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], monkeypatch: pytest.MonkeyPatch
) -> None:
    from agent_runtime import definition_checks

    monkeypatch.setattr(definition_checks, "_PROJECT_MODELS", {})
    set_models({"fast": ["scripted/primary", "scripted/backup"], "cheap": ["scripted/backup"]})
    failures["primary"] = [TransientModelError("overloaded", status=529)]
    _, record = run(backend, serve, model="fast")
    assert record.result["text"] == "backup says hi", "the project's list, with its fallback"
    # An agent's own `models=` wins on a shared name; the environment wins over `set_models`.
    assert create_agent(model="fast", models={"fast": ["scripted/backup"]}).configure(CTX).model.entries == ("scripted/backup",)
    monkeypatch.setenv("AGENT_RUNTIME_MODELS", '{"cheap": ["scripted/primary"]}')
    assert create_agent(model="cheap").configure(CTX).model.entries == ("scripted/primary",)
    monkeypatch.setenv("AGENT_RUNTIME_MODELS", "[1]")
    with pytest.raises(DefinitionError, match="AGENT_RUNTIME_MODELS"):
        create_agent(model="cheap").configure(CTX)
    with pytest.raises(DefinitionError, match="a model name has no '/'"):
        set_models({"a/b": ["scripted/primary"]})


def test_a_budget_stops_the_next_model_call(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    from agent_runtime.models.test import FunctionModel, ToolCall  # noqa: F401

    _, record = run(backend, serve, model="scripted/primary", budget=Budget(max_tokens=500))
    assert record.outcome is Outcome.completed, "the first call is allowed: nothing was spent yet"

    class Looping(Scripted):
        async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
            calls["loop"] += 1
            usage = Usage(input_tokens=1000, output_tokens=100, requests=1)
            call = Message(role="assistant", parts=[{"type": "tool_call", "id": f"c{calls['loop']}", "name": "missing", "arguments": {}}])  # type: ignore[list-item]
            yield ResponseDone(response=ModelResponse(message=call, usage=usage))

    calls.clear()
    _, stopped = run(backend, serve, model=Looping("primary"), budget=Budget(max_usd=0.005))
    assert stopped.outcome is Outcome.failed and stopped.error["type"] == "budget_exceeded"
    assert calls["loop"] == 2, "$0.0045 after one call, $0.009 after two: no third call"


def test_cost_of_a_known_usage() -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=200_000, cache_read_tokens=500_000, cache_write_tokens=100_000)
    total, unpriced = cost_usd({"anthropic/claude-haiku-4-5": usage, "acme/unknown": usage})
    assert total == pytest.approx(1.0 + 1.0 + 0.05 + 0.125) and unpriced == ["acme/unknown"]
    assert Price(2.0, 8.0, cache_read=0.5).of(Usage(input_tokens=1_000_000, cache_read_tokens=1_000_000)) == 2.5
    with pytest.raises(DefinitionError, match="models"):
        create_agent(model="fast", models={"fast": []})
    with pytest.raises(DefinitionError, match="budget"):
        Budget()


def test_errors_by_class(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    failures["primary"] = [PermanentModelError("anthropic 400 invalid_request_error: bad", details={"status": 400})]
    _, refused = run(backend, serve, model="scripted/primary")
    assert refused.outcome is Outcome.failed and refused.attempts == 1
    assert refused.error["type"] == "model_request_refused"
    failures["primary"] = [TransientModelError("overloaded", status=529), TransientModelError("overloaded", status=529, retry_after=0.2)]
    _, recovered = run(backend, serve, model="scripted/primary")
    assert recovered.outcome is Outcome.completed and recovered.attempts == 3


def test_retry_after_is_honoured(backend: Backend) -> None:
    from agent_runtime.testing.backends import FakeClock

    clock = FakeClock()
    times: list[float] = []

    class Timed(Scripted):
        async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
            times.append(clock())
            async for event in super().stream(request):
                yield event

    failures["primary"] = [TransientModelError("rate limited", status=429, retry_after=50)]
    registry = Registry()
    registry.add(INST.agent, create_agent(model=Timed("primary")))
    runtime = backend.runtime(registry, clock=clock, sleep=clock.sleep)
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, "hello"))
    for _ in range(5):
        asyncio.run(runtime.drain(INST, deadline=clock() + 600))
    done = asyncio.run(runtime.submission(INST.agent, INST.id, admitted.record.id))
    assert done.outcome is Outcome.completed and len(times) == 2
    assert times[1] - times[0] >= 50, "the second try waited out the provider's retry-after (the backoff alone is under 2 s)"
