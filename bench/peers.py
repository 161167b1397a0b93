"""One agent run side by side with its peers, in one process.

CPU time of this process per run (steadier than wall time on a shared machine).
A run: the user's prompt, a model turn that calls one tool, the tool, a model turn that
answers. The model answers at once (zero latency), so what is measured is each
framework's own overhead per run:

- agent-runtime: durable (admission, lease, journaled checkpoints, settle, event log)
  on the memory adapters, a fresh instance per run;
- openai-agents: `Runner.run` with its scripted test model (`agents.testing`), tracing off;
- pydantic-ai: `Agent.run` with `FunctionModel`.

    pip install -e '.[bench]'        # openai-agents, pydantic-ai-slim
    python bench/peers.py [runs]

Goal: agent-runtime <= 0.4x openai-agents' time per run, durability included.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.testing.backends import memory_backend
from agent_runtime.tools import tool

PROMPT = "What is the weather in Paris?"
ANSWER = "It is sunny in Paris."
ROOT = Path(__file__).resolve().parents[1]
PEERS = {"openai-agents": "agents", "pydantic-ai": "pydantic_ai"}

Run = Callable[[int], Awaitable[None]]


async def weather(city: str) -> str:
    """The weather of a city.

    Args:
        city: the city's name
    """
    return f"sunny in {city}"


def agent_runtime_run() -> Run:
    def answer(request: ModelRequest) -> str | ToolCall:
        if request.messages[-1].role == "user" and request.messages[-1].text == PROMPT:
            return ToolCall("weather", {"city": "Paris"})
        return ANSWER

    registry = Registry()
    registry.add("peer", create_agent(model=FunctionModel(answer), tools=[tool(weather)]))
    runtime = memory_backend().runtime(registry)

    async def run(n: int) -> None:
        instance = InstanceRef("peer", f"run-{n}")
        await runtime.prompt(instance.agent, instance.id, PROMPT)
        await runtime.drain(instance, deadline=runtime.clock() + 60)

    return run


@contextlib.contextmanager
def _without_repo_root() -> Iterator[None]:
    """The repository's own ``agents/`` folder (the application's agents) shadows the
    openai-agents package, whose import name is also ``agents``: look past it."""
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() not in (ROOT, ROOT / "bench")]
    if getattr(sys.modules.get("agents"), "__file__", "").startswith(str(ROOT)):
        del sys.modules["agents"]
    try:
        yield
    finally:
        sys.path[:] = saved


def openai_agents_run() -> Run:
    with _without_repo_root():
        from agents.testing import ScriptedModel, assistant_message, function_call

        from agents import Agent, RunConfig, Runner, function_tool

    weather_tool = function_tool(weather)
    config = RunConfig(tracing_disabled=True)

    async def run(n: int) -> None:
        model = ScriptedModel(
            [[function_call("weather", {"city": "Paris"}, call_id=f"call-{n}")], [assistant_message(ANSWER)]]
        )
        agent = Agent(name="peer", instructions="Answer.", model=model, tools=[weather_tool])
        result = await Runner.run(agent, PROMPT, run_config=config)
        assert result.final_output == ANSWER

    return run


def pydantic_ai_run() -> Run:
    from pydantic_ai import Agent
    from pydantic_ai.messages import (
        ModelMessage,
        ModelResponse,
        TextPart,
        ToolCallPart,
        ToolReturnPart,
    )
    from pydantic_ai.models.function import AgentInfo
    from pydantic_ai.models.function import FunctionModel as PydanticFunctionModel

    def answer(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if any(isinstance(part, ToolReturnPart) for part in messages[-1].parts):
            return ModelResponse(parts=[TextPart(ANSWER)])
        return ModelResponse(parts=[ToolCallPart("weather", {"city": "Paris"})])

    agent = Agent(PydanticFunctionModel(answer), instructions="Answer.", tools=[weather])

    async def run(n: int) -> None:
        result = await agent.run(PROMPT)
        assert result.output == ANSWER

    return run


async def measure(run: Run, runs: int, warmup: int = 30) -> float:
    """Median seconds per run, after `warmup` runs."""
    for n in range(warmup):
        await run(-1 - n)
    gc.collect()
    samples = []
    for n in range(runs):
        start = time.process_time()
        await run(n)
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with _without_repo_root():
        missing = [package for package, module in PEERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(
            f"missing: {', '.join(missing)}. Install the bench extra: pip install -e '.[bench]' "
            "(openai-agents, pydantic-ai-slim); measuring without them.",
            file=sys.stderr,
        )
    makers: dict[str, Callable[[], Run]] = {"agent-runtime (durable, memory)": agent_runtime_run}
    if "openai-agents" not in missing:
        makers["openai-agents Runner"] = openai_agents_run
    if "pydantic-ai" not in missing:
        makers["pydantic-ai FunctionModel"] = pydantic_ai_run
    times = {name: asyncio.run(measure(make(), runs)) for name, make in makers.items()}
    ours = times["agent-runtime (durable, memory)"]
    print(f"One run (2 model turns + 1 tool, zero-latency model), median of {runs}:")
    for name, seconds in times.items():
        print(f"  {name:<34} {seconds * 1e6:8.0f} us   agent-runtime / this = {ours / seconds:.2f}x")
    if "openai-agents Runner" in times:
        print(f"  goal: agent-runtime <= 0.40x openai-agents (now {ours / times['openai-agents Runner']:.2f}x)")


if __name__ == "__main__":
    main()
