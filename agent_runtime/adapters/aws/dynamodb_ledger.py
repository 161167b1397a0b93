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
    _ACTIVE,
    _AGENT,
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
from agent_runtime.ports import (
    InstancePage,
    InstanceStatus,
    InstanceSummary,
    instances_cursor,
    parse_instances_cursor,
)

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
                            f"SET next_seq = :next, head = if_not_exists(head, :zero), {_SHARD} = :shard, {_SINCE} = :now, "
                            f"{_AGENT} = :agent, {_ACTIVE} = :now"
                        ),
                        "ConditionExpression": "attribute_not_exists(next_seq) OR next_seq = :seq",
                        "ExpressionAttributeValues": {
                            ":next": _n(seq + 1),
                            ":seq": _n(seq),
                            ":zero": _n(0),
                            ":shard": _n(pending_shard(instance)),
                            ":now": _n(now),
                            ":agent": _s(instance.agent),
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

    # --- the instances index (listings) -------------------------------------------

    async def instances(self, agent: str, *, now: float, limit: int = 50, cursor: str | None = None) -> InstancePage:
        """One Query of the agent's partition of the index (newest first, one item more
        than the page to know whether another follows), then one BatchGetItem of the head
        items of the instances with unsettled work, for their status."""
        kwargs: dict[str, Any] = {}
        if cursor is not None:
            active, instance_id = parse_instances_cursor(cursor)
            start = InstanceRef(agent, instance_id)
            kwargs["ExclusiveStartKey"] = {**_key(start, "META"), _AGENT: _s(agent), _ACTIVE: _n(active)}
        response = await offload(
            self.client.query,
            TableName=self.table,
            IndexName=settings.INSTANCES_INDEX,
            KeyConditionExpression="#agent = :agent",
            ExpressionAttributeNames={"#agent": _AGENT},
            ExpressionAttributeValues={":agent": _s(agent)},
            ScanIndexForward=False,
            Limit=limit + 1,
            **kwargs,
        )
        metas = response["Items"][:limit]
        busy = [m for m in metas if _int(m, "head") < _int(m, "next_seq")]
        heads = await self._heads([(InstanceRef.parse(m["pk"]["S"][2:]), _int(m, "head")) for m in busy])
        page = [
            InstanceSummary(
                ref,
                float(meta[_ACTIVE]["N"]),
                _status(heads.get(ref.key), _int(meta, "head") + 1 < _int(meta, "next_seq"), now),
                submissions=_int(meta, "next_seq"),
                settled=_int(meta, "head"),
            )
            for meta, ref in ((m, InstanceRef.parse(m["pk"]["S"][2:])) for m in metas)
        ]
        more = len(response["Items"]) > limit
        return InstancePage(page, instances_cursor(page[-1]) if more else None)

    async def _heads(self, heads: list[tuple[InstanceRef, int]]) -> dict[str, Item]:
        """The head items of these instances (status and lease only), by instance key."""
        found: dict[str, Item] = {}
        keys = [_key(ref, _sub(head)) for ref, head in heads]
        request: dict[str, Any] = {
            self.table: {"Keys": keys, "ProjectionExpression": "pk, #status, lease_until", "ExpressionAttributeNames": {"#status": "status"}}
        }
        while keys and request:
            response = await offload(self.client.batch_get_item, RequestItems=request)
            for item in response["Responses"].get(self.table, []):
                found[item["pk"]["S"][2:]] = item
            request = response.get("UnprocessedKeys") or {}
        return found

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


def _status(head: Item | None, more: bool, now: float) -> InstanceStatus:
    """An instance's status from its head item (None: nothing unsettled, so idle) and
    whether anything was admitted after the head (`more`), as the memory store decides."""
    if head is None:
        return "idle"
    status = head["status"]["S"]
    if status == "running" and float(head.get("lease_until", {"N": "0"})["N"]) >= now:
        return "running"
    if status == "waiting":
        return "waiting"
    return "queued" if status != "settled" or more else "idle"
