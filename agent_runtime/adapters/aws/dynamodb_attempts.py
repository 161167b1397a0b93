"""`Attempts` on DynamoDB: claims, fenced checkpoints, hand-backs, suspension and the
terminal write, with the pending index's rules (described in
`agent_runtime.adapters.aws.dynamodb`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import (
    _ACTIVE,
    _SHARD,
    _SINCE,
    Item,
    _cancel_reasons,
    _code,
    _int,
    _journal,
    _key,
    _n,
    _old_item,
    _s,
    _sub,
    pending_shard,
)
from agent_runtime.adapters.aws.dynamodb_table import TablePort
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import AlreadySettled, LedgerError, StaleAttempt
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Claim, Fence, Journal, Outcome, sequence_of
from agent_runtime.messages import Message, ToolResultPart

#: How many (instance -> next_seq seen at claim) and (instance -> head) hints a store
#: keeps; see `settle` and `claim_head`.
_CLAIM_HINTS = 4096


class DynamoDBAttempts(TablePort):
    def __init__(self, client: Any, table: str, items: Any) -> None:
        super().__init__(client, table, items)
        # instance key -> (sequence claimed, next_seq read by that claim): lets `settle`
        # know whether more work was admitted without reading META again.
        self._claimed: dict[str, tuple[int, int]] = {}
        # instance key -> (head, next_seq at least) after a fenced settle here moved the
        # head: the next `claim_head` of a warm worker goes straight to that item.
        self._heads: dict[str, tuple[int, int]] = {}

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        hint = self._heads.pop(instance.key, None)
        if hint is not None:
            claim = await self._claim_hinted(instance, hint, attempt_id=attempt_id, now=now, lease_seconds=lease_seconds)
            if claim is not None:
                return claim
        meta = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True)).get("Item")
        if meta is None:
            return Claim("idle", None, 0)
        head, next_seq = _int(meta, "head"), _int(meta, "next_seq")
        while head < next_seq:
            claimed, old = await self._claim_item(instance, head, attempt_id=attempt_id, now=now, lease_seconds=lease_seconds)
            if claimed is not None:
                return await self._claimed_head(instance, claimed, head, next_seq)
            if old is None:
                old = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, _sub(head)), ConsistentRead=True))["Item"]
            status = old["status"]["S"]
            if status == "settled":
                await self._advance_head(instance, head)
                head += 1
                continue
            return await self._unclaimable(old, next_seq)
        if _SINCE in meta:
            await self._clear_pending(instance, next_seq)
        return Claim("idle", None, next_seq)

    async def _claim_hinted(
        self, instance: InstanceRef, hint: tuple[int, int], *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim | None:
        """Claim the head this store moved to when it settled the one before (everything
        earlier is settled, and a head only moves forward), without reading META. None
        when the hint leads nowhere useful (nothing admitted there, or it settled since):
        the caller reads META. `next_seq` is then only a lower bound of the admissions,
        which `Claim.next_sequence` allows: each later admission has its own wake-up."""
        head, known = hint
        next_seq = max(known, head + 1)
        claimed, old = await self._claim_item(instance, head, attempt_id=attempt_id, now=now, lease_seconds=lease_seconds)
        if claimed is not None:
            return await self._claimed_head(instance, claimed, head, next_seq)
        if old is None or old["status"]["S"] == "settled":
            return None
        return await self._unclaimable(old, next_seq)

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

    async def _claimed_head(self, instance: InstanceRef, item: Item, head: int, next_seq: int) -> Claim:
        if len(self._claimed) >= _CLAIM_HINTS:
            self._claimed.clear()
        self._claimed[instance.key] = (head, next_seq)
        return Claim("claimed", await self.items.record(item), next_seq)

    async def _unclaimable(self, old: Item, next_seq: int) -> Claim:
        state = {"waiting": "waiting", "running": "busy"}.get(old["status"]["S"], "backoff")
        return Claim(state, await self.items.record(old), next_seq)  # type: ignore[arg-type]

    async def _clear_pending(self, instance: InstanceRef, next_seq: int) -> None:
        """Take an instance with nothing unsettled out of the pending index, unless an
        admission came after our read of META (then it stays, with that admission's time)."""
        try:
            await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(instance, "META"),
                UpdateExpression=f"REMOVE {_SHARD}, {_SINCE}",
                ConditionExpression="next_seq = :next",
                ExpressionAttributeValues={":next": _n(next_seq)},
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise

    def _head_update(self, instance: InstanceRef, seq: int, now: float, *, drained: bool) -> Item:
        """The META update of a fenced settle of `seq`: the head moves past it. `drained`:
        nothing was admitted after it, so the instance leaves the pending index; the
        condition makes a concurrent admission cancel the transaction instead."""
        if drained:
            return {
                "TableName": self.table,
                "Key": _key(instance, "META"),
                "UpdateExpression": f"SET head = :next, {_ACTIVE} = :now REMOVE {_SHARD}, {_SINCE}",
                "ConditionExpression": "next_seq = :next",
                "ExpressionAttributeValues": {":next": _n(seq + 1), ":now": _n(now)},
            }
        return {
            "TableName": self.table,
            "Key": _key(instance, "META"),
            "UpdateExpression": f"SET head = :next, {_SHARD} = :shard, {_SINCE} = :now, {_ACTIVE} = :now",
            "ExpressionAttributeValues": {":next": _n(seq + 1), ":shard": _n(pending_shard(instance)), ":now": _n(now)},
        }

    async def _advance_head(self, instance: InstanceRef, head: int) -> None:
        try:
            await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(instance, "META"),
                UpdateExpression="SET head = :next",
                ConditionExpression="head = :head",
                ExpressionAttributeValues={":next": _n(head + 1), ":head": _n(head)},
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise

    async def _message_puts(self, instance: InstanceRef, session: str, seq: int, start: int, messages: Iterable[Message]) -> list[Item]:
        items = await self.items.messages(instance, session, seq, start, messages)
        return [{"Put": {"TableName": self.table, "Item": item}} for item in items]

    async def checkpoint(
        self,
        fence: Fence,
        journal: Journal,
        *,
        now: float,
        lease_seconds: float,
        messages: list[Message] | None = None,
    ) -> None:
        condition, values = self._fence_condition(fence, honour_abort=True)
        name, journal_attr = await self.items.json_attr(fence.instance, "journal", _journal(journal), f"journal/{fence.sequence:010d}.json")
        update: Item = {
            "TableName": self.table,
            "Key": _key(fence.instance, _sub(fence.sequence)),
            "UpdateExpression": "SET #journal = :journal, lease_until = :lease",
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#status": "status", "#journal": name},
            "ExpressionAttributeValues": {**values, ":journal": journal_attr, ":lease": _n(now + lease_seconds)},
        }
        if not messages:
            try:
                await offload(self.client.update_item, **update, ReturnValuesOnConditionCheckFailure="ALL_OLD")
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                raise self._fence_error(fence, _old_item(error), honour_abort=True) from None
            return
        start = journal.written - len(messages)
        puts = await self._message_puts(fence.instance, fence.session, fence.sequence, start, messages)
        reasons = await self._transact_fenced(
            fence, [{"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}, *puts], honour_abort=True
        )
        if reasons:
            raise LedgerError(f"checkpoint of {fence.submission_id} was cancelled: {reasons}")

    async def release(
        self,
        fence: Fence,
        *,
        now: float,
        resume: bool,
        not_before: float | None,
        error: dict[str, Any] | None,
        journal: Journal | None = None,
    ) -> None:
        condition, values = self._fence_condition(fence, honour_abort=False)
        sets = ["#status = :queued", "yields = yields + :yield"]
        names = {"#status": "status"}
        values = {**values, ":queued": _s("queued"), ":yield": _n(1 if resume else 0)}
        if not_before is not None:
            sets.append("not_before = :not_before")
            values[":not_before"] = _n(not_before)
        if error is not None:
            name, attr = await self.items.json_attr(fence.instance, "error", error, f"errors/{fence.sequence:010d}.json")
            sets.append("#error = :error")
            names["#error"] = name
            values[":error"] = attr
        if journal is not None:
            name, attr = await self.items.json_attr(
                fence.instance, "journal", _journal(journal), f"journal/{fence.sequence:010d}.json"
            )
            sets.append("#journal = :journal")
            names["#journal"] = name
            values[":journal"] = attr
        try:
            await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(fence.instance, _sub(fence.sequence)),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE attempt_id, lease_until",
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise self._fence_error(fence, _old_item(exc), honour_abort=False) from None

    async def suspend(self, fence: Fence, journal: Journal, *, reason: str, now: float) -> None:
        condition, values = self._fence_condition(fence, honour_abort=True)
        name, journal_attr = await self.items.json_attr(
            fence.instance, "journal", _journal(journal), f"journal/{fence.sequence:010d}.json"
        )
        try:
            await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(fence.instance, _sub(fence.sequence)),
                UpdateExpression=(
                    "SET #status = :waiting, waiting_on = :reason, #journal = :journal, yields = yields + :one "
                    "REMOVE attempt_id, lease_until"
                ),
                ConditionExpression=condition,
                ExpressionAttributeNames={"#status": "status", "#journal": name},
                ExpressionAttributeValues={
                    **values,
                    ":waiting": _s("waiting"),
                    ":reason": _s(reason),
                    ":journal": journal_attr,
                    ":one": _n(1),
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise self._fence_error(fence, _old_item(exc), honour_abort=True) from None

    async def resume(
        self, instance: InstanceRef, submission_id: str, *, reason: str, now: float, result: ToolResultPart | None = None
    ) -> bool:
        seq = sequence_of(submission_id)
        key = _key(instance, _sub(seq))
        # Resumes are rare (a child's answer): one read for the turn the result belongs to.
        item = (await offload(self.client.get_item, TableName=self.table, Key=key, ConsistentRead=True)).get("Item")
        if item is None or item["id"]["S"] != submission_id:
            return False
        update: Item = {
            "TableName": self.table,
            "Key": key,
            "UpdateExpression": "SET #status = :queued REMOVE waiting_on",
            "ConditionExpression": "id = :id AND #status = :waiting AND waiting_on = :reason",
            "ExpressionAttributeNames": {"#status": "status"},
            "ExpressionAttributeValues": {
                ":id": _s(submission_id),
                ":queued": _s("queued"),
                ":waiting": _s("waiting"),
                ":reason": _s(reason),
            },
        }
        transaction: list[Item] = [{"Update": update}]
        if result is not None:
            turn = (await self.items.record(item)).journal.turn
            name, value = await self.items.json_attr(
                instance, "r", result.model_dump(mode="json"), f"tools/{seq:010d}-{turn:04d}-{result.call_id}.json"
            )
            transaction.append(
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**_key(instance, f"TR#{seq:010d}#{turn:04d}#{result.call_id}"), name: value},
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                }
            )
        try:
            await offload(self.client.transact_write_items, TransactItems=transaction)
        except ClientError as exc:
            if _code(exc) != "TransactionCanceledException":
                raise
            reasons = _cancel_reasons(exc)
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False
            raise LedgerError(f"resume of {submission_id} was cancelled: {reasons}") from None
        return True

    async def settle(
        self,
        instance: InstanceRef,
        submission_id: str,
        outcome: Outcome,
        *,
        now: float,
        fence: Fence | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        journal: Journal | None = None,
        messages: list[Message] | None = None,
        honour_abort: bool = False,
    ) -> None:
        seq = sequence_of(submission_id)
        sets = ["#status = :settled", "outcome = :outcome", "settled_at = :now"]
        names = {"#status": "status"}
        values: Item = {":settled": _s("settled"), ":outcome": _s(outcome.value), ":now": _n(now), ":id": _s(submission_id)}
        for attr, value in (("result", result), ("error", error), ("journal", _journal(journal) if journal else None)):
            if value is not None:
                name, encoded = await self.items.json_attr(instance, attr, value, f"{attr}s/{seq:010d}.json")
                sets.append(f"#{attr} = :{attr}")
                names[f"#{attr}"] = name
                values[f":{attr}"] = encoded
        if fence is not None:
            condition, fence_values = self._fence_condition(fence, honour_abort=honour_abort)
            values.update(fence_values)
        else:
            # No attempt of ours: only an unsettled submission no live attempt holds.
            # A lease ending exactly now still holds, as in `claim_head`.
            condition = "#status <> :settled AND NOT (#status = :running AND lease_until >= :now)"
            values[":running"] = _s("running")
        update: Item = {
            "TableName": self.table,
            "Key": _key(instance, _sub(seq)),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE lease_until, waiting_on",
            "ConditionExpression": f"id = :id AND ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if fence is None:
            try:
                await offload(self.client.update_item, **update)
                return
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise
                old = _old_item(exc)
                if old is None or old["status"]["S"] == "settled":
                    raise AlreadySettled(submission_id) from None
                raise StaleAttempt(submission_id, old.get("attempt_id", {}).get("S", "")) from None
        # The fenced attempt runs the head: settling it moves the head past it. When its
        # claim saw nothing admitted after it, the instance also leaves the pending index,
        # on the condition that this is still true:
        #   W: claim_head(seq 4) reads next_seq 5 ... runs
        #   A: admit(seq 5): next_seq 6, pending_since = now
        #   W: settle(4), drained -> META condition fails, transaction cancelled
        #   W: settle(4) again, not drained: the instance stays pending
        # Unconditionally, A's submission would leave the index, and nothing would re-wake
        # the instance if A's wake-up were lost.
        claimed = self._claimed.pop(instance.key, None)
        drained = claimed is None or claimed[0] != seq or claimed[1] <= seq + 1
        items: list[Item] = [{"Update": update}, {"Update": self._head_update(instance, seq, now, drained=drained)}]
        if journal is not None and messages:
            items += await self._message_puts(instance, fence.session, seq, journal.written - len(messages), messages)
        known = max(seq + 1, claimed[1] if claimed else 0)
        try:
            reasons = await self._transact_fenced(fence, items, honour_abort=honour_abort)
            if reasons and drained and reasons[1].get("Code") == "ConditionalCheckFailed":
                items[1] = {"Update": self._head_update(instance, seq, now, drained=False)}
                reasons = await self._transact_fenced(fence, items, honour_abort=honour_abort)
                known = seq + 2  # the condition failed: something was admitted after seq
            if reasons:
                raise LedgerError(f"settle of {submission_id} was cancelled: {reasons}")
            if len(self._heads) >= _CLAIM_HINTS:
                self._heads.clear()
            self._heads[instance.key] = (seq + 1, known)
        except StaleAttempt:
            old = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, _sub(seq)), ConsistentRead=True)).get("Item")
            if old is not None and old["status"]["S"] == "settled":
                raise AlreadySettled(submission_id) from None
            raise

