"""One contract for every instance-store adapter: memory (reference) and DynamoDB on moto."""

from __future__ import annotations

import pytest

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
    return await backend.stores.attempts.claim_head(INST, attempt_id=attempt, now=clock(), lease_seconds=lease)


async def test_replayed_admission_returns_the_first_submission(backend: Backend, clock: FakeClock) -> None:
    first = await backend.stores.ledger.admit(INST, draft("hello", "prompt:k1"), now=clock())
    again = await backend.stores.ledger.admit(INST, draft("hello", "prompt:k1"), now=clock() + 5)
    assert not first.replayed and again.replayed
    assert again.record.id == first.record.id
    assert [r.id for r in await backend.stores.ledger.list_submissions(INST)] == [first.record.id]


async def test_conflicting_receipt_is_refused_and_kept_after_settling(backend: Backend, clock: FakeClock) -> None:
    first = await backend.stores.ledger.admit(INST, draft("a", "dispatch:d1"), now=clock())
    with pytest.raises(Conflict) as info:
        await backend.stores.ledger.admit(INST, draft("b", "dispatch:d1"), now=clock())
    assert info.value.details["submission_id"] == first.record.id
    claimed = await claim(backend, clock)
    await backend.stores.attempts.settle(INST, first.record.id, Outcome.completed, now=clock(), fence=Fence.of(claimed.record), result={"text": "ok"})
    replay = await backend.stores.ledger.admit(INST, draft("a", "dispatch:d1"), now=clock())
    assert replay.replayed and replay.record.outcome is Outcome.completed
    assert len(await backend.stores.ledger.list_submissions(INST)) == 1


async def test_sequences_follow_admission_order(backend: Backend, clock: FakeClock) -> None:
    records = [(await backend.stores.ledger.admit(INST, draft(f"m{i}"), now=clock())).record for i in range(5)]
    assert [r.sequence for r in records] == [0, 1, 2, 3, 4]
    assert len({r.id for r in records}) == 5


async def test_one_runnable_head(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await backend.stores.ledger.admit(INST, draft("b"), now=clock())).record
    first = await claim(backend, clock, "a1")
    assert first.state == "claimed" and first.record and first.record.id == a.id
    assert first.next_sequence == 2
    busy = await claim(backend, clock, "a2")
    assert busy.state == "busy" and busy.record and busy.record.id == a.id
    await backend.stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    second = await claim(backend, clock, "a3")
    assert second.state == "claimed" and second.record and second.record.id == b.id
    await backend.stores.attempts.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    assert (await claim(backend, clock, "a4")).state == "idle"


async def test_head_skips_submissions_settled_out_of_order(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await backend.stores.ledger.admit(INST, draft("b"), now=clock())).record
    c = (await backend.stores.ledger.admit(INST, draft("c"), now=clock())).record
    flagged = await backend.stores.ledger.request_abort(INST, b.id, now=clock())
    assert flagged.abort_requested and flagged.status is Status.queued, "a flag, not a settle"
    await backend.stores.attempts.settle(INST, b.id, Outcome.aborted, now=clock())
    first = await claim(backend, clock)
    assert first.record and first.record.id == a.id
    await backend.stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    nxt = await claim(backend, clock, "a2")
    assert nxt.record and nxt.record.id == c.id


async def test_stale_attempt_cannot_write_or_settle(backend: Backend, clock: FakeClock) -> None:
    # A claims, stalls past its lease; B claims and runs; A wakes and tries to write.
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    a = await claim(backend, clock, "attempt-a", lease=10)
    clock.advance(11)
    b = await claim(backend, clock, "attempt-b", lease=10)
    assert a.record and b.record and b.state == "claimed" and b.record.attempts == 2
    stale = Fence.of(a.record)
    journal = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    with pytest.raises(StaleAttempt):
        await backend.stores.attempts.checkpoint(stale, journal, now=clock(), lease_seconds=10, messages=[Message.user("x")])
    with pytest.raises(StaleAttempt):
        await backend.stores.tool_results.record(stale, 1, ToolResultPart(call_id="c1", name="t", content="r"), now=clock())
    with pytest.raises(StaleAttempt):
        await backend.stores.attempts.release(stale, now=clock(), resume=True, not_before=None, error=None)
    with pytest.raises(StaleAttempt):
        await backend.stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=stale)
    assert (await backend.stores.history.page(INST, "default")).messages == []
    await backend.stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(b.record), result={"text": "b"})
    final = await backend.stores.ledger.get(INST, record.id)
    assert final and final.outcome is Outcome.completed and final.result == {"text": "b"}


