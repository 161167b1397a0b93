"""The contract of the instance-store ports: one suite for every adapter.

It runs here on the memory adapters (the reference) and on DynamoDB under moto, and on
any adapter of yours: import it into a test module and give it two fixtures,
``stores`` (your `agent_runtime.ports.Stores`, empty) and ``clock`` (a `FakeClock`):

    # tests/test_my_store.py   (pytest-asyncio, asyncio_mode = "auto")
    from agent_runtime.testing.contract import *  # noqa: F403
    from agent_runtime.testing.backends import FakeClock

    @pytest.fixture
    def stores():
        return my_stores(...)

    @pytest.fixture
    def clock():
        return FakeClock()

Each test names the rule it checks; together they are the ledger invariants of
DESIGN section 3 as the ports see them.
"""

from __future__ import annotations

import pytest

from agent_runtime.errors import AbortRequested, AlreadySettled, Conflict, StaleAttempt
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import (
    Claim,
    Draft,
    Fence,
    Journal,
    Outcome,
    Phase,
    SessionState,
    Status,
    input_hash,
)
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.ports import ChildEntry, Stores
from agent_runtime.testing.backends import FakeClock

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


async def claim(stores: Stores, clock: FakeClock, attempt: str = "a1", lease: float = 60) -> Claim:
    return await stores.attempts.claim_head(INST, attempt_id=attempt, now=clock(), lease_seconds=lease)


async def test_replayed_admission_returns_the_first_submission(stores: Stores, clock: FakeClock) -> None:
    first = await stores.ledger.admit(INST, draft("hello", "prompt:k1"), now=clock())
    again = await stores.ledger.admit(INST, draft("hello", "prompt:k1"), now=clock() + 5)
    assert not first.replayed and again.replayed
    assert again.record.id == first.record.id
    assert [r.id for r in await stores.ledger.list_submissions(INST)] == [first.record.id]
    # A replay takes no sequence: the next submission follows the first.
    assert (await stores.ledger.admit(INST, draft("next"), now=clock())).record.sequence == first.record.sequence + 1


async def test_conflicting_receipt_is_refused_and_kept_after_settling(stores: Stores, clock: FakeClock) -> None:
    first = await stores.ledger.admit(INST, draft("a", "dispatch:d1"), now=clock())
    with pytest.raises(Conflict) as info:
        await stores.ledger.admit(INST, draft("b", "dispatch:d1"), now=clock())
    assert info.value.details["submission_id"] == first.record.id
    claimed = await claim(stores, clock)
    assert claimed.record
    await stores.attempts.settle(INST, first.record.id, Outcome.completed, now=clock(), fence=Fence.of(claimed.record), result={"text": "ok"})
    replay = await stores.ledger.admit(INST, draft("a", "dispatch:d1"), now=clock())
    assert replay.replayed and replay.record.outcome is Outcome.completed
    assert len(await stores.ledger.list_submissions(INST)) == 1


async def test_sequences_follow_admission_order(stores: Stores, clock: FakeClock) -> None:
    records = [(await stores.ledger.admit(INST, draft(f"m{i}"), now=clock())).record for i in range(5)]
    assert [r.sequence for r in records] == [0, 1, 2, 3, 4]
    assert len({r.id for r in records}) == 5


async def test_one_runnable_head(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await stores.ledger.admit(INST, draft("b"), now=clock())).record
    first = await claim(stores, clock, "a1")
    assert first.state == "claimed" and first.record and first.record.id == a.id
    assert first.next_sequence == 2
    busy = await claim(stores, clock, "a2")
    assert busy.state == "busy" and busy.record and busy.record.id == a.id
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    second = await claim(stores, clock, "a3")
    assert second.state == "claimed" and second.record and second.record.id == b.id
    await stores.attempts.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    assert (await claim(stores, clock, "a4")).state == "idle"


