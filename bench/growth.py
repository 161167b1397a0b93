"""Per-run overhead growth: does a run get slower as its instance's history grows?

300 sequential runs into one instance (memory adapters, zero-latency model, one tool
offered to the model each turn): the median time of runs 1-50 and of runs 251-300, and
their ratio (CPU time of the process). Goal: ratio <= 1.1: a run must not cost more as
the history grows.

Measured so that the machine's other work cannot pass for growth (or hide it):

- a warm-up instance first takes the process's one-time costs (schemas built on first
  use, caches), which would otherwise land on runs 1-50 only;
- runs 1-50 and 251-300 are taken at the same time: a young instance (its own runtime
  and memory store, empty) and an old one (its own runtime and store, filled by its
  runs 1-250 first, untimed) take turns run by run, so a slow moment of the machine
  slows both windows alike. Each is a fresh runtime's one instance, doing exactly what
  the sequential 300 runs do at those points;
- that is repeated for several rounds (fresh runtimes each), and the ratio printed is
  the median of the rounds' ratios.

    python bench/growth.py [--runs 300] [--rounds 9]
    python bench/growth.py --profile      # cProfile of the old instance's window, top 25
"""

from __future__ import annotations

import argparse
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
WARMUP = 30


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


class Instance:
    """One instance in a runtime of its own, run after run."""

    def __init__(self, name: str) -> None:
        self.rt = runtime()
        self.ref = InstanceRef("growth", name)
        self.runs = 0

    async def run(self) -> float:
        """One run (prompt, drain to its settle); its CPU seconds."""
        start = time.process_time()
        await self.rt.prompt(self.ref.agent, self.ref.id, f"message number {self.runs} of an ordinary length")
        await self.rt.drain(self.ref, deadline=self.rt.clock() + 60)
        self.runs += 1
        return time.process_time() - start


async def one_round(runs: int, profiler: cProfile.Profile | None = None) -> tuple[float, float]:
    """The medians of a young instance's runs 1-`WINDOW` and an old one's last `WINDOW`
    of `runs`, taken in turns."""
    young, old = Instance("young"), Instance("old")
    while old.runs < runs - WINDOW:
        await old.run()
    gc.collect()
    first: list[float] = []
    last: list[float] = []
    for n in range(WINDOW):
        # Alternate which goes first, so neither always runs right after the other.
        for instance, samples in ((young, first), (old, last)) if n % 2 == 0 else ((old, last), (young, first)):
            if profiler is not None and instance is old:
                profiler.enable()
            samples.append(await instance.run())
            if profiler is not None and instance is old:
                profiler.disable()
    return statistics.median(first), statistics.median(last)


async def measure(runs: int, rounds: int, profile: bool) -> list[tuple[float, float]]:
    warm = Instance("warm-up")
    for _ in range(WARMUP):
        await warm.run()
    profiler = cProfile.Profile() if profile else None
    results = [await one_round(runs, profiler) for _ in range(rounds)]
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help=f"runs into the old instance (default 300, at least {2 * WINDOW})")
    parser.add_argument("--rounds", type=int, default=9, help="rounds, each with fresh runtimes (default 9)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the old instance's window")
    args = parser.parse_args(sys.argv[1:])
    if args.runs < 2 * WINDOW:
        parser.error(f"--runs must be at least {2 * WINDOW}")
    results = asyncio.run(measure(args.runs, args.rounds, args.profile))
    ratios = [last / first for first, last in results]
    first = statistics.median(f for f, _ in results)
    last = statistics.median(la for _, la in results)
    print(f"{args.runs} sequential runs into one instance (memory adapters, zero-latency model), {args.rounds} rounds:")
    print(f"  median of runs 1-{WINDOW}: {first * 1e6:.0f} us   of runs {args.runs - WINDOW + 1}-{args.runs}: {last * 1e6:.0f} us")
    print(f"  ratio last/first {statistics.median(ratios):.2f} (rounds {min(ratios):.2f}-{max(ratios):.2f}; goal <= 1.1)")


if __name__ == "__main__":
    main()
