"""The instance-store contract (`agent_runtime.testing.contract`) on every adapter here:
memory (the reference) and DynamoDB on moto; plus what only the AWS adapter does."""

from __future__ import annotations

import pytest

from agent_runtime.ledger import Fence, Journal, Outcome, Phase
from agent_runtime.messages import Message
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.contract import *  # noqa: F403
from agent_runtime.testing.contract import INST, claim, draft


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
