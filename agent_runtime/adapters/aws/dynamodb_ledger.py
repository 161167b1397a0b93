"""`Ledger` on DynamoDB: admission, reads of submissions, the abort flag, and the
sweeper's pending index (see `agent_runtime.adapters.aws.dynamodb` for the layout).
"""

from __future__ import annotations

import asyncio
import logging
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
    _is_void,
    _key,
    _n,
    _pk,
    _s,
    _sub,
    pending_shard,
    void_item,
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

MAX_ADMIT_RETRIES = 20

log = logging.getLogger("agent_runtime")


class DynamoDBLedger(TablePort):
    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        """Take the next sequence from META's counter (one update, which also lists the
        instance), then write the SUB item there on the condition that nothing holds the
        sequence yet (with the receipt, in one transaction, when the draft has a key).
        A claim may give up a sequence whose item is late (`void_item`, see
        `DynamoDBClaims`): then this put fails and the admission takes another one. A
        failure after taking a sequence closes it here, so claims need not wait for it."""
        if draft.receipt_key is not None:
            # A retry finds its receipt without taking a sequence (which would show as a
            # gap in the instance's sequences); only a retry racing the first one does.
            known = await self._receipt(instance, draft.receipt_key)
            if known is not None:
                return await self._replay(instance, draft, known)
        payload_blob = f"payloads/{secrets.token_hex(8)}.json"
        for _ in range(MAX_ADMIT_RETRIES):
            seq = await self._next_sequence(instance, now)
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
            item = {
                **await self.items.ledger_item(instance, record, payload_blob),
                _SHARD: _n(pending_shard(instance)),
                _SINCE: _n(now),
            }
            try:
                if draft.receipt_key is None:
                    written = await self._put_submission(item)
                else:
                    written, receipt = await self._put_with_receipt(instance, item, draft, record.id, now)
                    if receipt is not None:
                        await self._void(instance, seq)
                        return await self._replay(instance, draft, receipt)
            except Exception:
                await self._void(instance, seq)
                raise
            if written:
                return Admission(record, replayed=False)
        raise LedgerError(f"could not admit to {instance} after {MAX_ADMIT_RETRIES} tries")

    async def _next_sequence(self, instance: InstanceRef, now: float) -> int:
        attributes = (await offload(
            self.client.update_item,
            TableName=self.table,
            Key=_key(instance, "META"),
            UpdateExpression=f"SET head = if_not_exists(head, :zero), {_AGENT} = :agent, {_ACTIVE} = :now ADD next_seq :one",
            ExpressionAttributeValues={":zero": _n(0), ":one": _n(1), ":agent": _s(instance.agent), ":now": _n(now)},
            ReturnValues="UPDATED_NEW",
        ))["Attributes"]
        return int(attributes["next_seq"]["N"]) - 1

    async def _put_submission(self, item: Item) -> bool:
        """Write a SUB item; False when its sequence was given up meanwhile."""
        return await self._write_if("put_item", Item=item, ConditionExpression="attribute_not_exists(sk)")

    async def _put_with_receipt(
        self, instance: InstanceRef, item: Item, draft: Draft, submission_id: str, now: float
    ) -> tuple[bool, Item | None]:
        """The SUB item and its receipt together: (written, None), (False, None) when the
        sequence was given up, or (False, the receipt) when the key was used before."""
        assert draft.receipt_key is not None
        receipt = {
            **_key(instance, f"RCPT#{draft.receipt_key}"),
            "hash": _s(draft.receipt_hash or ""),
            "submission_id": _s(submission_id),
            "accepted_at": _n(now),
        }
        try:
            await offload(self.client.transact_write_items, TransactItems=[
                {"Put": {"TableName": self.table, "Item": item, "ConditionExpression": "attribute_not_exists(sk)"}},
                {
                    "Put": {
                        "TableName": self.table,
                        "Item": receipt,
                        "ConditionExpression": "attribute_not_exists(sk)",
                        "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
                    }
                },
            ])
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            reasons = _cancel_reasons(error)
            if len(reasons) > 1 and reasons[1].get("Code") == "ConditionalCheckFailed":
                return False, reasons[1].get("Item") or {}
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                return False, None
            raise
        return True, None

    async def _void(self, instance: InstanceRef, seq: int) -> None:
        """Close a sequence this admission took and will not use (best effort: a claim
        closes it too once it is overdue)."""
        try:
            await self._write_if("put_item", Item=void_item(instance, seq), ConditionExpression="attribute_not_exists(sk)")
        except Exception as error:  # the admission's own failure is the one to report
            log.warning("could not void sequence", extra={"instance": instance.key, "sequence": seq, "error": type(error).__name__})

    async def _receipt(self, instance: InstanceRef, key: str) -> Item | None:
        item: Item | None = (await offload(
            self.client.get_item, TableName=self.table, Key=_key(instance, f"RCPT#{key}"), ConsistentRead=True
        )).get("Item")
        return item

    async def _replay(self, instance: InstanceRef, draft: Draft, receipt: Item | None) -> Admission:
        assert draft.receipt_key is not None
        receipt = receipt or await self._receipt(instance, draft.receipt_key)
        assert receipt is not None  # receipts are kept for the instance's life
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
        return [await self.items.record(item) for item in await self._submission_items(instance, after=after, limit=limit)]

    async def unsettled(self, instance: InstanceRef, *, limit: int = 100) -> list[SubmissionRecord]:
        meta = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, "META"), ConsistentRead=True)).get("Item")
        if meta is None:
            return []
        items = await self._submission_items(instance, after=_int(meta, "head") - 1, limit=limit, unsettled=True)
        return [await self.items.record(item) for item in items]

    async def _submission_items(self, instance: InstanceRef, *, after: int, limit: int, unsettled: bool = False) -> list[Item]:
        """Up to `limit` SUB items after sequence `after`, in order, void ones left out
        (and settled ones, when `unsettled`): paged until found or exhausted."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": _s(_pk(instance)), ":lo": _s(_sub(after + 1)), ":hi": _s(f"SUB#{_SEQ_MAX}")},
            "ConsistentRead": True,
        }
        if unsettled:
            request["FilterExpression"] = "#status <> :settled"
            request["ExpressionAttributeNames"] = {"#status": "status"}
            request["ExpressionAttributeValues"][":settled"] = _s("settled")
        found: list[Item] = []
        while len(found) < limit:
            response = await offload(self.client.query, **request, Limit=limit - len(found))
            found += [item for item in response["Items"] if not _is_void(item)]
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

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
        than the page to know whether another follows), then, for each instance with
        unsettled work, one Query of its submissions from META's head (which may trail the
        true head by a few settled ones) for the first unsettled one's status."""
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
        refs = [InstanceRef.parse(m["pk"]["S"][2:]) for m in metas]
        states = await asyncio.gather(*(self._state(ref, _int(m, "head"), _int(m, "next_seq"), now) for ref, m in zip(refs, metas, strict=True)))
        page = [
            InstanceSummary(ref, float(meta[_ACTIVE]["N"]), status, submissions=_int(meta, "next_seq"), settled=settled)
            for ref, meta, (status, settled) in zip(refs, metas, states, strict=True)
        ]
        more = len(response["Items"]) > limit
        return InstancePage(page, instances_cursor(page[-1]) if more else None)

    async def _state(self, instance: InstanceRef, head: int, next_seq: int, now: float) -> tuple[InstanceStatus, int]:
        """The instance's status and how many submissions precede its first unsettled one."""
        found = await self._first_unsettled(instance, head, next_seq)
        if found is None:
            return "idle", max(head, next_seq)
        seq, item = found
        if item is None:
            return "queued", seq  # an admission is writing `seq` now
        status = item["status"]["S"]
        if status == "running" and float(item.get("lease_until", {"N": "0"})["N"]) >= now:
            return "running", seq
        return ("waiting" if status == "waiting" else "queued"), seq

    # --- the sweeper's index -------------------------------------------------------

    async def pending_instances(self, *, idle_since: float, limit: int) -> list[InstanceRef]:
        """The oldest `limit` unsettled submissions of each shard (one Query each, paged),
        merged oldest first, by instance."""
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
        # An instance is listed once per unsettled submission: each one counts, oldest first.
        oldest: dict[str, None] = dict.fromkeys(key for _, key in sorted(found))
        return [InstanceRef.parse(key) for key in list(oldest)[:limit]]


