"""`History`, `ToolResults`, `Sessions`, `KV` and `ChildIndex` on DynamoDB: items of the instance's
partition (see `agent_runtime.adapters.aws.dynamodb_items` for their keys).
"""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import _code, _key, _msg, _n, _pk, _s
from agent_runtime.adapters.aws.dynamodb_table import TablePort
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import PayloadTooLarge
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence, SessionState
from agent_runtime.messages import ToolResultPart
from agent_runtime.ports import KV_LIST_MAX, ChildEntry, HistoryPage, parse_cursor

KV_MAX_BYTES = 350 * 1024


class DynamoDBHistory(TablePort):
    async def page(
        self, instance: InstanceRef, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        prefix = f"MSG#{session}#"
        kwargs: dict[str, Any] = {}
        if cursor is not None:
            seq, idx = parse_cursor(cursor)
            kwargs["ExclusiveStartKey"] = _key(instance, _msg(session, seq, idx))
        response = await offload(
            self.client.query,
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



class DynamoDBToolResults(TablePort):
    async def record(self, fence: Fence, turn: int, result: ToolResultPart, *, now: float) -> None:
        name, value = await self.items.json_attr(
            fence.instance, "r", result.model_dump(mode="json"), f"tools/{fence.sequence:010d}-{turn:04d}-{result.call_id}.json"
        )
        await self._transact_fenced(
            fence,
            [
                self._fence_check(fence),
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

    async def of_turn(self, instance: InstanceRef, sequence: int, turn: int) -> dict[str, ToolResultPart]:
        response = await offload(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(_pk(instance)), ":prefix": _s(f"TR#{sequence:010d}#{turn:04d}#")},
            ConsistentRead=True,
        )
        results = [ToolResultPart.model_validate(await self.items.load_json(item, "r")) for item in response["Items"]]
        return {r.call_id: r for r in results}



class DynamoDBSessions(TablePort):
    """``SES#<session>`` items: the state as JSON, written in a transaction with the fence."""

    async def get(self, instance: InstanceRef, session: str) -> SessionState:
        key = _key(instance, f"SES#{session}")
        item = (await offload(self.client.get_item, TableName=self.table, Key=key, ConsistentRead=True)).get("Item")
        return SessionState() if item is None else SessionState.model_validate(await self.items.load_json(item, "state"))

    async def put(self, fence: Fence, state: SessionState, *, now: float) -> None:
        name, value = await self.items.json_attr(
            fence.instance, "state", state.model_dump(mode="json"), f"sessions/{fence.session}-{fence.sequence:010d}.json"
        )
        await self._transact_fenced(
            fence,
            [
                self._fence_check(fence, honour_abort=False),
                {"Put": {"TableName": self.table, "Item": {**_key(fence.instance, f"SES#{fence.session}"), name: value, "at": _n(now)}}},
            ],
            honour_abort=False,
        )


class DynamoDBKV(TablePort):
    async def get(self, instance: InstanceRef, key: str) -> Any:
        item = (await offload(self.client.get_item, TableName=self.table, Key=_key(instance, f"KV#{key}"), ConsistentRead=True)).get("Item")
        return None if item is None else json.loads(item["value"]["S"])

    async def put(self, instance: InstanceRef, key: str, value: Any) -> None:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) > KV_MAX_BYTES:
            raise PayloadTooLarge(f"kv value for {key!r} is over {KV_MAX_BYTES} bytes", details={"limit": KV_MAX_BYTES})
        await offload(self.client.put_item, TableName=self.table, Item={**_key(instance, f"KV#{key}"), "value": _s(text)})

    async def delete(self, instance: InstanceRef, key: str) -> None:
        await offload(self.client.delete_item, TableName=self.table, Key=_key(instance, f"KV#{key}"))

    async def list(self, instance: InstanceRef, prefix: str = "", *, limit: int = KV_LIST_MAX) -> dict[str, Any]:
        found: dict[str, Any] = {}
        kwargs: dict[str, Any] = {}
        while len(found) < limit:
            response = await offload(
                self.client.query,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": _s(_pk(instance)), ":prefix": _s(f"KV#{prefix}")},
                Limit=limit - len(found),
                ConsistentRead=True,
                **kwargs,
            )
            found.update((item["sk"]["S"][3:], json.loads(item["value"]["S"])) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found


class DynamoDBChildIndex(TablePort):
    """``KID#<ref>`` items in the parent's partition."""

    async def add(self, parent: InstanceRef, entry: ChildEntry) -> None:
        item = {
            **_key(parent, f"KID#{entry.ref}"),
            "child": _s(entry.child.key),
            "submission_id": _s(entry.submission_id),
            "call_id": _s(entry.call_id),
            "parent_submission_id": _s(entry.parent_submission_id),
            "created_at": _n(entry.created_at),
            "resumable": {"BOOL": entry.resumable},
        }
        try:
            await offload(self.client.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)")
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise

    async def get(self, parent: InstanceRef, ref: str) -> ChildEntry | None:
        item = (await offload(self.client.get_item, TableName=self.table, Key=_key(parent, f"KID#{ref}"), ConsistentRead=True)).get("Item")
        return None if item is None else _entry(item)

    async def note_submission(self, parent: InstanceRef, ref: str, submission_id: str) -> None:
        try:
            await offload(
                self.client.update_item,
                TableName=self.table,
                Key=_key(parent, f"KID#{ref}"),
                UpdateExpression="SET last_submission_id = :id",
                ConditionExpression="attribute_exists(sk)",
                ExpressionAttributeValues={":id": _s(submission_id)},
            )
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise

    async def page(self, parent: InstanceRef, *, after: str | None, limit: int) -> list[ChildEntry]:
        kwargs: dict[str, Any] = {}
        if after is not None:
            kwargs["ExclusiveStartKey"] = _key(parent, f"KID#{after}")
        response = await offload(
            self.client.query,
            TableName=self.table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
            ExpressionAttributeValues={":pk": _s(_pk(parent)), ":prefix": _s("KID#")},
            Limit=limit,
            ConsistentRead=True,
            **kwargs,
        )
        return [_entry(item) for item in response["Items"]]


def _entry(item: dict[str, Any]) -> ChildEntry:
    return ChildEntry(
        ref=item["sk"]["S"][len("KID#") :],
        child=InstanceRef.parse(item["child"]["S"]),
        submission_id=item["submission_id"]["S"],
        call_id=item["call_id"]["S"],
        parent_submission_id=item["parent_submission_id"]["S"],
        created_at=float(item["created_at"]["N"]),
        resumable=bool(item.get("resumable", {}).get("BOOL", False)),
        last_submission_id=item.get("last_submission_id", {}).get("S", ""),
    )
