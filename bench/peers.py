"""One agent run side by side with its peers, in one process.

CPU time of this process per run (steadier than wall time on a shared machine).
A run: the user's prompt, a model turn that calls one tool, the tool, a model turn that
answers. The model answers at once (zero latency), so what is measured is each
framework's own overhead per run:

- agent-runtime: durable (admission, lease, journaled checkpoints, settle, event log)
  on the memory adapters, a fresh instance per run;
- openai-agents: `Runner.run` with its scripted test model (`agents.testing`), tracing off;
- pydantic-ai: `Agent.run` with `FunctionModel`.

The frameworks take turns: each round runs a block of `runs` runs of each, in an order
that rotates from round to round, and a figure is the median over the rounds of each
block's median (a ratio: of the ratios within each round). A machine that other work
slows for a while then slows every framework's block of that round alike, instead of
whichever one happened to be measured at the time.

    pip install -e '.[bench]'        # openai-agents, pydantic-ai-slim
    python bench/peers.py [--rounds N] [--runs N] [--warmup N]

Goal: agent-runtime <= 0.4x openai-agents' time per run, durability included.
"""

from __future__ import annotations

import argparse
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


async def block(run: Run, runs: int, first: int) -> float:
    """Median CPU seconds of `runs` runs numbered from `first`."""
    gc.collect()  # each block starts without the garbage of the one before
    samples = []
    for n in range(first, first + runs):
        start = time.process_time()
        await run(n)
        samples.append(time.process_time() - start)
    return statistics.median(samples)


async def measure(makers: dict[str, Callable[[], Run]], *, rounds: int, runs: int, warmup: int) -> dict[str, list[float]]:
    """Each framework's block medians, one per round, the frameworks taking turns."""
    made = {name: make() for name, make in makers.items()}
    for run in made.values():
        for n in range(warmup):
            await run(-1 - n)
    names = list(made)
    medians: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            medians[name].append(await block(made[name], runs, r * runs))
    return medians


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30, help="rounds of blocks (default 30)")
    parser.add_argument("--runs", type=int, default=20, help="runs per framework and round (default 20)")
    parser.add_argument("--warmup", type=int, default=30, help="runs per framework before measuring (default 30)")
    return parser.parse_args(argv)


def main() -> None:
    args = parse_args(sys.argv[1:])
    with _without_repo_root():
        missing = [package for package, module in PEERS.items() if importlib.util.find_spec(module) is None]
    if missing:
        print(
            f"missing: {', '.join(missing)}. Install the bench extra: pip install -e '.[bench]' "
            "(openai-agents, pydantic-ai-slim); measuring without them.",
            file=sys.stderr,
        )
    ours = "agent-runtime (durable, memory)"
    makers: dict[str, Callable[[], Run]] = {ours: agent_runtime_run}
    if "openai-agents" not in missing:
        makers["openai-agents Runner"] = openai_agents_run
    if "pydantic-ai" not in missing:
        makers["pydantic-ai FunctionModel"] = pydantic_ai_run
    medians = asyncio.run(measure(makers, rounds=args.rounds, runs=args.runs, warmup=args.warmup))
    print(
        f"One run (2 model turns + 1 tool, zero-latency model): median over {args.rounds} rounds "
        f"of the median of {args.runs} runs each"
    )
    for name, seconds in medians.items():
        ratios = [a / b for a, b in zip(medians[ours], seconds, strict=True)]
        spread = f"(rounds {min(ratios):.2f}-{max(ratios):.2f})" if name != ours else ""
        print(
            f"  {name:<34} {statistics.median(seconds) * 1e6:8.0f} us   "
            f"agent-runtime / this = {statistics.median(ratios):.2f}x {spread}"
        )
    if "openai-agents Runner" in medians:
        ratio = statistics.median(a / b for a, b in zip(medians[ours], medians["openai-agents Runner"], strict=True))
        print(f"  goal: agent-runtime <= 0.40x openai-agents (now {ratio:.2f}x)")


if __name__ == "__main__":
    main()
