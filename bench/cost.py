"""Cost of one single-turn submission on AWS: calls, capacity units and list-price dollars.

Drives single-turn prompts through the AWS adapters on moto (in process, as
bench/overhead.py does) and meters every call with botocore hooks. Capacity units come
from item sizes (moto does not report consumed capacity): a write costs 1 WCU per KB of
the larger of the item before and after it, a transaction item twice that; a strongly
consistent read 1 RCU per 4 KB read (rounded up per request), an eventually consistent
one half. Items are read for the meter through a client of its own, which is not counted.

List prices, us-east-1 (per million):
  API Gateway HTTP API           $1.00 per request            (one per submission)
  Lambda                         $0.20 per invocation         (the HTTP one and the worker's)
  SQS FIFO                       $0.50 per 64 KB request      (the wake-ups sent)
  DynamoDB on-demand             $0.625 per WRU, $0.125 per RRU
Lambda duration and SQS receive/delete by the event source mapping are left out.

    python bench/cost.py
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

import boto3
from moto import mock_aws

from agent_runtime.adapters.aws.dynamodb import DynamoDBAttempts
from agent_runtime.adapters.aws.dynamodb_claims import Hints
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.models.test import FunctionModel
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import moto_backend
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb

API_GATEWAY_PER_M = 1.00
LAMBDA_REQUEST_PER_M = 0.20
LAMBDA_INVOCATIONS = 2  # the HTTP API's Lambda and the worker's
SQS_FIFO_PER_M = 0.50
WRU_PER_M = 0.625
RRU_PER_M = 0.125
#: Enough for the amortized writes to show (META's head is written every HEAD_LAG settles).
SUBMISSIONS = 64
#: The table's global secondary indexes as (key attributes, projected non-key attributes):
#: a write that puts an item in, takes it out, or changes what one holds there, is also
#: a write to that index (a key change two: out and in), billed like a table write.
INDEXES = {
    "pending": (("pending_shard", "pending_since"), ()),
    "instances": (("agent_name", "active_at"), ("next_seq", "head")),
}


def index_writes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> int:
    """Writes to the table's indexes that one item write causes."""
    before, after = before or {}, after or {}
    writes = 0
    for keys, projected in INDEXES.values():
        was, now = all(k in before for k in keys), all(k in after for k in keys)
        if was != now:
            writes += 1
        elif was and any(before[k] != after[k] for k in keys):
            writes += 2
        elif was and any(before.get(a) != after.get(a) for a in projected):
            writes += 1
    return writes


def attribute_size(value: dict[str, Any]) -> int:
    """DynamoDB's size of one attribute value, in bytes (the documented rules, roughly)."""
    kind, data = next(iter(value.items()))
    if kind == "S":
        return len(data.encode())
    if kind == "N":
        return len(data.strip("-").replace(".", "").lstrip("0")) // 2 + 1
    if kind == "B":
        return len(data)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "L":
        return 3 + sum(1 + attribute_size(v) for v in data)
    if kind == "M":
        return 3 + sum(1 + len(k.encode()) + attribute_size(v) for k, v in data.items())
    return sum(len(str(v)) for v in data)  # SS, NS, BS


def item_size(item: dict[str, Any] | None) -> int:
    return 0 if not item else sum(len(name.encode()) + attribute_size(v) for name, v in item.items())


