"""Streaming figures: event-log writes per 1,000 tokens, and local delta latency.

    python bench/streaming.py [--tokens 1000] [--rate 80] [--latency-tokens 150]

1. DynamoDB writes per 1,000 streamed tokens (moto, the real event-log adapter): a model
   writes `--tokens` one-word deltas (a) as fast as it can, (b) at `--rate` tokens a
   second with nobody watching, (c) at that rate with one WebSocket subscriber. Every
   PutItem of an event batch is counted, as well as the run's other writes.
2. Delta latency on the local stack (`LocalStack`, the real WebSocket handler and
   emulator, the worker in its own process): the `ticker` agent (bench/agents/ticker.py)
   stamps each token with the time it was emitted; a `websockets` client subscribed to the
   instance notes when each token arrives. Median and p90 over all tokens.

AGENT_RUNTIME_EVENT_FLUSH_LIVE_SECONDS / _QUIET_SECONDS change the intervals for both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from moto import mock_aws

from agent_runtime import ModelRequest, create_agent, settings
from agent_runtime.adapters.memory_events import MemoryPoster
from agent_runtime.ids import InstanceRef
from agent_runtime.messages import Message, TextPart, Usage
from agent_runtime.models.base import Model, ModelEvent, ModelResponse, ResponseDone, TextDelta
from agent_runtime.ports import Subscription
from agent_runtime.registry import Registry
from agent_runtime.streaming import Broadcaster
from agent_runtime.testing.backends import moto_backend
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb

HERE = Path(__file__).resolve().parent


class Words(Model):
    """`tokens` one-word deltas, at `rate` a second (None: as fast as possible)."""

    name = "test/words"

    def __init__(self, tokens: int, rate: float | None) -> None:
        self.tokens = tokens
        self.rate = rate

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        start = time.monotonic()
        words = []
        for n in range(self.tokens):
            if self.rate:
                await asyncio.sleep(max(0.0, start + n / self.rate - time.monotonic()))
            words.append(f"w{n} ")
            yield TextDelta(text=words[-1])
        message = Message(role="assistant", parts=[TextPart(text="".join(words))])
        yield ResponseDone(response=ModelResponse(message=message, usage=Usage(output_tokens=self.tokens)))


WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


def count_writes(client: Any) -> Counter[str]:
    """Count write calls: event batches (PutItem of an ``EV#`` item) and the rest."""
    counts: Counter[str] = Counter()

    def on_call(params: dict[str, Any], model: Any, **_: Any) -> None:
        if model.name not in WRITES:
            return
        sk = params.get("Item", {}).get("sk", {}).get("S", "")
        counts["event batch" if model.name == "PutItem" and sk.startswith("EV#") else "ledger"] += 1

    client.meta.events.register("before-parameter-build.dynamodb", on_call)
    return counts


async def run_one(tokens: int, rate: float | None, watched: bool) -> tuple[Counter[str], float]:
    with mock_aws():
        backend = moto_backend()
        registry = Registry()
        registry.add("talker", create_agent(model=Words(tokens, rate)))
        broadcaster = None
        if watched:
            broadcaster = Broadcaster(backend.connections, MemoryPoster())
            await backend.connections.add(Subscription("watcher", InstanceRef("talker", "t"), subscribed=True), now=time.time())
        runtime = backend.runtime(registry, broadcaster=broadcaster, stream_options=settings.event_flush_options())
        await runtime.prompt("talker", "t", "talk")
        counts = count_writes(backend.clients["dynamodb"])
        started = time.monotonic()
        await runtime.drain(InstanceRef("talker", "t"), deadline=runtime.clock() + 600)
        return counts, time.monotonic() - started


def writes_figures(tokens: int, rate: float) -> None:
    print(f"DynamoDB writes while the worker streams {tokens} tokens (moto):")
    for label, pace, watched in (
        ("as fast as the model can", None, False),
        (f"{rate:g} tokens/s, nobody watching", rate, False),
        (f"{rate:g} tokens/s, one WebSocket subscriber", rate, True),
    ):
        counts, seconds = asyncio.run(run_one(tokens, pace, watched))
        per_1000 = counts["event batch"] * 1000 / tokens
        print(
            f"  {label:<44} event batches {counts['event batch']:>3} ({per_1000:5.1f} per 1,000 tokens, goal <= 20)"
            f"   ledger {counts['ledger']}   {seconds:5.1f} s"
        )


async def latency_run(tokens: int, rate: float) -> list[float]:
    import httpx
    from websockets.asyncio.client import connect

    from agent_runtime.dev import LocalStack

    with tempfile.TemporaryDirectory() as state, LocalStack(
        port=0, state_dir=Path(state), agents_dir=str(HERE / "agents"), pollers=1
    ) as stack:
        delays: list[float] = []
        async with connect(f"{stack.ws_url}?agent=ticker&id=bench") as ws:
            await ws.send(json.dumps({"v": 1, "type": "subscribe"}))
            while json.loads(await ws.recv())["type"] != "ready":
                pass
            async with httpx.AsyncClient(base_url=stack.url, timeout=60) as http:
                reply = await http.post("/agents/ticker/bench", json={"message": f"{tokens} {rate:g}", "wait": 0})
                reply.raise_for_status()
            while True:
                frame = json.loads(await ws.recv())
                received = time.time()
                event = frame.get("event") or {}
                if event.get("type") == "text_delta":
                    delays.extend(received - float(stamp) for stamp in event["text"].split())
                if event.get("type") == "agent_end":
                    return delays


def latency_figures(tokens: int, rate: float) -> None:
    delays = sorted(asyncio.run(latency_run(tokens, rate)))
    ms = [d * 1000 for d in delays]
    p90 = ms[int(len(ms) * 0.9)]
    print(f"Delta latency on the local stack, model emits -> WebSocket client receives ({len(ms)} tokens at {rate:g}/s):")
    print(f"  median {statistics.median(ms):.0f} ms   p90 {p90:.0f} ms   max {ms[-1]:.0f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=80.0)
    parser.add_argument("--latency-tokens", type=int, default=150)
    args = parser.parse_args(argv)
    serialize_moto_dynamodb()
    options = settings.event_flush_options()
    if options:
        print(f"flush intervals from the environment: {options}")
    writes_figures(args.tokens, args.rate)
    latency_figures(args.latency_tokens, args.rate)


if __name__ == "__main__":
    sys.exit(main())