async def test_head_skips_submissions_settled_out_of_order(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await stores.ledger.admit(INST, draft("b"), now=clock())).record
    c = (await stores.ledger.admit(INST, draft("c"), now=clock())).record
    flagged = await stores.ledger.request_abort(INST, b.id, now=clock())
    assert flagged.abort_requested and flagged.status is Status.queued, "a flag, not a settle"
    await stores.attempts.settle(INST, b.id, Outcome.aborted, now=clock())
    first = await claim(stores, clock)
    assert first.record and first.record.id == a.id
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    nxt = await claim(stores, clock, "a2")
    assert nxt.record and nxt.record.id == c.id


async def test_stale_attempt_cannot_write_or_settle(stores: Stores, clock: FakeClock) -> None:
    # A claims, stalls past its lease; B claims and runs; A wakes and tries to write.
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    a = await claim(stores, clock, "attempt-a", lease=10)
    clock.advance(11)
    b = await claim(stores, clock, "attempt-b", lease=10)
    assert a.record and b.record and b.state == "claimed" and b.record.attempts == 2
    stale = Fence.of(a.record)
    journal = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    with pytest.raises(StaleAttempt):
        await stores.attempts.checkpoint(stale, journal, now=clock(), lease_seconds=10, messages=[Message.user("x")])
    with pytest.raises(StaleAttempt):
        await stores.tool_results.record(stale, 1, ToolResultPart(call_id="c1", name="t", content="r"), now=clock())
    with pytest.raises(StaleAttempt):
        await stores.attempts.release(stale, now=clock(), resume=True, not_before=None, error=None)
    with pytest.raises(StaleAttempt):
        await stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=stale)
    assert (await stores.history.page(INST, "default")).messages == []
    await stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(b.record), result={"text": "b"})
    final = await stores.ledger.get(INST, record.id)
    assert final and final.outcome is Outcome.completed and final.result == {"text": "b"}


