"""The instance-store contract (`agent_runtime.testing.contract`) on every adapter here:
memory (the reference) and DynamoDB on moto; plus what only the AWS adapter does."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb import DynamoDBAttempts, DynamoDBLedger
from agent_runtime.adapters.aws.dynamodb_claims import GAP_GRACE_SECONDS
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


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_a_sequence_taken_and_never_written_is_closed_after_its_grace(backend: Backend, clock: FakeClock) -> None:
    # An admission that died between taking sequence 1 and writing it (a crashed Lambda).
    stores = backend.stores
    ledger, attempts = stores.ledger, stores.attempts
    assert isinstance(ledger, DynamoDBLedger) and isinstance(attempts, DynamoDBAttempts)
    first = (await ledger.admit(INST, draft("a"), now=clock())).record
    await _run(stores, clock, first.id)
    assert await ledger._next_sequence(INST, clock()) == 1
    later = (await ledger.admit(INST, draft("b"), now=clock())).record
    assert later.sequence == 2
    other = _other_worker(backend)  # no hint: it walks from META
    # The missing sequence may still be written (its admission then sends a wake-up of its
    # own): nothing runs before it, and nothing is claimed for now.
    held = await claim(other, clock, "w1")
    assert (held.state, held.record) == ("idle", None)
    clock.advance(GAP_GRACE_SECONDS - 1)
    assert (await claim(other, clock, "w2")).record is None
    clock.advance(2)
    nxt = await claim(other, clock, "w3")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == later.id
    # The late put fails, so that admission would take another sequence; readers never see the void.
    assert not await ledger._put_submission(await ledger.items.ledger_item(INST, first.model_copy(update={"sequence": 1}), "p.json"))
    assert [r.sequence for r in await ledger.list_submissions(INST)] == [0, 2]
    assert [r.sequence for r in await ledger.unsettled(INST)] == [2]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_an_admission_that_fails_after_taking_a_sequence_closes_it(backend: Backend, clock: FakeClock) -> None:
    stores = backend.stores
    ledger = stores.ledger
    assert isinstance(ledger, DynamoDBLedger)
    first = (await ledger.admit(INST, draft("a"), now=clock())).record
    await _run(stores, clock, first.id)
    real = ledger.client

    class _PutFails:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        def put_item(self, **kwargs: Any) -> Any:
            if kwargs["Item"].get("void"):
                return real.put_item(**kwargs)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "boom"}}, "PutItem")

    ledger.client = _PutFails()
    try:
        with pytest.raises(ClientError):
            await ledger.admit(INST, draft("lost"), now=clock())
    finally:
        ledger.client = real
    after = (await ledger.admit(INST, draft("c"), now=clock())).record
    # No grace to wait: the failed admission closed its own sequence.
    nxt = await claim(_other_worker(backend), clock, "w")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == after.id and after.sequence == 2


async def _run(stores: Stores, clock: FakeClock, submission_id: str) -> None:
    c = await claim(stores, clock, "r-" + submission_id[-4:])
    assert c.record and c.record.id == submission_id
    await stores.attempts.settle(INST, submission_id, Outcome.completed, now=clock(), fence=Fence.of(c.record))


def _other_worker(backend: Backend) -> Stores:
    """Stores of another process over the same table (no hints shared)."""
    from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
    from agent_runtime.adapters.aws.s3 import S3Blobs

    assert backend.resources is not None
    blobs = S3Blobs(backend.clients["s3"], backend.resources.bucket)
    return dynamodb_stores(backend.clients["dynamodb"], backend.resources.table, blobs)
