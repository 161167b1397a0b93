"""The instance-store contract (`agent_runtime.testing.contract`) on every adapter here:
memory (the reference) and DynamoDB on moto; plus what only the AWS adapter does."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.adapters.aws.dynamodb import DynamoDBAttempts
from agent_runtime.ledger import Fence, Journal, Outcome, Phase
from agent_runtime.messages import Message
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.contract import *  # noqa: F403
from agent_runtime.testing.contract import INST, claim, draft
from agent_runtime.testing.instances_contract import *  # noqa: F403


@pytest.fixture
def stores(backend: Backend) -> Stores:
    return backend.stores


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_big_values_spill_to_s3(backend: Backend, clock: FakeClock) -> None:
    big = "x" * 100_000
    record = (await backend.stores.ledger.admit(INST, draft(big), now=clock())).record
    c = await claim(backend.stores, clock)
    assert c.record
    j = Journal(applied=True, turn=1, phase=Phase.committed, written=1)
    await backend.stores.attempts.settle(
        INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(c.record), journal=j, messages=[Message.user(big)]
    )
    s3 = backend.clients["s3"]
    assert backend.resources
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=backend.resources.bucket)["Contents"]]
    assert any("/payloads/" in k for k in keys) and any("/history/" in k for k in keys)


class _AdmitAfterMetaRead:
    """The DynamoDB client, except that once armed, the next consistent read of META is
    followed by an admission (from another thread, as another process would), before
    the caller acts on what it read."""

    def __init__(self, client: Any, admit: Callable[[], None]) -> None:
        self._client = client
        self._admit = admit
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        item = self._client.get_item(**kwargs)
        if self.armed and kwargs["Key"]["sk"]["S"] == "META":
            self.armed = False
            thread = threading.Thread(target=self._admit)
            thread.start()
            thread.join()
        return item


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_admission_racing_an_idle_claim_stays_pending(backend: Backend, clock: FakeClock) -> None:
    # The memory store claims under one lock: an admission cannot land mid-claim there.
    stores = backend.stores
    attempts = stores.attempts
    assert isinstance(attempts, DynamoDBAttempts)
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    await stores.ledger.request_abort(INST, record.id, now=clock())
    await attempts.settle(INST, record.id, Outcome.aborted, now=clock())  # settled; META still pending
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    clock.advance(10)
    late: list[str] = []

    def admit() -> None:
        late.append(asyncio.run(stores.ledger.admit(INST, draft("late"), now=clock())).record.id)

    client = _AdmitAfterMetaRead(attempts.client, admit)
    attempts.client = client
    try:
        client.armed = True
        # W: claim_head reads META (next_seq 1) -- A: admit(seq 1) -- W: finds nothing
        # unsettled below next_seq 1, and must not take the instance out of the index.
        result = await claim(stores, clock, "a1")
    finally:
        attempts.client = client._client
    assert late and not client.armed
    assert result.state == "idle"
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    nxt = await claim(stores, clock, "a2")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == late[0]