async def test_first_terminal_write_wins(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    await stores.attempts.settle(INST, record.id, Outcome.failed, now=clock(), fence=Fence.of(c.record), error={"type": "x"})
    with pytest.raises(AlreadySettled):
        await stores.attempts.settle(INST, record.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    with pytest.raises(AlreadySettled):
        await stores.attempts.settle(INST, record.id, Outcome.aborted, now=clock())
    with pytest.raises(AlreadySettled):
        await stores.ledger.request_abort(INST, record.id, now=clock())
    final = await stores.ledger.get(INST, record.id)
    assert final and final.outcome is Outcome.failed and final.error == {"type": "x"}


async def test_unfenced_settle_cannot_take_a_live_attempt(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    await claim(stores, clock, lease=30)
    with pytest.raises(StaleAttempt):
        await stores.attempts.settle(INST, record.id, Outcome.failed, now=clock())


async def test_abort_flag_stops_a_running_attempt(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    assert await stores.ledger.abort_requested(INST, record.id) is False
    flagged = await stores.ledger.request_abort(INST, record.id, now=clock())
    assert flagged.abort_requested and flagged.status is Status.running
    assert await stores.ledger.abort_requested(INST, record.id) is True  # what the attempt polls
    assert await stores.ledger.abort_requested(INST, "sub-0000000099-abcdefgh") is False
    with pytest.raises(AbortRequested):
        await stores.attempts.checkpoint(Fence.of(c.record), Journal(), now=clock(), lease_seconds=60)
    await stores.attempts.settle(INST, record.id, Outcome.aborted, now=clock(), fence=Fence.of(c.record))
    assert (await stores.ledger.get(INST, record.id)).outcome is Outcome.aborted  # type: ignore[union-attr]


async def test_release_backoff_and_yield(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    await stores.attempts.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "boom"})
    backoff = await claim(stores, clock, "a2")
    assert backoff.state == "backoff"
    clock.advance(5)
    again = await claim(stores, clock, "a3")
    assert again.state == "claimed" and again.record and again.record.attempts == 2
    await stores.attempts.release(Fence.of(again.record), now=clock(), resume=True, not_before=None, error=None)
    resumed = await claim(stores, clock, "a4")
    assert resumed.record and resumed.record.attempts == 2, "a yield gives its attempt back"
    assert resumed.record.error == {"type": "boom"}
    assert resumed.record.id == record.id


async def test_the_input_is_recorded_once_whoever_writes_it(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock, "a1", lease=10)
    assert c.record
    await stores.attempts.record_input(Fence.of(c.record), Message.user("x"))
    # A new attempt after a crash records it again; so may one that lost its claim.
    clock.advance(11)
    again = await claim(stores, clock, "a2")
    assert again.record
    await stores.attempts.record_input(Fence.of(again.record), Message.user("x"))
    await stores.attempts.record_input(Fence.of(c.record), Message.user("x"))
    stored = (await stores.history.page(INST, "default")).messages
    assert [(m.sequence, m.index, m.message.text) for m in stored] == [(record.sequence, 0, "x")]
    # The next checkpoint continues after it.
    j = Journal(applied=True, turn=1, phase=Phase.model_done, written=2)
    await stores.attempts.checkpoint(Fence.of(again.record), j, now=clock(), lease_seconds=60, messages=[Message.assistant("y")])
    assert [m.message.text for m in (await stores.history.page(INST, "default")).messages] == ["x", "y"]


async def test_checkpoint_appends_history_in_order_and_pages(stores: Stores, clock: FakeClock) -> None:
    for n in range(3):
        rec = (await stores.ledger.admit(INST, draft(f"q{n}"), now=clock())).record
        c = await claim(stores, clock, f"a{n}")
        assert c.record and c.record.id == rec.id
        fence = Fence.of(c.record)
        j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
        await stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(f"q{n}")])
        j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
        await stores.attempts.settle(INST, rec.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(f"a{n}")])
    texts: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await stores.history.page(INST, "default", limit=4, cursor=cursor)
        texts += [m.message.text for m in page.messages]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert texts == ["q0", "a0", "q1", "a1", "q2", "a2"]
    assert pages == 2
    assert (await stores.history.page(INST, "other")).messages == []


async def test_tool_results_first_wins(stores: Stores, clock: FakeClock) -> None:
    await stores.ledger.admit(INST, draft("x"), now=clock())
    c = await claim(stores, clock)
    assert c.record
    fence = Fence.of(c.record)
    await stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content="first"), now=clock())
    await stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content="second"), now=clock())
    await stores.tool_results.record(fence, 2, ToolResultPart(call_id="c2", name="t", content="other turn"), now=clock())
    results = await stores.tool_results.of_turn(INST, c.record.sequence, 1)
    assert list(results) == ["c1"] and results["c1"].content == "first"


async def test_payload_and_history_spill_round_trip(stores: Stores, clock: FakeClock) -> None:
    big = "x" * 100_000
    record = (await stores.ledger.admit(INST, draft(big), now=clock())).record
    stored = await stores.ledger.get(INST, record.id)
    assert stored and stored.payload == {"message": big}
    c = await claim(stores, clock)
    assert c.record and c.record.payload == {"message": big}
    fence = Fence.of(c.record)
    j = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    await stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60, messages=[Message.user(big)])
    await stores.tool_results.record(fence, 1, ToolResultPart(call_id="c1", name="t", content=big), now=clock())
    j = Journal(applied=True, turn=1, phase=Phase.committed, written=2)
    await stores.attempts.settle(
        INST, record.id, Outcome.completed, now=clock(), fence=fence, journal=j, messages=[Message.assistant(big)], result={"text": big}
    )
    history = await stores.history.page(INST, "default")
    assert [m.message.text for m in history.messages] == [big, big]
    assert (await stores.tool_results.of_turn(INST, record.sequence, 1))["c1"].content == big
    settled = await stores.ledger.get(INST, record.id)
    assert settled and settled.result == {"text": big}


