"""Request size as a session's history grows, with compaction on (memory adapters).

Drives one instance through 2,500 prompts (5,000 history messages) with a deterministic
model and prints the estimated tokens of the model request when the history holds about
100, 1,000 and 5,000 messages, with compaction on and (for the first two) off, plus the
summaries written and the wall time.

    python bench/compaction.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from agent_runtime.compaction import SUMMARY_INSTRUCTIONS, Compaction, estimate_tokens
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import memory_backend

INST = InstanceRef("ticket", "T-1")
WINDOW = 20_000
MARKS = (100, 1000, 5000)


def run(prompts: int, compaction: Compaction | None) -> tuple[dict[int, int], int, float]:
    sizes: dict[int, int] = {}
    summaries = 0

    def model(request: ModelRequest) -> str:
        nonlocal summaries
        if request.system == SUMMARY_INSTRUCTIONS:
            summaries += 1
            return "The customer asked about orders, refunds and shipping; all answered."
        return f"Noted: {last_user_text(request)[:60]}"

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(model), compaction=compaction))
    backend = memory_backend()
    runtime: Runtime = backend.runtime(registry)
    seen: list[Any] = []
    original = FunctionModel.stream

    async def drive() -> None:
        for n in range(prompts):
            await runtime.prompt(INST.agent, INST.id, f"Question {n}: where is my order, and can I change the address? " * 2)
            await runtime.drain(INST, deadline=runtime.clock() + 60)
            length = 2 * (n + 1)
            for mark in MARKS:
                if length - 2 < mark <= length and seen:
                    sizes[mark] = seen[-1]

    async def measured(self: FunctionModel, request: ModelRequest) -> Any:
        if request.system != SUMMARY_INSTRUCTIONS:
            seen.append(estimate_tokens(request.messages, request.system))
        async for event in original(self, request):
            yield event

    FunctionModel.stream = measured  # type: ignore[method-assign]
    started = time.perf_counter()
    try:
        asyncio.run(drive())
    finally:
        FunctionModel.stream = original  # type: ignore[method-assign]
    return sizes, summaries, time.perf_counter() - started


def main() -> None:
    on, summaries, seconds = run(2500, Compaction(context_window=WINDOW, threshold=0.8, keep_recent=20))
    off, _, off_seconds = run(500, None)
    print(f"Estimated request tokens by history length (context window {WINDOW}, threshold 0.8):")
    for mark in MARKS:
        without = f"{off[mark]:>7}" if mark in off else "      -"
        print(f"  {mark:>5} messages   compaction on {on.get(mark, 0):>6}   off {without}")
    print(f"  summaries written: {summaries} over 2,500 prompts ({seconds:.1f} s; without compaction, 500 prompts {off_seconds:.1f} s)")


if __name__ == "__main__":
    main()