@dataclass
class Meter:
    """Counts calls, WCU and RCU of every AWS call the runtime makes."""

    reader: Any
    table: str
    calls: Counter[str] = field(default_factory=Counter)
    wcu: float = 0.0
    rcu: float = 0.0
    wcu_by_call: Counter[str] = field(default_factory=Counter)
    index_wcu: float = 0.0
    _pending: threading.local = field(default_factory=threading.local)

    def attach(self, clients: dict[str, Any]) -> None:
        for client in clients.values():
            client.meta.events.register("before-call.*.*", self._count)
        clients["dynamodb"].meta.events.register("before-parameter-build.dynamodb.*", self._before)
        clients["dynamodb"].meta.events.register("after-call.dynamodb.*", self._after)

    def _keys(self, operation: str, params: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
        """(key, weight) of each item a write touches; transaction items weigh double."""
        if operation in ("PutItem", "UpdateItem", "DeleteItem"):
            key = params.get("Key") or {k: params["Item"][k] for k in ("pk", "sk")}
            return [(key, 1)]
        if operation == "TransactWriteItems":
            found = []
            for entry in params["TransactItems"]:
                action = next(iter(entry.values()))
                key = action.get("Key") or {k: action["Item"][k] for k in ("pk", "sk")}
                found.append((key, 2))
            return found
        return []

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self.reader.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
        return item

    def _count(self, model: Any, **_: Any) -> None:
        self.calls[f"{model.service_model.service_name}:{model.name}"] += 1

    def _before(self, model: Any, params: dict[str, Any], **_: Any) -> None:
        keys = self._keys(model.name, params)
        self._pending.writes = [(key, weight, self._get(key)) for key, weight in keys]
        self._pending.consistent = bool(params.get("ConsistentRead"))

    def _after(self, model: Any, parsed: dict[str, Any], **_: Any) -> None:
        for key, weight, before in getattr(self._pending, "writes", []):
            after = self._get(key)
            units = weight * max(1, math.ceil(max(item_size(before), item_size(after)) / 1024))
            self.index_wcu += index_writes(before, after)
            self.wcu += units
            self.wcu_by_call[f"{model.name} {key['sk']['S'].split('#')[0]}"] += units
        self._pending.writes = []
        read = 0
        if model.name == "GetItem":
            read = item_size(parsed.get("Item"))
        elif model.name == "Query":
            read = sum(item_size(item) for item in parsed.get("Items", []))
        if model.name in ("GetItem", "Query"):
            units = max(1, math.ceil(read / 4096))
            self.rcu += units if self._pending.consistent else units / 2

    def take(self) -> Taken:
        taken = Taken(self.calls, self.wcu, self.rcu, self.wcu_by_call, self.index_wcu)
        self.calls, self.wcu, self.rcu, self.wcu_by_call, self.index_wcu = Counter(), 0.0, 0.0, Counter(), 0.0
        return taken


@dataclass
class Taken:
    calls: Counter[str]
    wcu: float
    rcu: float
    wcu_by_call: Counter[str]
    index_wcu: float


def registry() -> Registry:
    r = Registry()
    r.add("bench", create_agent(model=FunctionModel(lambda request: "ok")))
    return r


async def submissions(runtime: Runtime, meter: Meter, count: int, *, cold: bool = False) -> Taken:
    """`count` single-turn prompts to one instance after its first; `cold`: the worker
    forgets what it knew of the instance before each (a claim from another container)."""
    instance = InstanceRef("bench", "cold" if cold else "cost")
    await runtime.prompt(instance.agent, instance.id, "a first question")  # the instance's first turn
    await runtime.drain(instance, deadline=runtime.clock() + 60)
    meter.take()
    for n in range(count):
        if cold:
            assert isinstance(runtime.stores.attempts, DynamoDBAttempts)
            runtime.stores.attempts.hints = Hints()
        await runtime.prompt(instance.agent, instance.id, f"a question of ordinary length, number {n}")
        await runtime.drain(instance, deadline=runtime.clock() + 60)
    return meter.take()


def report(title: str, taken: Taken) -> None:
    per = {name: count / SUBMISSIONS for name, count in taken.calls.items()}
    wcu, rcu, index_wcu = taken.wcu / SUBMISSIONS, taken.rcu / SUBMISSIONS, taken.index_wcu / SUBMISSIONS
    sqs = sum(count for name, count in per.items() if name.startswith("sqs:Send"))
    dollars = {
        "API Gateway": API_GATEWAY_PER_M,
        "Lambda requests": LAMBDA_INVOCATIONS * LAMBDA_REQUEST_PER_M,
        "SQS FIFO": sqs * SQS_FIFO_PER_M,
        "DynamoDB writes": (wcu + index_wcu) * WRU_PER_M,
        "DynamoDB reads": rcu * RRU_PER_M,
    }
    print(f"{title} (moto, mean of {SUBMISSIONS}):")
    print(f"  AWS calls {sum(per.values()):.2f}   {dict(sorted(per.items()))}")
    print(f"  DynamoDB  {wcu:.2f} WCU on the table, {index_wcu:.2f} on its indexes   {rcu:.2f} RCU")
    print(f"  table WCU by call and item  {', '.join(f'{k}: {v / SUBMISSIONS:g}' for k, v in sorted(taken.wcu_by_call.items()))}")
    print(f"  list price per million submissions: ${sum(dollars.values()):.2f}")
    for name, dollars_per_m in dollars.items():
        print(f"    {name:<16} ${dollars_per_m:.3f}")


def main() -> None:
    serialize_moto_dynamodb()
    with mock_aws():
        backend = moto_backend()
        assert backend.resources is not None
        meter = Meter(boto3.client("dynamodb", region_name="us-east-1"), backend.resources.table)
        meter.attach(backend.clients)
        runtime = backend.runtime(registry())
        warm = asyncio.run(submissions(runtime, meter, SUBMISSIONS))
        cold = asyncio.run(submissions(runtime, meter, SUBMISSIONS, cold=True))
    report("One single-turn submission, a warm worker", warm)
    report("The same, claimed by a worker that knows nothing of the instance", cold)


if __name__ == "__main__":
    main()
