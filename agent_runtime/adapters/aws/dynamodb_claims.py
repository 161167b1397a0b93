"""How the DynamoDB store finds an instance's head and claims it (`Attempts.claim_head`).

The head is the first unsettled submission. Settles do not write it: META's ``head`` is a
lower bound, moved by the claims that walk past settled submissions and, every
`HEAD_LAG` settles, by the worker that settled them. A warm worker needs neither: its
settle remembers where the head went (`Hints`) and its next claim goes straight there.

A cold claim reads META (``head``, ``next_seq``), then the SUB items from ``head`` on in
one Query, and claims the first unsettled one. A sequence below ``next_seq`` without an
item is one an admission has taken and not written yet (its put follows its counter
update): the claim answers ``idle`` with nothing claimed (that admission's own wake-up
follows its put; the sweeper re-wakes the instance should it never come), and notes the
gap on META. A gap still there `GAP_GRACE_SECONDS` later belongs to an
admission that died between the two writes: the claim closes it with a void item, on
the condition that it is still empty, so a late put fails and its admission takes
another sequence. Nothing acknowledged is lost either way: an admission answers only
once its item is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import (
    Item,
    _code,
    _int,
    _key,
    _n,
    _old_item,
    _s,
    _sub,
    void_item,
)
from agent_runtime.adapters.aws.dynamodb_table import TablePort
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Claim

#: How many instances' hints a store keeps (a warm worker serves far fewer at a time).
HINTS_KEPT = 4096
#: A worker that settled this many submissions past META's head writes the head there.
HEAD_LAG = 32
#: How long a taken sequence may stay unwritten before a claim closes it.
GAP_GRACE_SECONDS = 5.0


@dataclass
class Hint:
    """What a worker knows of an instance after its own settle: the head (everything
    before it is settled), the admissions seen (a lower bound) and META's head."""

    head: int
    next_seq: int
    meta_head: int


class Hints:
    def __init__(self) -> None:
        self._hints: dict[str, Hint] = {}

    def pop(self, instance: InstanceRef) -> Hint | None:
        return self._hints.pop(instance.key, None)

    def get(self, instance: InstanceRef) -> Hint | None:
        return self._hints.get(instance.key)

    def put(self, instance: InstanceRef, hint: Hint) -> None:
        if len(self._hints) >= HINTS_KEPT:
            self._hints.clear()
        self._hints[instance.key] = hint


class DynamoDBClaims(TablePort):
    hints: Hints

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        hint = self.hints.pop(instance)
        if hint is not None:
            claimed, old = await self._claim_item(instance, hint.head, attempt_id=attempt_id, now=now, lease_seconds=lease_seconds)
            next_seq = max(hint.next_seq, hint.head + 1)
            if claimed is not None:
                return await self._claimed(instance, claimed, Hint(hint.head, next_seq, hint.meta_head))
            if old is not None and old["status"]["S"] != "settled":
                return await self._unclaimable(old, next_seq)
            # Nothing there yet, or settled elsewhere: META says more.
        meta = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True)).get("Item")
        if meta is None:
            return Claim("idle", None, 0)
        head, next_seq = _int(meta, "head"), _int(meta, "next_seq")
        seq = head
        while seq < next_seq:
            found = await self._first_unsettled(instance, seq, next_seq)
            if found is None:  # everything up to next_seq is settled
                seq = next_seq
                break
            seq, item = found
            if item is None:
                if await self._close_gap(instance, meta, seq, now):
                    continue
                await self._move_head(instance, head, seq)
                return Claim("idle", None, seq)
            await self._move_head(instance, head, seq)
            head = seq if seq - head >= HEAD_LAG else head
            claimed, old = await self._claim_item(instance, seq, attempt_id=attempt_id, now=now, lease_seconds=lease_seconds)
            if claimed is not None:
                return await self._claimed(instance, claimed, Hint(seq, next_seq, head))
            if old is not None and old["status"]["S"] != "settled":
                return await self._unclaimable(old, next_seq)
            # It settled between the read and the claim: walk on.
        await self._move_head(instance, head, seq)
        return Claim("idle", None, next_seq)

    async def _close_gap(self, instance: InstanceRef, meta: Item, seq: int, now: float) -> bool:
        """True when `seq` is now written or closed (walk on); False while its admission
        may still write it (the gap's first sighting is noted on META)."""
        if _int(meta, "gap_seq", -1) == seq and float(meta["gap_at"]["N"]) <= now - GAP_GRACE_SECONDS:
            await self._write_if("put_item", Item=void_item(instance, seq), ConditionExpression="attribute_not_exists(sk)")
            return True
        if _int(meta, "gap_seq", -1) != seq:
            await self._write_if(
                "update_item",
                Key=_key(instance, "META"),
                UpdateExpression="SET gap_seq = :seq, gap_at = :now",
                ConditionExpression="attribute_not_exists(gap_seq) OR gap_seq <> :seq",
                ExpressionAttributeValues={":seq": _n(seq), ":now": _n(now)},
            )
        return False

    async def _move_head(self, instance: InstanceRef, old: int, new: int) -> None:
        """Write META's head forward once it trails by `HEAD_LAG` (never back: another
        worker may be further on). Reading the few settled items between is cheaper than
        writing META at every claim."""
        if new - old >= HEAD_LAG:
            await self._write_if(
                "update_item",
                Key=_key(instance, "META"),
                UpdateExpression="SET head = :new",
                ConditionExpression="head < :new",
                ExpressionAttributeValues={":new": _n(new)},
            )

    async def _claim_item(
        self, instance: InstanceRef, seq: int, *, attempt_id: str, now: float, lease_seconds: float
    ) -> tuple[Item | None, Item | None]:
        """Start an attempt on SUB#seq: (the item claimed, None), or (None, the item as it
        was when it could not be claimed; None if it does not exist)."""
        try:
            item = (await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(instance, _sub(seq)),
                UpdateExpression=(
                    "SET #status = :running, attempt_id = :attempt, claims = claims + :one, "
                    "lease_until = :lease, started_at = if_not_exists(started_at, :now) REMOVE not_before"
                ),
                # Claimable: queued and past its backoff, or running on an expired lease
                # (its worker crashed). A live lease makes the claim fail: busy.
                ConditionExpression=(
                    "(#status = :queued AND (attribute_not_exists(not_before) OR not_before <= :now)) "
                    "OR (#status = :running AND lease_until < :now)"
                ),
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":running": _s("running"),
                    ":queued": _s("queued"),
                    ":attempt": _s(attempt_id),
                    ":one": _n(1),
                    ":lease": _n(now + lease_seconds),
                    ":now": _n(now),
                },
                ReturnValues="ALL_NEW",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            ))["Attributes"]
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return None, _old_item(error)
        return item, None

    async def _claimed(self, instance: InstanceRef, item: Item, hint: Hint) -> Claim:
        """The claim made; its settle finds the hint (see `DynamoDBAttempts.settle`)."""
        self.hints.put(instance, hint)
        return Claim("claimed", await self.items.record(item), hint.next_seq)

    async def _unclaimable(self, old: Item, next_seq: int) -> Claim:
        state = {"waiting": "waiting", "running": "busy"}.get(old["status"]["S"], "backoff")
        return Claim(state, await self.items.record(old), next_seq)  # type: ignore[arg-type]
