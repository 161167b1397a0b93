"""The contract of `Ledger.instances`, each agent's listing of its instances: part of the
instance-store contract (`agent_runtime.testing.contract`), run the same way (fixtures
``stores`` and ``clock``)."""

from __future__ import annotations

import pytest

from agent_runtime.errors import InvalidInput
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence, Outcome
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import FakeClock
from agent_runtime.testing.contract import INST, claim, draft

pytestmark = pytest.mark.asyncio

AGENT = "ticket-agent"


async def test_an_instance_is_listed_from_its_first_admission(stores: Stores, clock: FakeClock) -> None:
    ref = InstanceRef(AGENT, "L-1")
    assert (await stores.ledger.instances(AGENT, now=clock())).instances == []
    admitted_at = clock()
    await stores.ledger.admit(ref, draft("a"), now=admitted_at)
    page = await stores.ledger.instances(AGENT, now=clock())
    assert page.next_cursor is None
    [listed] = page.instances
    assert listed.instance == ref and listed.last_activity == admitted_at
    assert (listed.status, listed.submissions, listed.settled) == ("queued", 1, 0)


async def test_the_listing_follows_claims_and_settles(stores: Stores, clock: FakeClock) -> None:
    a = (await stores.ledger.admit(INST, draft("a"), now=clock())).record
    admitted_at = clock()
    await stores.ledger.admit(INST, draft("b"), now=admitted_at)
    c = await claim(stores, clock, lease=60)
    assert c.record
    [running] = (await stores.ledger.instances(INST.agent, now=clock())).instances
    assert (running.status, running.submissions, running.settled) == ("running", 2, 0)
    # A lease past its end: the work waits for another claim.
    [expired] = (await stores.ledger.instances(INST.agent, now=clock() + 61)).instances
    assert expired.status == "queued"
    clock.advance(5)
    await stores.attempts.settle(INST, a.id, Outcome.completed, now=clock(), fence=Fence.of(c.record))
    [after] = (await stores.ledger.instances(INST.agent, now=clock())).instances
    assert (after.status, after.submissions, after.settled, after.last_activity) == ("queued", 2, 1, admitted_at)
    second = await claim(stores, clock, "a2")
    assert second.record
    clock.advance(5)
    await stores.attempts.settle(INST, second.record.id, Outcome.failed, now=clock(), fence=Fence.of(second.record))
    [idle] = (await stores.ledger.instances(INST.agent, now=clock())).instances
    # Activity is admission: settles move no instance up the listing.
    assert (idle.status, idle.submissions, idle.settled, idle.last_activity) == ("idle", 2, 2, admitted_at)


async def test_instances_are_paged_latest_admission_first(stores: Stores, clock: FakeClock) -> None:
    refs = [InstanceRef(AGENT, f"P-{n}") for n in range(7)]
    for ref in refs:
        await stores.ledger.admit(ref, draft("x"), now=clock())
        clock.advance(1)
    seen: list[InstanceRef] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await stores.ledger.instances(AGENT, now=clock(), limit=3, cursor=cursor)
        seen += [s.instance for s in page.instances]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(refs)) and pages == 3
    # A new admission moves an instance to the front.
    await stores.ledger.admit(refs[0], draft("again"), now=clock())
    first = (await stores.ledger.instances(AGENT, now=clock(), limit=1)).instances
    assert [s.instance for s in first] == [refs[0]]


async def test_other_agents_instances_are_not_listed(stores: Stores, clock: FakeClock) -> None:
    mine, theirs = InstanceRef(AGENT, "O-1"), InstanceRef("other-agent", "O-1")
    await stores.ledger.admit(mine, draft("a"), now=clock())
    await stores.ledger.admit(theirs, draft("b"), now=clock())
    assert [s.instance for s in (await stores.ledger.instances(AGENT, now=clock())).instances] == [mine]
    assert [s.instance for s in (await stores.ledger.instances("other-agent", now=clock())).instances] == [theirs]
    assert (await stores.ledger.instances("nobody", now=clock())).instances == []


async def test_a_malformed_cursor_is_refused(stores: Stores, clock: FakeClock) -> None:
    for cursor in ("", "abc", "12~", "1.5~a/b", "x~T-1"):
        with pytest.raises(InvalidInput):
            await stores.ledger.instances(AGENT, now=clock(), cursor=cursor)
