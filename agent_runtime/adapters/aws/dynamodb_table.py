"""The base of every DynamoDB port: the client, the table, the item codec, and the fence.

Every write of an attempt carries the fence condition
``attempt_id = :attempt AND #status = :running`` (plus ``abort_requested = :false``
where an abort must stop the attempt). The failure's old item (returned with
``ReturnValuesOnConditionCheckFailure=ALL_OLD``) says which domain error to raise.
"""

from __future__ import annotations

from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import (
    Item,
    Items,
    _cancel_reasons,
    _code,
    _key,
    _pk,
    _s,
    _sub,
)
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import AbortRequested, LedgerError, StaleAttempt
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence

#: SUB items a walk to the first unsettled submission reads per Query.
WALK_PAGE = 100


class TablePort:
    """One port over the instance table. Clients are passed in."""

    def __init__(self, client: Any, table: str, items: Items) -> None:
        self.client = client
        self.table = table
        self.items = items

    async def _write_if(self, operation: str, **request: Any) -> bool:
        """A conditional `put_item` or `update_item`: False when its condition failed."""
        try:
            await offload(getattr(self.client, operation), TableName=self.table, **request)
        except ClientError as error:
            if _code(error) != "ConditionalCheckFailedException":
                raise
            return False
        return True

    async def _first_unsettled(self, instance: InstanceRef, start: int, end: int) -> tuple[int, Item | None] | None:
        """The first sequence in [start, end) that is not settled: (seq, its status item),
        (seq, None) when no item holds it, or None when all are settled."""
        seq = start
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND sk BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": _s(_pk(instance)), ":lo": _s(_sub(start)), ":hi": _s(_sub(end - 1))},
            "ProjectionExpression": "sk, #status, lease_until",
            "ExpressionAttributeNames": {"#status": "status"},
            "ConsistentRead": True,
            "Limit": WALK_PAGE,
        }
        while seq < end:
            response = await offload(self.client.query, **request)
            for item in response["Items"]:
                if int(item["sk"]["S"][4:]) != seq:
                    return seq, None
                if item["status"]["S"] != "settled":
                    return seq, item
                seq += 1
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return (seq, None) if seq < end else None

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

    def _fence_check(self, fence: Fence, *, honour_abort: bool = True) -> Item:
        """The fence as the first item of a transaction (`_transact_fenced` maps its failure)."""
        condition, values = self._fence_condition(fence, honour_abort=honour_abort)
        return {
            "ConditionCheck": {
                "TableName": self.table,
                "Key": _key(fence.instance, _sub(fence.sequence)),
                "ConditionExpression": condition,
                "ExpressionAttributeNames": {"#status": "status"},
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    async def _transact_fenced(self, fence: Fence, items: list[Item], *, honour_abort: bool) -> list[dict[str, Any]]:
        """Run a transaction whose first item carries the fence; map a fence failure."""
        try:
            await offload(self.client.transact_write_items, TransactItems=items)
            return []
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            reasons = _cancel_reasons(error)
            if reasons and reasons[0].get("Code") == "ConditionalCheckFailed":
                raise self._fence_error(fence, reasons[0].get("Item"), honour_abort=honour_abort) from None
            return reasons
