"""How the DynamoDB store finds an instance's head: a warm worker's claim goes straight
to the head its own settle moved to, and falls back to META whenever that hint is not
the whole truth (another worker moved the head, nothing was admitted there)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from agent_runtime.adapters.aws.dynamodb import DynamoDBAttempts
from agent_runtime.ledger import Fence, Outcome
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.contract import INST, claim, draft

pytestmark = pytest.mark.parametrize("backend", ["moto"], indirect=True)


class _Counting:
    """The DynamoDB client, counting the calls made through it by operation."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        self.calls[name] += 1
        return getattr(self._client, name)


def _other_worker(backend: Backend) -> Stores:
    """Stores of another process over the same table (no hints shared)."""
    from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
    from agent_runtime.adapters.aws.s3 import S3Blobs

    assert backend.resources is not None
    blobs = S3Blobs(backend.clients["s3"], backend.resources.bucket)
    return dynamodb_stores(backend.clients["dynamodb"], backend.resources.table, blobs)


async def _run_one(stores: Stores, clock: FakeClock, attempt: str) -> str:
    c = await claim(stores, clock, attempt)
    assert c.state == "claimed" and c.record
    await stores.attempts.settle(INST, c.record.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    return c.record.id


async def test_a_warm_worker_claims_the_next_head_without_reading_meta(backend: Backend, clock: FakeClock) -> None:
    stores = backend.stores
    attempts = stores.attempts
    assert isinstance(attempts, DynamoDBAttempts)
    await stores.ledger.admit(INST, draft("a"), now=clock())
    await _run_one(stores, clock, "a1")
    b = (await stores.ledger.admit(INST, draft("b"), now=clock())).record
    counting = _Counting(attempts.client)
    attempts.client = counting
    try:
        c = await claim(stores, clock, "a2")
    finally:
        attempts.client = counting._client
    assert c.state == "claimed" and c.record and c.record.id == b.id
    assert c.next_sequence == b.sequence + 1
    assert counting.calls == Counter({"update_item": 1})
    # The settle that follows still takes the drained instance out of the pending index.
    await stores.attempts.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == []


async def test_a_hint_overtaken_by_another_worker_falls_back_to_meta(backend: Backend, clock: FakeClock) -> None:
    here, there = backend.stores, _other_worker(backend)
    await here.ledger.admit(INST, draft("a"), now=clock())
    await _run_one(here, clock, "a1")  # here's hint: head = 1
    await here.ledger.admit(INST, draft("b"), now=clock())
    await _run_one(there, clock, "b1")  # the head moved past 1 elsewhere
    c = (await here.ledger.admit(INST, draft("c"), now=clock())).record
    nxt = await claim(here, clock, "c1")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == c.id


async def test_a_hinted_head_held_by_another_worker_is_busy(backend: Backend, clock: FakeClock) -> None:
    here, there = backend.stores, _other_worker(backend)
    await here.ledger.admit(INST, draft("a"), now=clock())
    await _run_one(here, clock, "a1")
    b = (await here.ledger.admit(INST, draft("b"), now=clock())).record
    held = await claim(there, clock, "b1")
    assert held.record and held.record.id == b.id
    busy = await claim(here, clock, "b2")
    assert busy.state == "busy" and busy.record and busy.record.id == b.id


async def test_a_hint_with_nothing_admitted_is_idle(backend: Backend, clock: FakeClock) -> None:
    await backend.stores.ledger.admit(INST, draft("a"), now=clock())
    await _run_one(backend.stores, clock, "a1")
    assert (await claim(backend.stores, clock, "a2")).state == "idle"
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == []
