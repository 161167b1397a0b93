"""Runtime overhead, printed as figures.

1. AWS API calls per single-turn submission, split admit / worker (moto, counted with
   botocore `before-call` hooks). Goal: <= 8 in all.
2. Bytes sent to DynamoDB in write requests for one turn at history length 10 and
   1,000 (goal: ratio <= 1.1: appending never rewrites history).
3. Runtime overhead per turn with a zero-latency model on the memory adapters.

    python bench/overhead.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections import Counter
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

from moto import mock_aws

from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.test import FunctionModel
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, memory_backend, moto_backend
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb

WRITES = {"PutItem", "UpdateItem", "TransactWriteItems", "BatchWriteItem", "DeleteItem"}


class Meter:
    """Counts calls and write-request bytes through botocore's event hooks."""

    def __init__(self, clients: dict[str, Any]) -> None:
        self.calls: Counter[str] = Counter()
        self.write_bytes = 0
        for client in clients.values():
            client.meta.events.register("before-call.*.*", self._on_call)

    def _on_call(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1
        if model.name in WRITES:
            self.write_bytes += len(json.dumps(params, default=str))

    def take(self) -> tuple[Counter[str], int]:
        calls, written = self.calls, self.write_bytes
        self.calls, self.write_bytes = Counter(), 0
        return calls, written


def registry() -> Registry:
    r = Registry()
    r.add("bench", create_agent(model=FunctionModel(lambda request: "ok")))
    return r


async def one_turn(runtime: Runtime, instance: InstanceRef, meter: Meter) -> tuple[Counter[str], Counter[str], int]:
    meter.take()
    await runtime.prompt(instance.agent, instance.id, "a question of ordinary length for one turn")
    admit, _ = meter.take()
    await runtime.drain(instance, deadline=runtime.clock() + 60)
    worker, written = meter.take()
    return admit, worker, written


async def fill(runtime: Runtime, instance: InstanceRef, messages: int) -> None:
    for n in range(messages // 2):
        await runtime.prompt(instance.agent, instance.id, f"filler {n}")
    await runtime.drain(instance, deadline=runtime.clock() + 3600)


def aws_figures() -> None:
    serialize_moto_dynamodb()
    with mock_aws():
        backend: Backend = moto_backend()
        meter = Meter(backend.clients)
        runtime = backend.runtime(registry())
        warm = InstanceRef("bench", "warm")
        asyncio.run(one_turn(runtime, warm, meter))  # first turn on an instance
        admit, worker, _ = asyncio.run(one_turn(runtime, warm, meter))
        print("AWS API calls per single-turn submission (steady state, moto):")
        print(f"  admit  {sum(admit.values()):>2}  {dict(admit)}")
        print(f"  worker {sum(worker.values()):>2}  {dict(worker)}")
        total = sum(admit.values()) + sum(worker.values())
        # Event batches are the only PutItem calls: one at admission (submission_queued),
        # one per flush in the worker (a single-turn run flushes once, with `idle`).
        events = admit["dynamodb:PutItem"] + worker["dynamodb:PutItem"]
        print(f"  total  {total:>2}  = ledger {total - events} (goal <= 8) + event log {events}")

        written = {}
        for length in (10, 1000):
            instance = InstanceRef("bench", f"h{length}")
            asyncio.run(fill(runtime, instance, length))
            fresh = backend.runtime(registry())  # a cold worker reads the history once
            asyncio.run(one_turn(fresh, instance, meter))
            _, _, written[length] = asyncio.run(one_turn(fresh, instance, meter))
        ratio = written[1000] / written[10]
        print("Bytes in DynamoDB write requests for one turn:")
        print(f"  history 10: {written[10]} B   history 1000: {written[1000]} B   ratio {ratio:.3f} (goal <= 1.1)")


def memory_figures(turns: int = 3000) -> None:
    backend = memory_backend()
    runtime = backend.runtime(registry())
    instances = [InstanceRef("bench", f"m{i}") for i in range(30)]

    async def go() -> list[float]:
        samples = []
        for round_ in range(turns // len(instances)):
            for instance in instances:
                await runtime.prompt(instance.agent, instance.id, f"m{round_}")
            start = time.perf_counter()
            for instance in instances:
                await runtime.drain(instance, deadline=runtime.clock() + 60)
            samples.append((time.perf_counter() - start) / len(instances))
        return samples

    samples = asyncio.run(go())
    print(f"Runtime overhead per turn, zero-latency model, memory adapters ({turns} turns):")
    print(f"  median {statistics.median(samples) * 1e6:.0f} us   p90 {sorted(samples)[int(len(samples) * 0.9)] * 1e6:.0f} us")


if __name__ == "__main__":
    aws_figures()
    memory_figures()