async def test_first_terminal_write_wins(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    await backend.stores.attempts.settle(INST, record.id, Outcome.failed, now=clock(), fence=Fence.of(c.record), error={"type": "x"})
    with pytest.raises(AlreadySettled):
        await backend.stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    with pytest.raises(AlreadySettled):
        await backend.stores.attempts.settle(INST, record.id, Outcome.aborted, now=clock())
    with pytest.raises(AlreadySettled):
        await backend.stores.ledger.request_abort(INST, record.id, now=clock())
    final = await backend.stores.ledger.get(INST, record.id)
    assert final and final.outcome is Outcome.failed and final.error == {"type": "x"}


async def test_unfenced_settle_cannot_take_a_live_attempt(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    await claim(backend, clock, lease=30)
    with pytest.raises(StaleAttempt):
        await backend.stores.attempts.settle(INST, record.id, Outcome.failed, now=clock())


async def test_abort_flag_stops_a_running_attempt(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    assert await backend.stores.ledger.abort_requested(INST, record.id) is False
    flagged = await backend.stores.ledger.request_abort(INST, record.id, now=clock())
    assert flagged.abort_requested and flagged.status is Status.running
    assert await backend.stores.ledger.abort_requested(INST, record.id) is True  # what the attempt polls
    assert await backend.stores.ledger.abort_requested(INST, "sub-0000000099-abcdefgh") is False
    with pytest.raises(AbortRequested):
        await backend.stores.attempts.checkpoint(Fence.of(c.record), Journal(), now=clock(), lease_seconds=60)
    await backend.stores.attempts.settle(INST, record.id, Outcome.aborted, now=clock(), fence=Fence.of(c.record))
    assert (await backend.stores.ledger.get(INST, record.id)).outcome is Outcome.aborted  # type: ignore[union-attr]


async def test_release_backoff_and_yield(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(backend, clock)
    assert c.record
    await backend.stores.attempts.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "boom"})
    backoff = await claim(backend, clock, "a2")
    assert backoff.state == "backoff"
    clock.advance(5)
    again = await claim(backend, clock, "a3")
    assert again.state == "claimed" and again.record and again.record.attempts == 2
    await backend.stores.attempts.release(Fence.of(again.record), now=clock(), resume=True, not_before=None, error=None)
    resumed = await claim(backend, clock, "a4")
    assert resumed.record and resumed.record.attempts == 2, "a yield gives its attempt back"
    assert resumed.record.error == {"type": "boom"}
    assert resumed.record.id == record.id


async def test_checkpoint_appends_history_in_order_and_pages(backend: Backend, clock: FakeClock) -> None:
    for n in range(3):
        rec = (await backend.stores.ledger.admit(INST, draft(f"q{n}"), now=clock())).record
        c = await claim(backend, clock, f"a{n}")
        assert c.record and c.record.id == rec.id
        fence = Fence.of(c.record)
        j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
        await backend.stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(f"q{n}")])
        j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
        await backend.stores.attempts.settle(INST, rec.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(f"a{n}")])
    texts: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await backend.stores.history.page(INST, "default", limit=4, cursor=cursor)
        texts += [m.message.text for m in page.messages]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert texts == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert pages == 2
    assert (await backend.stores.history.page(INST, "other")).messages == []


async def test_tool_results_first_wins(backend: Backend, clock: FakeClock) -> None:
    await backend.stores.ledger.admit(INST, draft("x"), now=clock())
    c = await claim(backend, clock)
    assert c.record
    fence = Fence.of(c.record)
    await backend.stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content="first"), now=clock())
    await backend.stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content="second"), now=clock())
    await backend.stores.tool_results.record(fence, 2, ToolResultPart(call_id="c2", name="t", content="other turn"), now=clock())
    results = await backend.stores.tool_results.of_turn(INST, c.record.sequence, 1)
    assert list(results) == ["c1"] and results["c1"].content == "first"


async def test_payload_and_history_spill_round_trip(backend: Backend, clock: FakeClock) -> None:
    big = "x" * 100_000
    record = (await backend.stores.ledger.admit(INST, draft(big), now=clock())).record
    stored = await backend.stores.ledger.get(INST, record.id)
    assert stored and stored.payload == {"message": big}
    c = await claim(backend, clock)
    assert c.record and c.record.payload == {"message": big}
    fence = Fence.of(c.record)
    j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    await backend.stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(big)])
    await backend.stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content=big), now=clock())
    j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
    await backend.stores.attempts.settle(
        INST, record.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(big)], result={"text": big}
    )
    history = await backend.stores.history.page(INST, "default")
    assert [m.message.text for m in history.messages] == [big, big]
    assert (await backend.stores.tool_results.of_turn(INST, record.sequence, 1))["c1"].content == big
    settled = await backend.stores.ledger.get(INST, record.id)
    assert settled and settled.result == {"text": big}
    if backend.kind == "moto":
        s3 = backend.clients["s3"]
        assert backend.resources
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=backend.resources.bucket)["Contents"]]
        assert any("/payloads/" in k for k in keys) and any("/history/" in k for k in keys)


