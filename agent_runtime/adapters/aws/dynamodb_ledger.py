"""`Ledger` on DynamoDB: admission, reads of submissions, the abort flag, and the
sweeper's pending index (see `agent_runtime.adapters.aws.dynamodb` for the layout).
"""

from __future__ import annotations

import asyncio
import random
import secrets
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb_items import (
    _SEQ_MAX,
    _SHARD,
    _SINCE,
    Item,
    _cancel_reasons,
    _code,
    _int,
    _key,
    _n,
    _pk,
    _s,
    _sub,
    pending_shard,
)
from agent_runtime.adapters.aws.dynamodb_table import TablePort
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import AlreadySettled, Conflict, LedgerError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Admission, Draft, SubmissionRecord, sequence_of, submission_id_for

MAX_ADMIT_RETRIES = 200


class DynamoDBLedger(TablePort):
    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        payload_blob = f"payloads/{secrets.token_hex(8)}.json"
        for attempt in range(MAX_ADMIT_RETRIES):
            meta = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True)).get("Item")
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
                await offload(self.client.transact_write_items, TransactItems=items)
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
            receipt = (await offload(
                self.client.get_item, TableName=self.table, Key=_key(instance, f"RCPT#{draft.receipt_key}"), ConsistentRead=True
            ))["Item"]
        submission_id = receipt["submission_id"]["S"]
        if receipt["hash"]["S"] != draft.receipt_hash:
            kind, _, key = draft.receipt_key.partition(":")
            raise Conflict(f"{kind} key was used with other input", details={"key": key, "submission_id": submission_id})
        record = await self.get(instance, submission_id)
        assert record is not None
        return Admission(record, replayed=True)

    async def get(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None:
        item = (await offload(
            self.client.get_item, TableName=self.table, Key=_key(instance, _sub(sequence_of(submission_id))), ConsistentRead=True
        )).get("Item")
        if item is None or item["id"]["S"] != submission_id:
            return None
        return await self.items.record(item)

    async def list_submissions(
        self, instance: InstanceRef, *, after: int = -1, limit: int = 100
    ) -> list[SubmissionRecord]:
        response = await offload(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": _s(_pk(instance)), ":lo": _s(_sub(after + 1)), ":hi": _s(f"SUB#{_SEQ_MAX}")},
            Limit=limit,
            ConsistentRead=True,
        )
        return [await self.items.record(item) for item in response["Items"]]

    async def unsettled(self, instance: InstanceRef, *, limit: int = 100) -> list[SubmissionRecord]:
        meta = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True)).get("Item")
        if meta is None:
            return []
        head = int(meta.get("head", {"N": "0"})["N"])
        found: list[SubmissionRecord] = []
        after = head - 1
        while len(found) < limit:
            page = await self.list_submissions(instance, after=after, limit=100)
            found += [r for r in page if not r.settled]
            if len(page) < 100:
                break
            after = page[-1].sequence
        return found[:limit]

    async def request_abort(self, instance: InstanceRef, submission_id: str, *, now: float) -> SubmissionRecord:
        try:
            item = (await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(instance, _sub(sequence_of(submission_id))),
                UpdateExpression="SET abort_requested = :true",
                ConditionExpression="id = :id AND #status <> :settled",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":true": {"BOOL": True}, ":id": _s(submission_id), ":settled": _s("settled")},
                ReturnValues="ALL_NEW",
            ))["Attributes"]
        except ClientError as exc:
            if _code(exc) != "ConditionalCheckFailedException":
                raise
            raise AlreadySettled(submission_id) from None
        return await self.items.record(item)

    async def abort_requested(self, instance: InstanceRef, submission_id: str) -> bool:
        item = (await offload(
            self.client.get_item,
            TableName=self.table,
            Key=_key(instance, _sub(sequence_of(submission_id))),
            ConsistentRead=True,
            ProjectionExpression="id, abort_requested",
        )).get("Item")
        if item is None or item["id"]["S"] != submission_id:
            return False
        return bool(item.get("abort_requested", {}).get("BOOL", False))

    # --- the sweeper's index -------------------------------------------------------

    async def pending_instances(self, *, idle_since: float, limit: int) -> list[InstanceRef]:
        """The oldest `limit` of each shard (one Query each, paged), merged oldest first."""
        found: list[tuple[float, str]] = []
        for shard in range(settings.PENDING_SHARDS):
            taken = 0
            kwargs: dict[str, Any] = {}
            while taken < limit:
                response = await offload(
                    self.client.query,
                    TableName=self.table,
                    IndexName=settings.PENDING_INDEX,
                    KeyConditionExpression="#shard = :shard AND #since <= :idle",
                    ExpressionAttributeNames={"#shard": _SHARD, "#since": _SINCE},
                    ExpressionAttributeValues={":shard": _n(shard), ":idle": _n(idle_since)},
                    Limit=limit - taken,
                    **kwargs,
                )
                for item in response["Items"]:
                    found.append((float(item[_SINCE]["N"]), item["pk"]["S"][2:]))
                taken += len(response["Items"])
                if "LastEvaluatedKey" not in response:
                    break
                kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [InstanceRef.parse(key) for _, key in sorted(found)[:limit]]
