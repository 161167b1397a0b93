"""`Attempts` on DynamoDB: fenced checkpoints, hand-backs, suspension and the terminal
write (claims are `agent_runtime.adapters.aws.dynamodb_claims`); the layout is described
in `agent_runtime.adapters.aws.dynamodb`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_claims import HEAD_LAG, DynamoDBClaims, Hint, Hints
from agent_runtime.adapters.aws.dynamodb_items import (
    _SHARD,
    _SINCE,
    Item,
    _cancel_reasons,
    _code,
    _journal,
    _key,
    _n,
    _old_item,
    _s,
    _sub,
)
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import AlreadySettled, LedgerError, StaleAttempt
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence, Journal, Outcome, sequence_of
from agent_runtime.messages import Message, ToolResultPart


class DynamoDBAttempts(DynamoDBClaims):
    def __init__(self, client: Any, table: str, items: Any) -> None:
        super().__init__(client, table, items)
        self.hints = Hints()

    async def _message_puts(self, instance: InstanceRef, session: str, seq: int, start: int, messages: Iterable[Message]) -> list[Item]:
        items = await self.items.messages(instance, session, seq, start, messages)
        return [{"Put": {"TableName": self.table, "Item": item}} for item in items]

    async def record_input(self, fence: Fence, message: Message) -> None:
        """The input message at index 0 of the submission, unless it is there: one put, not
        fenced by a transaction. Its key and content are the submission's own, so an
        attempt that lost its claim can only write what the live one writes; the first
        write stands."""
        [item] = await self.items.messages(fence.instance, fence.session, fence.sequence, 0, [message])
        await self._write_if("put_item", Item=item, ConditionExpression="attribute_not_exists(sk)")

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
            # Settled work leaves the pending index (its keys are on unsettled SUB items only).
            "UpdateExpression": "SET " + ", ".join(sets) + f" REMOVE lease_until, waiting_on, {_SHARD}, {_SINCE}",
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
        items: list[Item] = [{"Update": update}]
        if journal is not None and messages:
            items += await self._message_puts(instance, fence.session, seq, journal.written - len(messages), messages)
        try:
            reasons = await self._transact_fenced(fence, items, honour_abort=honour_abort)
        except StaleAttempt:
            old = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, _sub(seq)), ConsistentRead=True)).get("Item")
            if old is not None and old["status"]["S"] == "settled":
                raise AlreadySettled(submission_id) from None
            raise
        if reasons:
            raise LedgerError(f"settle of {submission_id} was cancelled: {reasons}")
        await self._settled_head(instance, seq)

    async def _settled_head(self, instance: InstanceRef, seq: int) -> None:
        """The fenced attempt ran the head, so the head is now past it: the hint for this
        worker's next claim, and META's head once it trails by `HEAD_LAG`."""
        hint = self.hints.get(instance)
        known = hint.next_seq if hint is not None and hint.head == seq else 0
        meta_head = hint.meta_head if hint is not None else 0
        if seq + 1 - meta_head >= HEAD_LAG:
            await self._move_head(instance, meta_head, seq + 1)
            meta_head = seq + 1
        self.hints.put(instance, Hint(seq + 1, max(known, seq + 1), meta_head))