async def test_kv(backend: Backend) -> None:
    assert await backend.stores.kv.get(INST, "k") is None
    await backend.stores.kv.put(INST, "k", {"a": [1, 2]})
    assert await backend.stores.kv.get(INST, "k") == {"a": [1, 2]}
    await backend.stores.kv.delete(INST, "k")
    assert await backend.stores.kv.get(INST, "k") is None


async def test_instances_are_isolated(backend: Backend, clock: FakeClock) -> None:
    other = InstanceRef("ticket-agent", "T-2")
    await backend.stores.ledger.admit(INST, draft("a", "prompt:same"), now=clock())
    replay = await backend.stores.ledger.admit(other, draft("b", "prompt:same"), now=clock())
    assert not replay.replayed and replay.record.sequence == 0


# --- the pending index (the sweeper's view) ---------------------------------------------


async def test_queued_work_is_pending_once_idle_past_the_threshold(backend: Backend, clock: FakeClock) -> None:
    admitted_at = clock()
    await backend.stores.ledger.admit(INST, draft("x"), now=admitted_at)
    assert await backend.stores.ledger.pending_instances(idle_since=admitted_at - 1, limit=10) == []
    clock.advance(300)
    assert await backend.stores.ledger.pending_instances(idle_since=clock() - 300, limit=10) == [INST]
    # A failed attempt given back to the queue leaves the instance pending.
    c = await claim(backend, clock)
    assert c.record
    await backend.stores.attempts.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "x"})
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]


async def test_settling_everything_leaves_the_pending_index(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await backend.stores.ledger.admit(INST, draft("b"), now=clock())).record
    first = await claim(backend, clock, "a1")
    assert first.record and first.record.id == a.id
    clock.advance(400)
    await backend.stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    # Work is left: still pending, and the settle counts as progress.
    assert await backend.stores.ledger.pending_instances(idle_since=clock() - 1, limit=10) == []
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    second = await claim(backend, clock, "a2")
    assert second.record and second.record.id == b.id
    await backend.stores.attempts.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    clock.advance(1000)
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == []


async def test_admission_racing_the_last_settle_stays_pending(backend: Backend, clock: FakeClock) -> None:
    a = (await backend.stores.ledger.admit(INST, draft("a"), now=clock())).record
    c = await claim(backend, clock)  # sees nothing admitted after `a`
    assert c.record and c.next_sequence == 1
    clock.advance(10)
    late = (await backend.stores.ledger.admit(INST, draft("late"), now=clock())).record
    await backend.stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    assert (await backend.stores.ledger.get(INST, a.id)).outcome is Outcome.completed  # type: ignore[union-attr]
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    nxt = await claim(backend, clock, "a2")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == late.id


async def test_pending_until_a_claim_finds_nothing_after_an_abort(backend: Backend, clock: FakeClock) -> None:
    record = (await backend.stores.ledger.admit(INST, draft("x"), now=clock())).record
    await backend.stores.ledger.request_abort(INST, record.id, now=clock())
    await backend.stores.attempts.settle(INST, record.id, Outcome.aborted, now=clock())
    # A wake-up too many, never one too few: the next claim takes it out.
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    assert (await claim(backend, clock)).state == "idle"
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=10) == []


async def test_pending_instances_oldest_first_within_the_limit(backend: Backend, clock: FakeClock) -> None:
    refs = [InstanceRef("ticket-agent", f"T-{n}") for n in range(12)]
    for ref in reversed(refs):  # T-11 is admitted first, so it is the oldest
        await backend.stores.ledger.admit(ref, draft("x"), now=clock())
        clock.advance(1)
    oldest_first = list(reversed(refs))
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=5) == oldest_first[:5]
    assert await backend.stores.ledger.pending_instances(idle_since=clock(), limit=100) == oldest_first
    # Only those idle long enough (admitted at start, start+1, start+2; now is start+12).
    assert await backend.stores.ledger.pending_instances(idle_since=clock() - 10, limit=100) == oldest_first[:3]