async def test_unsettled_lists_what_is_left_from_the_head(stores: Stores, clock: FakeClock) -> None:
    assert await stores.ledger.unsettled(INST) == []
    ids = [(await stores.ledger.admit(INST, draft(f"m{n}"), now=clock())).record.id for n in range(3)]
    c = await claim(stores, clock)
    assert c.record and c.record.id == ids[0]
    assert [r.id for r in await stores.ledger.unsettled(INST)] == ids
    await stores.attempts.settle(INST, ids[1], Outcome.aborted, now=clock())  # settled out of order
    assert [r.id for r in await stores.ledger.unsettled(INST)] == [ids[0], ids[2]]
    assert [r.id for r in await stores.ledger.unsettled(INST, limit=1)] == [ids[0]]
    await stores.attempts.settle(INST, ids[0], Outcome.completed, now=clock(), fence=Fence.of(c.record), journal=Journal(applied=True))
    assert [r.id for r in await stores.ledger.unsettled(INST)] == [ids[2]]


async def test_kv(stores: Stores) -> None:
    assert await stores.kv.get(INST, "k") is None
    await stores.kv.put(INST, "k", {"a": [1, 2]})
    assert await stores.kv.get(INST, "k") == {"a": [1, 2]}
    await stores.kv.delete(INST, "k")
    assert await stores.kv.get(INST, "k") is None
    for key, value in (("note:2", "b"), ("note:1", "a"), ("other", 0), ("note:3", None)):
        await stores.kv.put(INST, key, value)
    assert await stores.kv.list(INST, "note:") == {"note:1": "a", "note:2": "b", "note:3": None}
    assert list(await stores.kv.list(INST)) == ["note:1", "note:2", "note:3", "other"]
    assert await stores.kv.list(INST, "note:", limit=2) == {"note:1": "a", "note:2": "b"}
    assert await stores.kv.list(InstanceRef("ticket-agent", "other"), "note:") == {}


async def test_instances_are_isolated(stores: Stores, clock: FakeClock) -> None:
    other = InstanceRef("ticket-agent", "T-2")
    await stores.ledger.admit(INST, draft("a", "prompt:same"), now=clock())
    replay = await stores.ledger.admit(other, draft("b", "prompt:same"), now=clock())
    assert not replay.replayed and replay.record.sequence == 0


# --- the pending index (the sweeper's view) ---------------------------------------------


async def test_queued_work_is_pending_once_idle_past_the_threshold(stores: Stores, clock: FakeClock) -> None:
    admitted_at = clock()
    await stores.ledger.admit(INST, draft("x"), now=admitted_at)
    assert await stores.ledger.pending_instances(idle_since=admitted_at - 1, limit=10) == []
    clock.advance(300)
    assert await stores.ledger.pending_instances(idle_since=clock() - 300, limit=10) == [INST]
    # A failed attempt given back to the queue leaves the instance pending.
    c = await claim(stores, clock)
    assert c.record
    await stores.attempts.release(Fence.of(c.record), now=clock(), resume=False, not_before=clock() + 5, error={"type": "x"})
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]


async def test_settling_everything_leaves_the_pending_index(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await stores.ledger.admit(INST, draft("b"), now=clock())).record
    first = await claim(stores, clock, "a1")
    assert first.record and first.record.id == a.id
    admitted_at = clock()
    clock.advance(400)
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(first.record))
    # Work is left: still pending, since the admission of the oldest unsettled submission.
    assert await stores.ledger.pending_instances(idle_since=admitted_at - 1, limit=10) == []
    assert await stores.ledger.pending_instances(idle_since=admitted_at, limit=10) == [INST]
    second = await claim(stores, clock, "a2")
    assert second.record and second.record.id == b.id
    await stores.attempts.settle(INST, b.id, Outcome.completed, now=clock(), fence=Fence.of(second.record))
    clock.advance(1000)
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == []


