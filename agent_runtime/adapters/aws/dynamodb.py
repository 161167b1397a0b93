"""The instance store on one DynamoDB table; partition key = instance.

The item layout (keys, attributes, JSON over `SPILL_BYTES` spilled to S3) is described
in `agent_runtime.adapters.aws.dynamodb_items`, with `Items`, the codec that turns
records and messages into items and back. This module holds the ledger's writes, top to
bottom; the reads (submissions, history, tool results, the pending index) are in
`agent_runtime.adapters.aws.dynamodb_reads`, and `DynamoDBStore` inherits them.

Every write of an attempt carries the fence condition
``attempt_id = :attempt AND #status = :running`` (plus ``abort_requested = :false``
where an abort must stop the attempt). The failure's old item (returned with
``ReturnValuesOnConditionCheckFailure=ALL_OLD``) says which domain error to raise.

The sweeper finds instances with idle work without a scan, through the sparse global
secondary index ``pending`` (keys only): partition key ``pending_shard`` (number,
``0..PENDING_SHARDS-1``, a stable hash of the instance key, so no one partition takes
every write), sort key ``pending_since`` (number, epoch seconds). Only META items carry
them: admission sets both (in its transaction) and so does a fenced settle that leaves
admitted work behind it; the settle that moves the head to ``next_seq`` removes them, on
the condition that nothing was admitted meanwhile, and so does a `claim_head` that finds
nothing unsettled. ``pending_since`` is thus the instance's last admission or settle, and
the sweeper asks for ``pending_since <= now - idle``. Index reads are eventually
consistent: a wake-up too many is harmless, and none is ever missed for long.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
from collections.abc import Iterable
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import (
    _SHARD,
    _SINCE,
    SPILL_BYTES,
    Item,
    Items,
    _cancel_reasons,
    _code,
    _int,
    _key,
    _n,
    _old_item,
    _s,
    _sub,
    pending_shard,
)
from agent_runtime.adapters.aws.dynamodb_reads import StoreReads
from agent_runtime.errors import (
    AbortRequested,
    AlreadySettled,
    Conflict,
    LedgerError,
    PayloadTooLarge,
    StaleAttempt,
)
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import (
    Admission,
    Claim,
    Draft,
    Fence,
    Journal,
    Outcome,
    SubmissionRecord,
    sequence_of,
    submission_id_for,
)
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.ports import BlobStore

__all__ = ["KV_MAX_BYTES", "MAX_ADMIT_RETRIES", "SPILL_BYTES", "DynamoDBStore", "pending_shard"]

KV_MAX_BYTES = 350 * 1024
MAX_ADMIT_RETRIES = 200
#: How many (instance -> next_seq seen at claim) hints a store keeps; see `settle`.
_CLAIM_HINTS = 4096


class DynamoDBStore(StoreReads):
    """`InstanceStore` on DynamoDB (+ S3 for big attributes). Clients are passed in."""

    def __init__(self, client: Any, table: str, blobs: BlobStore, *, spill_bytes: int = SPILL_BYTES) -> None:
        self.client = client
        self.table = table
        self.items = Items(blobs, spill_bytes=spill_bytes)
        # instance key -> (sequence claimed, next_seq read by that claim): lets `settle`
        # know whether more work was admitted without reading META again.
        self._claimed: dict[str, tuple[int, int]] = {}

    # --- fencing -------------------------------------------------------------------

    def _fence_error(self, fence: Fence, old: Item | None, *, honour_abort: bool) -> LedgerError:
        held = old is not None and old.get("attempt_id", {}).get("S") == fence.attempt_id and old["status"]["S"] == "running"
        if held and honour_abort and old and old.get("abort_requested", {}).get("BOOL"):
            return AbortRequested(fence.submission_id)
        return StaleAttempt(fence.submission_id, fence.attempt_id)

    def _fence_condition(self, fence: Fence, *, honour_abort: bool) -> tuple[str, Item]:
        expression = "attempt_id = :attempt AND #status = :running"
        values: Item = {":attempt": _s(fence.attempt_id), ":running": _s("running")}
        if honour_abort:
            expression += " AND abort_requested = :false"
            values[":false"] = {"BOOL": False}
        return expression, values

    # --- admission -----------------------------------------------------------------

    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        payload_blob = f"payloads/{secrets.token_hex(8)}.json"
        for attempt in range(MAX_ADMIT_RETRIES):
            meta = self.client.get_item(TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True).get("Item")
            seq = _int(meta, "next_seq") if meta else 0
            record = SubmissionRecord(
                id=submission_id_for(seq),
                instance=instance.key,
                sequence=seq,
                kind=draft.kind,
                session=draft.session,
                payload=draft.payload,
                accepted_at=now,
                max_attempts=draft.max_attempts,
                timeout_s=draft.timeout_s,
                receipt_key=draft.receipt_key,
            )
            # Two admissions may read the same next_seq; the condition on META lets
            # exactly one of them write SUB#seq, the other re-reads and takes seq+1.
            items: list[Item] = [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _key(instance, "META"),
                        "UpdateExpression": (
                            f"SET next_seq = :next, head = if_not_exists(head, :zero), {_SHARD} = :shard, {_SINCE} = :now"
                        ),
                        "ConditionExpression": "attribute_not_exists(next_seq) OR next_seq = :seq",
                        "ExpressionAttributeValues": {
                            ":next": _n(seq + 1),
                            ":seq": _n(seq),
                            ":zero": _n(0),
                            ":shard": _n(pending_shard(instance)),
                            ":now": _n(now),
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": await self.items.ledger_item(instance, record, payload_blob),
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
            ]
            if draft.receipt_key is not None:
                items.append(
                    {
                        "Put": {
                            "TableName": self.table,
                            "Item": {
                                **_key(instance, f"RCPT#{draft.receipt_key}"),
                                "hash": _s(draft.receipt_hash or ""),
                                "submission_id": _s(record.id),
                                "accepted_at": _n(now),
                            },
                            "ConditionExpression": "attribute_not_exists(sk)",
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                        }
                    }
                )
            try:
                self.client.transact_write_items(TransactItems=items)
                return Admission(record, replayed=False)
            except ClientError as error:
                if _code(error) != "TransactionCanceledException":
                    raise
                reasons = _cancel_reasons(error)
                if draft.receipt_key is not None and len(reasons) > 2 and reasons[2].get("Code") == "ConditionalCheckFailed":
                    return await self._replay(instance, draft, reasons[2].get("Item"))
                await asyncio.sleep(random.uniform(0, min(0.05, 0.002 * (attempt + 1))))
        raise LedgerError(f"could not admit to {instance} after {MAX_ADMIT_RETRIES} tries (contention)")

    async def _replay(self, instance: InstanceRef, draft: Draft, receipt: Item | None) -> Admission:
        assert draft.receipt_key is not None
        if receipt is None:
            receipt = self.client.get_item(
                TableName=self.table, Key=_key(instance, f"RCPT#{draft.receipt_key}"), ConsistentRead=True
            )["Item"]
        submission_id = receipt["submission_id"]["S"]
        if receipt["hash"]["S"] != draft.receipt_hash:
            kind, _, key = draft.receipt_key.partition(":")
            raise Conflict(f"{kind} key was used with other input", details={"key": key, "submission_id": submission_id})
        record = await self.get(instance, submission_id)
        assert record is not None
        return Admission(record, replayed=True)

    # --- attempts ------------------------------------------------------------------

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        meta = self.client.get_item(TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True).get("Item")
        if meta is None:
            return Claim("idle", None, 0)
        head, next_seq = _int(meta, "head"), _int(meta, "next_seq")
        while head < next_seq:
            try:
                item = self.client.update_item(
                    TableName=self.table,
                    Key=_key(instance, _sub(head)),
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
                )["Attributes"]
                if len(self._claimed) >= _CLAIM_HINTS:
                    self._claimed.clear()
                self._claimed[instance.key] = (head, next_seq)
                return Claim("claimed", await self.items.record(item), next_seq)
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                old = _old_item(error)
                if old is None:
                    old = self.client.get_item(TableName=self.table, Key=_key(instance, _sub(head)), ConsistentRead=True)["Item"]
            status = old["status"]["S"]
            if status == "settled":
                self._advance_head(instance, head)
                head += 1
                continue
            state = {"waiting": "waiting", "running": "busy"}.get(status, "backoff")
            return Claim(state, await self.items.record(old), next_seq)  # type: ignore[arg-type]
        if _SINCE in meta:
            self._clear_pending(instance, next_seq)
        return Claim("idle", None, next_seq)

    def _clear_pending(self, instance: InstanceRef, next_seq: int) -> None:
        """Take an instance with nothing unsettled out of the pending index, unless an
        admission came after our read of META (then it stays, with that admission's time)."""
        try:
            self.client.update_item(
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
                "UpdateExpression": f"SET head = :next REMOVE {_SHARD}, {_SINCE}",
                "ConditionExpression": "next_seq = :next",
                "ExpressionAttributeValues": {":next": _n(seq + 1)},
            }
        return {
            "TableName": self.table,
            "Key": _key(instance, "META"),
            "UpdateExpression": f"SET head = :next, {_SHARD} = :shard, {_SINCE} = :now",
            "ExpressionAttributeValues": {":next": _n(seq + 1), ":shard": _n(pending_shard(instance)), ":now": _n(now)},
        }

    def _advance_head(self, instance: InstanceRef, head: int) -> None:
        try:
            self.client.update_item(
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

    def _transact_fenced(self, fence: Fence, items: list[Item], *, honour_abort: bool) -> list[dict[str, Any]]:
        """Run a transaction whose first item carries the fence; map a fence failure."""
        try:
            self.client.transact_write_items(TransactItems=items)
            return []
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            reasons = _cancel_reasons(error)
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise self._fence_error(fence, reasons[0].get("Item"), honour_abort=honour_abort) from None
            return reasons

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
        name, journal_attr = await self.items.json_attr(fence.instance, "journal", journal.model_dump(mode="json"), f"journal/{fence.sequence:010d}.json")
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
                self.client.update_item(**update, ReturnValuesOnConditionCheckFailure="ALL_OLD")
            except ClientError as error:
                if _code(error) != "ConditionalCheckFailedException":
                    raise
                raise self._fence_error(fence, _old_item(error), honour_abort=True) from None
            return
        start = journal.written - len(messages)
        puts = await self._message_puts(fence.instance, fence.session, fence.sequence, start, messages)
        reasons = self._transact_fenced(
            fence, [{"Update": {**update, "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}}, *puts], honour_abort=True
        )
        if reasons:
            raise LedgerError(f"checkpoint of {fence.submission_id} was cancelled: {reasons}")

    async def record_tool_result(self, fence: Fence, turn: int, result: ToolResultPart, *, now: float) -> None:
        condition, values = self._fence_condition(fence, honour_abort=True)
        name, value = await self.items.json_attr(
            fence.instance, "r", result.model_dump(mode="json"), f"tools/{fence.sequence:010d}-{turn:04d}-{result.call_id}.json"
        )
        self._transact_fenced(
            fence,
            [
                {
                    "ConditionCheck": {
                        "TableName": self.table,
                        "Key": _key(fence.instance, _sub(fence.sequence)),
                        "ConditionExpression": condition,
                        "ExpressionAttributeNames": {"#status": "status"},
                        "ExpressionAttributeValues": values,
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": {**_key(fence.instance, f"TR#{fence.sequence:010d}#{turn:04d}#{result.call_id}"), name: value},
                        # The first recorded result of a call wins; a second is dropped.
                        "ConditionExpression": "attribute_not_exists(sk)",
                    }
                },
            ],
            honour_abort=True,
        )

    async def release(
        self, fence: Fence, *, now: float, resume: bool, not_before: float | None, error: dict[str, Any] | None
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
        try:
            self.client.update_item(
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
        for attr, value in (("result", result), ("error", error), ("journal", journal.model_dump(mode="json") if journal else None)):
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
            condition = "#status <> :settled AND NOT (#status = :running AND lease_until > :now)"
            values[":running"] = _s("running")
        update: Item = {
            "TableName": self.table,
            "Key": _key(instance, _sub(seq)),
            "UpdateExpression": "SET " + ", ".join(sets) + " REMOVE lease_until",
            "ConditionExpression": f"id = :id AND ({condition})",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        if fence is None:
            try:
                self.client.update_item(**update)
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
        try:
            reasons = self._transact_fenced(fence, items, honour_abort=honour_abort)
            if reasons and drained and reasons[1].get("Code") == "ConditionalCheckFailed":
                items[1] = {"Update": self._head_update(instance, seq, now, drained=False)}
                reasons = self._transact_fenced(fence, items, honour_abort=honour_abort)
            if reasons:
                raise LedgerError(f"settle of {submission_id} was cancelled: {reasons}")
        except StaleAttempt:
            old = self.client.get_item(TableName=self.table, Key=_key(instance, _sub(seq)), ConsistentRead=True).get("Item")
            if old is not None and old["status"]["S"] == "settled":
                raise AlreadySettled(submission_id) from None
            raise

    async def request_abort(self, instance: InstanceRef, submission_id: str, *, now: float) -> SubmissionRecord:
        key = _key(instance, _sub(sequence_of(submission_id)))
        names = {"#status": "status"}
        try:
            item = self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET abort_requested = :true, #status = :settled, outcome = :aborted, settled_at = :now, #error = :error",
                ConditionExpression="id = :id AND #status = :queued",
                ExpressionAttributeNames={**names, "#error": "error"},
                ExpressionAttributeValues={
                    ":true": {"BOOL": True},
                    ":settled": _s("settled"),
                    ":aborted": _s("aborted"),
                    ":now": _n(now),
                    ":id": _s(submission_id),
                    ":queued": _s("queued"),
                    ":error": _s(json.dumps({"type": "aborted", "message": "aborted before it started"})),
                },
                ReturnValues="ALL_NEW",
            )["Attributes"]
            return await self.items.record(item)
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
        try:
            item = self.client.update_item(
                TableName=self.table,
                Key=key,
                UpdateExpression="SET abort_requested = :true",
                ConditionExpression="id = :id AND #status <> :settled",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues={":true": {"BOOL": True}, ":id": _s(submission_id), ":settled": _s("settled")},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise AlreadySettled(submission_id) from None
        return await self.items.record(item)

    # --- kv ------------------------------------------------------------------------

    async def kv_get(self, instance: InstanceRef, key: str) -> Any:
        item = self.client.get_item(TableName=self.table, Key=_key(instance, f"KV#{key}"), ConsistentRead=True).get("Item")
        return None if item is None else json.loads(item["value"]["S"])

    async def kv_put(self, instance: InstanceRef, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > KV_MAX_BYTES:
            raise PayloadTooLarge(f"kv value for {key!r} is over {KV_MAX_BYTES} bytes", details={"limit": KV_MAX_BYTES})
        self.client.put_item(TableName=self.table, Item={**_key(instance, f"KV#{key}"), "value": _s(text)})

    async def kv_delete(self, instance: InstanceRef, key: str) -> None:
        self.client.delete_item(TableName=self.table, Key=_key(instance, f"KV#{key}"))
