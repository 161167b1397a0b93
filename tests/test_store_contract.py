"""One contract for every instance-store adapter: memory (reference) and DynamoDB on moto."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.adapters.aws.dynamodb import DynamoDBStore
from agent_runtime.errors import AbortRequested, AlreadySettled, Conflict, StaleAttempt
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Draft, Fence, Journal, Outcome, Phase, Status, input_hash
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.testing.backends import Backend, FakeClock

pytestmark = pytest.mark.asyncio

INST = InstanceRef("ticket-agent", "T-1")


def draft(message: str = "hi", key: str | None = None, *, session: str = "default") -> Draft:
    payload = {"message": message}
    return Draft(
        kind="direct",
        session=session,
        payload=payload,
        receipt_key=key,
        receipt_hash=input_hash("direct", session, payload) if key else None,
    )


async def claim(backend: Backend, clock: FakeClock, attempt: str = "a1", lease: float = 60):
    return await backend.store.claim_head(INST, attempt_id=attempt, now=clock(), lease_seconds=lease)


async def test_replayed_admission_returns_the_first_submission(backend: Backend, clock: FakeClock) -> None:
    first = await backend.store.admit(INST, draft("hello", "prompt:k1"), now=clock())
    again = await backend.store.admit(INST, draft("hello", "prompt:k1"), now=clock() + 5)
    assert not first.replayed and again.replayed
    assert again.record.id == first.record.id
    assert [r.id for r in await backend.store.list_submissions(INST)] == [first.record.id]


async def test_conflicting_receipt_is_refused_and_kept_after_settling(backend: Backend, clock: FakeClock) -> None:
    first = await backend.store.admit(INST, draft("a", "dispatch:d1"), now=clock())
    with pytest.raises(Conflict) as info:
        await backend.store.admit(INST, draft("b", "dispatch:d1"), now=clock())
    assert info.value.details["submission_id"] == first.record.id
    claimed = await claim(backend, clock)
    await backend.store.settle(INST, first.record.id, Outcome.completed, now=clock(), fence=Fence.of(claimed.record), result={"text": "ok"})
    replay = await backend.store.admit(INST, draft("a", "dispatch:d1"), now=clock())
    assert replay.replayed and replay.record.outcome is Outcome.completed
    assert len(await backend.store.list_submissions(INST)) == 1


async def test_sequences_follow_admission_order(backend: Backend, clock: FakeClock) -> None:
    records = [(await backend.store.admit(INST, draft(f"m{i}"), now=clock())).record for i in range(5)]
    assert [r.sequence for r in records] == [0, 1, 2, 3, 4]
    assert len({r.id for r in records}) == 5


async def test_one_runnable_head(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.store.admit(INST, draft("a"), now=clock())).record
    b = (await backend.store.admit(INST, draft("b"), now=clock())).record
    first = await claim(backend, clock, "a1")
    assert first.state == "claimed" and first.record and first.record.id == a.id
    assert first.next_sequence == 2
    busy = await claim(backend, clock, "a2")
    assert busy.state == "busy" and busy.record and busy.record.id == a.id
    await backend.store.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    second = await claim(backend, clock, "a3")
    assert second.state == "claimed" and second.record and second.record.id == b.id
    await backend.store.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    assert (await claim(backend, clock, "a4")).state == "idle"


async def test_head_skips_submissions_settled_out_of_order(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.store.admit(INST, draft("a"), now=clock())).record
    b = (await backend.store.admit(INST, draft("b"), now=clock())).record
    c = (await backend.store.admit(INST, draft("c"), now=clock())).record
    aborted = await backend.store.request_abort(INST, b.id, now=clock())
    assert aborted.status is Status.settled and aborted.outcome is Outcome.aborted
    first = await claim(backend, clock)
    assert first.record and first.record.id == a.id
    await backend.store.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    nxt = await claim(backend, clock, "a2")
    assert nxt.record and nxt.record.id == c.id


async def test_stale_attempt_cannot_write_or_settle(backend: Backend, clock: FakeClock) -> None:
    # A claims, stalls past its lease; B claims and runs; A wakes and tries to write.
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    a = await claim(backend, clock, "attempt-a", lease=10)
    clock.advance(11)
    b = await claim(backend, clock, "attempt-b", lease=10)
    assert a.record and b.record and b.state == "claimed" and b.record.attempts == 2
    stale = Fence.of(a.record)
    journal = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    with pytest.raises(StaleAttempt):
        await backend.store.checkpoint(stale, journal, now=clock(), lease_seconds=10, messages=[Message.user("x")])
    with pytest.raises(StaleAttempt):
        await backend.store.record_tool_result(stale, 1, ToolResultPart(call_id="c1", name="t", content="r"), now=clock())
    with pytest.raises(StaleAttempt):
        await backend.store.release(stale, now=clock(), resume=True, not_before=None, error=None)
    with pytest.raises(StaleAttempt):
        await backend.store.settle(INST, record.id, Outcome.completed, now=clock(), fence=stale)
    assert (await backend.store.history(INST, "default")).messages == []
    await backend.store.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(b.record), result={"text": "b"})
    final = await backend.store.get(INST, record.id)
    assert final and final.outcome is Outcome.completed and final.result == {"text": "b"}


async def test_first_terminal_write_wins(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    await backend.store.settle(INST, record.id, Outcome.failed, now=clock(), fence=Fence.of(c.record), error={"type": "x"})
    with pytest.raises(AlreadySettled):
        await backend.store.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    with pytest.raises(AlreadySettled):
        await backend.store.settle(INST, record.id, Outcome.aborted, now=clock())
    with pytest.raises(AlreadySettled):
        await backend.store.request_abort(INST, record.id, now=clock())
    final = await backend.store.get(INST, record.id)
    assert final and final.outcome is Outcome.failed and final.error == {"type": "x"}


async def test_unfenced_settle_cannot_take_a_live_attempt(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    await claim(backend, clock, lease=30)
    with pytest.raises(StaleAttempt):
        await backend.store.settle(INST, record.id, Outcome.failed, now=clock())


async def test_abort_flag_stops_a_running_attempt(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    assert await backend.store.abort_requested(INST, record.id) is False
    flagged = await backend.store.request_abort(INST, record.id, now=clock())
    assert flagged.abort_requested and flagged.status is Status.running
    assert await backend.store.abort_requested(INST, record.id) is True  # what the attempt polls
    assert await backend.store.abort_requested(INST, "sub-0000000099-abcdefgh") is False
    with pytest.raises(AbortRequested):
        await backend.store.checkpoint(Fence.of(c.record), Journal(), now=clock(), lease_seconds=60)
    await backend.store.settle(INST, record.id, Outcome.aborted, now=clock(), fence=Fence.of(c.record))
    assert (await backend.store.get(INST, record.id)).outcome is Outcome.aborted  # type: ignore[union-attr]


async def test_release_backoff_and_yield(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    await backend.store.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "boom"})
    backoff = await claim(backend, clock, "a2")
    assert backoff.state == "backoff"
    clock.advance(5)
    again = await claim(backend, clock, "a3")
    assert again.state == "claimed" and again.record and again.record.attempts == 2
    await backend.store.release(Fence.of(again.record), now=clock(), resume=True, not_before=None, error=None)
    resumed = await claim(backend, clock, "a4")
    assert resumed.record and resumed.record.attempts == 2, "a yield gives its attempt back"
    assert resumed.record.error == {"type": "boom"}
    assert resumed.record.id == record.id


async def test_checkpoint_appends_history_in_order_and_pages(backend: Backend, clock: FakeClock) -> None:
    for n in range(3):
        rec = (await backend.store.admit(INST, draft(f"q{n}"), now=clock())).record
        c = await claim(backend, clock, f"a{n}")
        assert c.record and c.record.id == rec.id
        fence = Fence.of(c.record)
        j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
        await backend.store.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(f"q{n}")])
        j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
        await backend.store.settle(INST, rec.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(f"a{n}")])
    texts: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await backend.store.history(INST, "default", limit=4, cursor=cursor)
        texts += [m.message.text for m in page.messages]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert texts == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert pages == 2
    assert (await backend.store.history(INST, "other")).messages == []


async def test_tool_results_first_wins(backend: Backend, clock: FakeClock) -> None:
    await backend.store.admit(INST, draft("x"), now=clock())
    c = await claim(backend, clock)
    assert c.record
    fence = Fence.of(c.record)
    await backend.store.record_tool_result(fence, 1, ToolResultPart(call_id="c1", name="t", content="first"), now=clock())
    await backend.store.record_tool_result(fence, 1, ToolResultPart(call_id="c1", name="t", content="second"), now=clock())
    await backend.store.record_tool_result(fence, 2, ToolResultPart(call_id="c2", name="t", content="other turn"), now=clock())
    results = await backend.store.tool_results(INST, c.record.sequence, 1)
    assert list(results) == ["c1"] and results["c1"].content == "first"


async def test_payload_and_history_spill_round_trip(backend: Backend, clock: FakeClock) -> None:
    big = "x" * 100_000
    record = (await backend.store.admit(INST, draft(big), now=clock())).record
    stored = await backend.store.get(INST, record.id)
    assert stored and stored.payload == {"message": big}
    c = await claim(backend, clock)
    assert c.record and c.record.payload == {"message": big}
    fence = Fence.of(c.record)
    j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    await backend.store.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(big)])
    await backend.store.record_tool_result(fence, 1, ToolResultPart(call_id="c1", name="t", content=big), now=clock())
    j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
    await backend.store.settle(
        INST, record.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(big)], result={"text": big}
    )
    history = await backend.store.history(INST, "default")
    assert [m.message.text for m in history.messages] == [big, big]
    assert (await backend.store.tool_results(INST, record.sequence, 1))["c1"].content == big
    settled = await backend.store.get(INST, record.id)
    assert settled and settled.result == {"text": big}
    if backend.kind == "moto":
        s3 = backend.clients["s3"]
        assert backend.resources
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=backend.resources.bucket)["Contents"]]
        assert any("/payloads/" in k for k in keys) and any("/history/" in k for k in keys)


async def test_kv(backend: Backend) -> None:
    assert await backend.store.kv_get(INST, "k") is None
    await backend.store.kv_put(INST, "k", {"a": [1, 2]})
    assert await backend.store.kv_get(INST, "k") == {"a": [1, 2]}
    await backend.store.kv_delete(INST, "k")
    assert await backend.store.kv_get(INST, "k") is None


async def test_instances_are_isolated(backend: Backend, clock: FakeClock) -> None:
    other = InstanceRef("ticket-agent", "T-2")
    await backend.store.admit(INST, draft("a", "prompt:same"), now=clock())
    replay = await backend.store.admit(other, draft("b", "prompt:same"), now=clock())
    assert not replay.replayed and replay.record.sequence == 0


# --- the pending index (the sweeper's view) ---------------------------------------------


async def test_queued_work_is_pending_once_idle_past_the_threshold(backend: Backend, clock: FakeClock) -> None:
    admitted_at = clock()
    await backend.store.admit(INST, draft("x"), now=admitted_at)
    assert await backend.store.pending_instances(idle_since=admitted_at - 1, limit=10) == []
    clock.advance(300)
    assert await backend.store.pending_instances(idle_since=clock() - 300, limit=10) == [INST]
    # A failed attempt given back to the queue leaves the instance pending.
    c = await claim(backend, clock)
    assert c.record
    await backend.store.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "x"})
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == [INST]


async def test_settling_everything_leaves_the_pending_index(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.store.admit(INST, draft("a"), now=clock())).record
    b = (await backend.store.admit(INST, draft("b"), now=clock())).record
    first = await claim(backend, clock, "a1")
    assert first.record and first.record.id == a.id
    clock.advance(400)
    await backend.store.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    # Work is left: still pending, and the settle counts as progress.
    assert await backend.store.pending_instances(idle_since=clock() - 1, limit=10) == []
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == [INST]
    second = await claim(backend, clock, "a2")
    assert second.record and second.record.id == b.id
    await backend.store.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    clock.advance(1000)
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == []


async def test_admission_racing_the_last_settle_stays_pending(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.store.admit(INST, draft("a"), now=clock())).record
    c = await claim(backend, clock)  # sees nothing admitted after `a`
    assert c.record and c.next_sequence == 1
    clock.advance(10)
    late = (await backend.store.admit(INST, draft("late"), now=clock())).record
    await backend.store.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    assert (await backend.store.get(INST, a.id)).outcome is Outcome.completed  # type: ignore[union-attr]
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == [INST]
    nxt = await claim(backend, clock, "a2")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == late.id


async def test_pending_until_a_claim_finds_nothing_after_an_abort(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    await backend.store.request_abort(INST, record.id, now=clock())
    # A wake-up too many, never one too few: the next claim takes it out.
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == [INST]
    assert (await claim(backend, clock)).state == "idle"
    assert await backend.store.pending_instances(idle_since=clock(), limit=10) == []


async def test_pending_instances_oldest_first_within_the_limit(backend: Backend, clock: FakeClock) -> None:
    refs = [InstanceRef("ticket-agent", f"T-{n}") for n in range(12)]
    for ref in reversed(refs):  # T-11 is admitted first, so it is the oldest
        await backend.store.admit(ref, draft("x"), now=clock())
        clock.advance(1)
    oldest_first = list(reversed(refs))
    assert await backend.store.pending_instances(idle_since=clock(), limit=5) == oldest_first[:5]
    assert await backend.store.pending_instances(idle_since=clock(), limit=100) == oldest_first
    # Only those idle long enough (admitted at start, start+1, start+2; now is start+12).
    assert await backend.store.pending_instances(idle_since=clock() - 10, limit=100) == oldest_first[:3]


# --- leases ---------------------------------------------------------------------------


async def test_a_lease_is_held_until_strictly_past_lease_until(backend: Backend, clock: FakeClock) -> None:
    await backend.store.admit(INST, draft("x"), now=clock())
    first = await claim(backend, clock, "a1", lease=10)
    assert first.state == "claimed" and first.record and first.record.lease_until == clock() + 10
    clock.advance(10)  # now == lease_until: still held
    held = await claim(backend, clock, "a2")
    assert held.state == "busy" and held.record and held.record.attempt_id == "a1"
    clock.advance(0.001)
    taken = await claim(backend, clock, "a3")
    assert taken.state == "claimed" and taken.record and taken.record.attempt_id == "a3"


async def test_checkpoint_renews_the_lease(backend: Backend, clock: FakeClock) -> None:
    await backend.store.admit(INST, draft("x"), now=clock())
    c = await claim(backend, clock, "a1", lease=10)
    assert c.record
    clock.advance(8)
    journal = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    await backend.store.checkpoint(Fence.of(c.record), journal, now=clock(), lease_seconds=10, messages=[Message.user("x")])
    clock.advance(5)  # past the claim's lease, within the renewed one
    busy = await claim(backend, clock, "a2")
    assert busy.state == "busy" and busy.record and busy.record.lease_until == clock() + 5
    # A checkpoint without messages (a plain journal update) renews it too.
    journal = Journal(applied=True, turn=1, phase=Phase.model_done, written=1)
    await backend.store.checkpoint(Fence.of(c.record), journal, now=clock(), lease_seconds=10)
    clock.advance(9)
    assert (await claim(backend, clock, "a3")).state == "busy"
    clock.advance(2)
    assert (await claim(backend, clock, "a4")).state == "claimed"


# --- release --------------------------------------------------------------------------


async def test_release_succeeds_on_an_abort_requested_submission(backend: Backend, clock: FakeClock) -> None:
    # An attempt out of time (or failing) gives the submission back even though an abort
    # was asked meanwhile: the next claim sees the flag and settles it `aborted`.
    record = (await backend.store.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock, "a1")
    assert c.record
    await backend.store.request_abort(INST, record.id, now=clock())
    await backend.store.release(Fence.of(c.record), now=clock(), resume=True, not_before=None, error=None)
    released = await backend.store.get(INST, record.id)
    assert released and released.status is Status.queued and released.abort_requested
    assert released.attempt_id is None and released.attempts == 0
    again = await claim(backend, clock, "a2")
    assert again.state == "claimed" and again.record and again.record.abort_requested
    await backend.store.release(Fence.of(again.record), now=clock(), resume=False, not_before=clock() + 1, error={"type": "boom"})
    failed = await backend.store.get(INST, record.id)
    assert failed and failed.status is Status.queued and failed.error == {"type": "boom"} and failed.attempts == 1


# --- claim_head racing an admission (DynamoDB's read-then-write) ------------------------


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


async def test_admission_racing_an_idle_claim_stays_pending(backend: Backend, clock: FakeClock) -> None:
    if backend.kind == "memory":
        pytest.skip("the memory store claims under one lock: an admission cannot land mid-claim")
    store = backend.store
    assert isinstance(store, DynamoDBStore)
    record = (await store.admit(INST, draft("x"), now=clock())).record
    await store.request_abort(INST, record.id, now=clock())  # settled; META still pending
    assert await store.pending_instances(idle_since=clock(), limit=10) == [INST]
    clock.advance(10)
    late: list[str] = []

    def admit() -> None:
        late.append(asyncio.run(store.admit(INST, draft("late"), now=clock())).record.id)

    client = _AdmitAfterMetaRead(store.client, admit)
    store.client = client
    try:
        client.armed = True
        # W: claim_head reads META (next_seq 1) -- A: admit(seq 1) -- W: finds nothing
        # unsettled below next_seq 1, and must not take the instance out of the index.
        result = await claim(backend, clock, "a1")
    finally:
        store.client = client._client
    assert late and not client.armed
    assert result.state == "idle"
    assert await store.pending_instances(idle_since=clock(), limit=10) == [INST]
    nxt = await claim(backend, clock, "a2")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == late[0]