async def test_an_aborted_queued_submission_leaves_the_pending_index(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    await stores.ledger.request_abort(INST, a.id, now=clock())
    await stores.attempts.settle(INST, a.id, Outcome.aborted, now=clock())
    clock.advance(1000)
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == []
    assert (await claim(stores, clock)).state == "idle"


async def test_admission_racing_the_last_settle_stays_pending(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    c = await claim(stores, clock)  # sees nothing admitted after `a`
    assert c.record and c.next_sequence == 1
    clock.advance(10)
    late = (await stores.ledger.admit(INST, draft("late"), now=clock())).record
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    assert (await stores.ledger.get(INST, a.id)).outcome is Outcome.completed  # type: ignore[union-attr]
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=10) == [INST]
    nxt = await claim(stores, clock, "a2")
    assert nxt.state == "claimed" and nxt.record and nxt.record.id == late.id


async def test_pending_instances_oldest_first_within_the_limit(stores: Stores, clock: FakeClock) -> None:
    refs = [InstanceRef("ticket-agent", f"T-{n}") for n in range(12)]
    for ref in reversed(refs):  # T-11 is admitted first, so it is the oldest
        await stores.ledger.admit(ref, draft("x"), now=clock())
        clock.advance(1)
    oldest_first = list(reversed(refs))
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=5) == oldest_first[:5]
    assert await stores.ledger.pending_instances(idle_since=clock(), limit=100) == oldest_first
    # Only those idle long enough (admitted at start, start+1, start+2; now is start+12).
    assert await stores.ledger.pending_instances(idle_since=clock() - 10, limit=100) == oldest_first[:3]



async def test_suspend_holds_the_head_until_resumed_with_its_result(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    b = (await stores.ledger.admit(INST, draft("b"), now=clock())).record
    c = await claim(stores, clock, "a1")
    assert c.record and c.record.id == a.id
    fence = Fence.of(c.record)
    j = Journal(applied=True, turn=1, phase=Phase.tools_requested, written=2, pending_calls=["c1", "c2"])
    await stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60)
    await stores.tool_results.record(fence, 1, ToolResultPart(call_id="c2", name="t", content="mine"), now=clock())
    await stores.attempts.suspend(fence, j, reason="child-c1", now=clock())
    waiting = await stores.ledger.get(INST, a.id)
    assert waiting and waiting.status is Status.waiting and waiting.waiting_on == "child-c1"
    assert waiting.attempts == 0, "a suspension spends no attempt"
    # It holds the head: b waits behind it; the suspended attempt can write nothing more.
    held = await claim(stores, clock, "a2")
    assert held.state == "waiting" and held.record and held.record.id == a.id
    with pytest.raises(StaleAttempt):
        await stores.attempts.checkpoint(fence, j, now=clock(), lease_seconds=60)
    # Only its own reason resumes it, once.
    answer = ToolResultPart(call_id="c1", name="task", content="child says hi")
    assert await stores.attempts.resume(INST, a.id, reason="other", now=clock(), result=answer) is False
    assert await stores.attempts.resume(INST, a.id, reason="child-c1", now=clock(), result=answer) is True
    assert await stores.attempts.resume(INST, a.id, reason="child-c1", now=clock(), result=answer) is False
    again = await claim(stores, clock, "a3")
    assert again.state == "claimed" and again.record and again.record.id == a.id
    assert again.record.journal.turn == 1 and again.record.journal.phase is Phase.tools_requested
    assert again.record.waiting_on is None and again.record.attempts == 1
    results = await stores.tool_results.of_turn(INST, a.sequence, 1)
    assert {k: v.content for k, v in results.items()} == {"c1": "child says hi", "c2": "mine"}
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(again.record))
    nxt = await claim(stores, clock, "a4")
    assert nxt.record and nxt.record.id == b.id


