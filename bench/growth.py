"""Per-run overhead growth: does a run get slower as its instance's history grows?

300 sequential runs into one instance (memory adapters, zero-latency model, one tool
offered to the model each turn); prints the median time of runs 1-50 and 251-300 and
their ratio (CPU time of the process). Goal: ratio <= 1.1: a run must not cost more
as the history grows.

    python bench/growth.py [runs]
    python bench/growth.py --profile      # cProfile of the last 50 runs, top 25
"""

from __future__ import annotations

import asyncio
import cProfile
import gc
import pstats
import statistics
import sys
import time

from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.test import FunctionModel
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import memory_backend
from agent_runtime.tools import tool

WINDOW = 50


@tool
async def lookup(city: str, units: str = "metric") -> str:
    """Look up the weather of a city.

    Args:
        city: the city's name
        units: metric or imperial
    """
    return f"sunny in {city}"


def runtime() -> Runtime:
    registry = Registry()
    registry.add("growth", create_agent(model=FunctionModel(lambda request: "ok, noted"), tools=[lookup]))
    return memory_backend().runtime(registry)


async def run_many(runs: int, profile_from: int | None = None) -> list[float]:
    rt = runtime()
    instance = InstanceRef("growth", "one")
    profiler = cProfile.Profile()
    samples: list[float] = []
    for n in range(runs):
        if n == profile_from:
            profiler.enable()
        start = time.process_time()
        await rt.prompt(instance.agent, instance.id, f"message number {n} of an ordinary length")
        await rt.drain(instance, deadline=rt.clock() + 60)
        samples.append(time.process_time() - start)
    if profile_from is not None:
        profiler.disable()
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return samples


def main() -> None:
    profile = "--profile" in sys.argv
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    runs = int(args[0]) if args else 300
    gc.collect()
    samples = asyncio.run(run_many(runs, runs - WINDOW if profile else None))
    first, last = statistics.median(samples[:WINDOW]), statistics.median(samples[-WINDOW:])
    print(f"{runs} sequential runs into one instance (memory adapters, zero-latency model):")
    print(f"  median of runs 1-{WINDOW}: {first * 1e6:.0f} us   of the last {WINDOW}: {last * 1e6:.0f} us")
    print(f"  ratio last/first {last / first:.2f} (goal <= 1.1)")


if __name__ == "__main__":
    main()
