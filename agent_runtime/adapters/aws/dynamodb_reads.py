"""The instance store's reads: submissions, history, tool results, and the sweeper's
pending index. `DynamoDBStore` (in `agent_runtime.adapters.aws.dynamodb`, with the
ledger's fenced writes and the pending index's rules) inherits them; the item layout
is in `agent_runtime.adapters.aws.dynamodb_items`.
"""

from __future__ import annotations

from typing import Any

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb_items import (
    _SEQ_MAX,
    _SHARD,
    _SINCE,
    Items,
    _key,
    _msg,
    _n,
    _pk,
    _s,
    _sub,
)
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import SubmissionRecord, sequence_of
from agent_runtime.messages import ToolResultPart
from agent_runtime.ports import HistoryPage, parse_cursor


class StoreReads:
    """Queries of an instance's partition and of the pending index; nothing here writes."""

    client: Any
    table: str
    items: Items

    # --- reads ---------------------------------------------------------------------

    async def get(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None:
        item = self.client.get_item(
            TableName=self.table, Key=_key(instance, _sub(sequence_of(submission_id))), ConsistentRead=True
        ).get("Item")
        if item is None or item["id"]["S"] != submission_id:
            return None
        return await self.items.record(item)

    async def abort_requested(self, instance: InstanceRef, submission_id: str) -> bool:
        item = self.client.get_item(
            TableName=self.table,
            Key=_key(instance, _sub(sequence_of(submission_id))),
            ConsistentRead=True,
            ProjectionExpression="id, abort_requested",
        ).get("Item")
        if item is None or item["id"]["S"] != submission_id:
            return False
        return bool(item.get("abort_requested", {}).get("BOOL", False))

    async def list_submissions(
        self, instance: InstanceRef, *, after: int = -1, limit: int = 100
    ) -> list[SubmissionRecord]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND sk BETWEEN :lo AND :hi",
            ExpressionAttributeValues={":pk": _s(_pk(instance)), ":lo": _s(_sub(after + 1)), ":hi": _s(f"SUB#{_SEQ_MAX}")},
            Limit=limit,
            ConsistentRead=True,
        )
        return [await self.items.record(item) for item in response["Items"]]

    async def history(
        self, instance: InstanceRef, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        prefix = f"MSG#{session}#"
        kwargs: dict[str, Any] = {}
        if cursor is not None:
            seq, idx = parse_cursor(cursor)
            kwargs["ExclusiveStartKey"] = _key(instance, _msg(session, seq, idx))
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(_pk(instance)), ":prefix": _s(prefix)},
            Limit=limit + 1,
            ConsistentRead=True,
            **kwargs,
        )
        stored = [await self.items.stored_message(item) for item in response["Items"][:limit]]
        more = len(response["Items"]) > limit
        return HistoryPage(stored, stored[-1].cursor if more and stored else None)

    async def tool_results(self, instance: InstanceRef, sequence: int, turn: int) -> dict[str, ToolResultPart]:
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(_pk(instance)), ":prefix": _s(f"TR#{sequence:010d}#{turn:04d}#")},
            ConsistentRead=True,
        )
        results = [ToolResultPart.model_validate(await self.items.load_json(item, "r")) for item in response["Items"]]
        return {r.call_id: r for r in results}

    # --- the sweeper's index -------------------------------------------------------

    async def pending_instances(self, *, idle_since: float, limit: int) -> list[InstanceRef]:
        """The oldest `limit` of each shard (one Query each, paged), merged oldest first."""
        found: list[tuple[float, str]] = []
        for shard in range(settings.PENDING_SHARDS):
            taken = 0
            kwargs: dict[str, Any] = {}
            while taken < limit:
                response = self.client.query(
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