async def test_a_waiting_submission_can_be_settled_without_an_attempt(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    await stores.attempts.suspend(Fence.of(c.record), Journal(applied=True, turn=1), reason="r", now=clock())
    flagged = await stores.ledger.request_abort(INST, a.id, now=clock())
    assert flagged.status is Status.waiting and flagged.abort_requested
    await stores.attempts.settle(INST, a.id, Outcome.aborted, now=clock(), error={"type": "aborted"})
    settled = await stores.ledger.get(INST, a.id)
    assert settled and settled.outcome is Outcome.aborted and settled.waiting_on is None
    assert await stores.attempts.resume(INST, a.id, reason="r", now=clock()) is False


async def test_suspend_is_fenced_and_refused_after_an_abort(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    stale = Fence.of(c.record.model_copy(update={"attempt_id": "someone-else"}))
    with pytest.raises(StaleAttempt):
        await stores.attempts.suspend(stale, Journal(), reason="r", now=clock())
    await stores.ledger.request_abort(INST, a.id, now=clock())
    with pytest.raises(AbortRequested):
        await stores.attempts.suspend(Fence.of(c.record), Journal(), reason="r", now=clock())
    still = await stores.ledger.get(INST, a.id)
    assert still and still.status is Status.running


async def test_a_lease_ending_exactly_now_still_holds(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    c = await claim(stores, clock, "a1", lease=30)
    assert c.record
    clock.advance(30)  # now == lease_until
    assert (await claim(stores, clock, "a2")).state == "busy"
    with pytest.raises(StaleAttempt):
        await stores.attempts.settle(INST, a.id, Outcome.aborted, now=clock())
    clock.advance(0.001)
    taken = await claim(stores, clock, "a3")
    assert taken.state == "claimed" and taken.record and taken.record.attempt_id == "a3"


async def test_checkpoint_renews_the_lease(stores: Stores, clock: FakeClock) -> None:
    await stores.ledger.admit(INST, draft("x"), now=clock())
    c = await claim(stores, clock, "a1", lease=10)
    assert c.record
    clock.advance(8)
    journal = Journal(applied=True, turn=1, phase=Phase.before_model, written=1)
    await stores.attempts.checkpoint(Fence.of(c.record), journal, now=clock(), lease_seconds=10, messages=[Message.user("x")])
    clock.advance(5)  # past the claim's lease, within the renewed one
    busy = await claim(stores, clock, "a2")
    assert busy.state == "busy" and busy.record and busy.record.lease_until == clock() + 5
    # A checkpoint without messages (a plain journal update) renews it too.
    journal = Journal(applied=True, turn=1, phase=Phase.model_done, written=1)
    await stores.attempts.checkpoint(Fence.of(c.record), journal, now=clock(), lease_seconds=10)
    clock.advance(9)
    assert (await claim(stores, clock, "a3")).state == "busy"
    clock.advance(2)
    assert (await claim(stores, clock, "a4")).state == "claimed"


async def test_release_succeeds_on_an_abort_requested_submission(stores: Stores, clock: FakeClock) -> None:
    # An attempt out of time (or failing) gives the submission back even though an abort
    # was asked meanwhile: the next claim sees the flag and settles it `aborted`.
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock, "a1")
    assert c.record
    await stores.ledger.request_abort(INST, record.id, now=clock())
    await stores.attempts.release(Fence.of(c.record), now=clock(), resume=True, not_before=None, error=None)
    released = await stores.ledger.get(INST, record.id)
    assert released and released.status is Status.queued and released.abort_requested
    assert released.attempt_id is None and released.attempts == 0
    again = await claim(stores, clock, "a2")
    assert again.state == "claimed" and again.record and again.record.abort_requested
    await stores.attempts.release(Fence.of(again.record), now=clock(), resume=False, not_before=clock() + 1, error={"type": "boom"})
    failed = await stores.ledger.get(INST, record.id)
    assert failed and failed.status is Status.queued and failed.error == {"type": "boom"} and failed.attempts == 1


async def test_a_release_keeps_the_journal_it_is_given(stores: Stores, clock: FakeClock) -> None:
    record = (await stores.ledger.admit(INST, draft("x"), now=clock())).record
    c = await claim(stores, clock)
    assert c.record
    journal = Journal(applied=True, turn=2, phase=Phase.tools_requested, written=3, pending_calls=["c1"], handed_back=True)
    await stores.attempts.release(Fence.of(c.record), now=clock(), resume=True, not_before=None, error=None, journal=journal)
    released = await stores.ledger.get(INST, record.id)
    assert released and released.journal == journal and released.status is Status.queued
    again = await claim(stores, clock, "a2")
    assert again.record and again.record.journal == journal


async def test_children_are_listed_in_ref_order_and_the_first_entry_wins(stores: Stores, clock: FakeClock) -> None:
    def entry(ref: str, submission: str = "sub-0000000000-aaaaaaaa") -> ChildEntry:
        child = InstanceRef("researcher", f"{INST.id}~{ref}")
        return ChildEntry(ref, child, submission, f"call-{ref}", "sub-0000000003-bbbbbbbb", clock())

    for ref in ("c3", "a1", "b2"):
        await stores.child_index.add(INST, entry(ref))
    await stores.child_index.add(INST, entry("a1", "sub-0000000009-cccccccc"))  # the call ran again
    assert [e.ref for e in await stores.child_index.page(INST, after=None, limit=10)] == ["a1", "b2", "c3"]
    assert [e.ref for e in await stores.child_index.page(INST, after="a1", limit=1)] == ["b2"]
    first = await stores.child_index.get(INST, "a1")
    assert first == entry("a1")
    assert await stores.child_index.get(INST, "zz") is None
    assert await stores.child_index.page(InstanceRef("ticket-agent", "other"), after=None, limit=10) == []


async def test_a_sessions_state_is_written_by_the_attempt_that_holds_it(stores: Stores, clock: FakeClock) -> None:
    assert await stores.sessions.get(INST, "default") == SessionState()
    await stores.ledger.admit(INST, draft("hi"), now=clock())
    first = await claim(stores, clock, "a1", lease=5)
    assert first.record
    state = SessionState(owner="BillingAgent", context={"tier": "gold", "n": [1, 2]}, status="drafting")
    await stores.sessions.put(Fence.of(first.record), state, now=clock())
    assert await stores.sessions.get(INST, "default") == state
    assert await stores.sessions.get(INST, "other") == SessionState(), "sessions are apart"
    clock.advance(10)  # the lease ends: another attempt takes over
    second = await claim(stores, clock, "a2")
    assert second.record
    with pytest.raises(StaleAttempt):
        await stores.sessions.put(Fence.of(first.record), SessionState(owner="Stale"), now=clock())
    await stores.sessions.put(Fence.of(second.record), SessionState(owner="TriageAgent"), now=clock())
    assert (await stores.sessions.get(INST, "default")).owner == "TriageAgent"


async def test_a_resumable_childs_latest_submission_is_noted(stores: Stores, clock: FakeClock) -> None:
    child = InstanceRef("monitor", f"{INST.id}~d4")
    first = ChildEntry("d4", child, "sub-0000000000-aaaaaaaa", "call-1", "sub-0000000003-bbbbbbbb", clock(), resumable=True)
    await stores.child_index.add(INST, first)
    assert (await stores.child_index.get(INST, "d4")) == first and first.latest_submission_id == first.submission_id
    await stores.child_index.note_submission(INST, "d4", "sub-0000000001-cccccccc")
    noted = await stores.child_index.get(INST, "d4")
    assert noted and noted.resumable and noted.submission_id == "sub-0000000000-aaaaaaaa"
    assert noted.latest_submission_id == "sub-0000000001-cccccccc"
    await stores.child_index.note_submission(INST, "zz", "sub-0000000001-cccccccc")  # unknown: nothing made
    assert await stores.child_index.get(INST, "zz") is None

__all__ = ["pytestmark", *(name for name in dict(globals()) if name.startswith("test_"))]
