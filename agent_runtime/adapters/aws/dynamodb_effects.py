"""`EffectStore` over the instance table: one ``EFF#<effect id>`` item per effect in the
instance's partition, its record as JSON beside the ``status`` the conditions test.

A fired or cancelled effect stays listable for `SETTLED_EFFECT_TTL_SECONDS`, then the
table's TTL removes it (the submission it became keeps its own record)."""

from __future__ import annotations

import builtins
import json
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb_items import Item, _code, _key, _n, _pk, _s
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.effects import MAX_SCHEDULED, EffectNotFound, EffectRecord, Status, transitioned
from agent_runtime.ids import InstanceRef

SETTLED_EFFECT_TTL_SECONDS = 30 * 24 * 3600
_PREFIX = "EFF#"


def _record(item: Item) -> EffectRecord:
    return EffectRecord.of(json.loads(item["data"]["S"]))


def _item(instance: InstanceRef, record: EffectRecord) -> Item:
    item: Item = {
        **_key(instance, _PREFIX + record.id),
        "data": _s(json.dumps(record.view(), separators=(",", ":"))),
        "status": _s(record.status),
        "due_at": _n(record.due_at),
    }
    if record.status != "scheduled":
        settled = record.fired_at or record.cancelled_at or record.created_at
        item[settings.TABLE_TTL_ATTRIBUTE] = _n(int(settled + SETTLED_EFFECT_TTL_SECONDS))
    return item


class DynamoDBEffects:
    def __init__(self, client: Any, table: str) -> None:
        self.client = client
        self.table = table

    async def add(self, instance: InstanceRef, record: EffectRecord) -> EffectRecord:
        try:
            await offload(
                self.client.put_item,
                TableName=self.table,
                Item=_item(instance, record),
                ConditionExpression="attribute_not_exists(sk)",
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            old: Item | None = error.response.get("Item")  # type: ignore[assignment]
            return _record(old) if old else record
        return record

    async def get(self, instance: InstanceRef, effect_id: str) -> EffectRecord | None:
        item = (await offload(
            self.client.get_item,
            TableName=self.table,
            Key=_key(instance, _PREFIX + effect_id),
            ConsistentRead=True,
        )).get("Item")
        return _record(item) if item else None

    async def list(
        self, instance: InstanceRef, *, status: Status | None = None, limit: int = MAX_SCHEDULED
    ) -> builtins.list[EffectRecord]:
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": _s(_pk(instance)), ":prefix": _s(_PREFIX)},
            "ConsistentRead": True,
        }
        if status is not None:
            query["FilterExpression"] = "#status = :status"
            query["ExpressionAttributeNames"] = {"#status": "status"}
            query["ExpressionAttributeValues"][":status"] = _s(status)
        found: builtins.list[EffectRecord] = []
        while True:
            page = await offload(self.client.query, **query)
            found += [_record(item) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda r: (r.due_at, r.id))[:limit]

    async def transition(
        self,
        instance: InstanceRef,
        effect_id: str,
        *,
        source: tuple[Status, ...],
        target: Status,
        now: float,
        submission_id: str | None = None,
    ) -> EffectRecord:
        current = await self.get(instance, effect_id)
        if current is None:
            raise EffectNotFound(f"no effect {effect_id} on {instance}")
        updated = transitioned(current, source, target, now=now, submission_id=submission_id)
        try:
            # The record read above is still the stored one: no other transition came between.
            await offload(
                self.client.put_item,
                TableName=self.table,
                Item=_item(instance, updated),
                ConditionExpression="#status = :status AND #data = :data",
                ExpressionAttributeNames={"#status": "status", "#data": "data"},
                ExpressionAttributeValues={
                    ":status": _s(current.status),
                    ":data": _s(json.dumps(current.view(), separators=(",", ":"))),
                },
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return await self.transition(
                instance, effect_id, source=source, target=target, now=now, submission_id=submission_id
            )
        return updated


__all__ = ["SETTLED_EFFECT_TTL_SECONDS", "DynamoDBEffects"]
