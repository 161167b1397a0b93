"""Make moto's DynamoDB behave like the service under concurrency and at size.

Three gaps of moto's in-memory DynamoDB matter to this runtime, in tests and in the
local stack alike:

1. It is not thread-safe: a `TransactWriteItems` deep-copies the tables it touches
   and fails with "dictionary changed size during iteration" when another thread
   writes meanwhile. Real DynamoDB serialises conflicting writes itself, so each
   moto DynamoDB request is made atomic with one lock. The gap between a read and
   the conditional write that follows it, which optimistic admission relies on,
   stays open: only single requests are serialised.
2. That deep copy is of the whole table, for every item of every transaction, so a
   transaction costs O(table size) and a long-lived local stack slows down as it
   fills. The rollback snapshot is narrowed to the items the transaction names,
   which is all a rollback needs.
3. A `Query` of the table (not of an index) gathers and sorts every item of the table,
   then keeps those of the partition: O(table size) comparisons of moto's typed values
   per query, which made each query of a local stack that had served a few hundred
   prompts take tens of milliseconds. It is given only the partition's items, which is
   what it keeps, those its key condition on the sort key keeps (by moto's own test), each
   sort key cast once for the order; index queries are left as they are.
"""

from __future__ import annotations

import copy
import functools
import threading
from typing import Any

_LOCK = threading.RLock()
#: The table, partition key and sort key condition of the `Query` running in this thread.
_partition = threading.local()
_PATCHED = False


def serialize_moto_dynamodb() -> None:
    """Idempotent; call before moto's DynamoDB is used from several threads."""
    global _PATCHED
    if _PATCHED:
        return
    import moto.dynamodb.models as models
    from moto.dynamodb.comparisons import get_comparison_func
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.table import Table
    from moto.dynamodb.responses import DynamoHandler

    original_call = DynamoHandler.call_action

    @functools.wraps(original_call)
    def call_action(self: Any) -> Any:
        with _LOCK:
            return original_call(self)

    class _NoTableCopy:
        """`copy` as moto's models module sees it, minus whole-table deep copies."""

        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            return value if isinstance(value, Table) else copy.deepcopy(value, memo)

    original_transact = DynamoDBBackend.transact_write_items

    def transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
        snapshots: list[tuple[Any, Any, Any, Any]] = []
        for entry in transact_items:
            _, op = next(iter(entry.items()))
            table = self.tables.get(op.get("TableName"))
            key = op.get("Key") or op.get("Item")
            if table is None or not key or table.hash_key_attr not in key:
                continue
            hash_value = DynamoType(key[table.hash_key_attr])
            range_value = DynamoType(key[table.range_key_attr]) if table.range_key_attr in key else None
            before = table.get_item(hash_value, range_value) if (range_value or not table.range_key_attr) else None
            snapshots.append((table, hash_value, range_value, copy.deepcopy(before)))
        try:
            original_transact(self, transact_items)
        except Exception:
            for table, hash_value, range_value, before in reversed(snapshots):
                if before is None:
                    table.delete_item(hash_value, range_value)
                elif range_value is not None:
                    table.items[hash_value][range_value] = before
                else:
                    table.items[hash_value] = before
            raise

    original_query = Table.query
    original_all_items = Table.all_items

    def query(
        self: Any,
        hash_key: Any,
        range_comparison: str | None,
        range_objs: list[Any],
        *args: Any,
        **kwargs: Any,
    ) -> Any:
        # moto passes `index_name` by position, after limit, start key, direction, projection.
        index_name = args[4] if len(args) > 4 else kwargs.get("index_name")
        if not index_name and hash_key is not None and self.range_key_attr:
            _partition.key = (self, hash_key, range_comparison, range_objs)
        try:
            return original_query(self, hash_key, range_comparison, range_objs, *args, **kwargs)
        finally:
            _partition.key = None

    def all_items(self: Any) -> list[Any]:
        current: tuple[Any, Any, str | None, list[Any]] | None = getattr(_partition, "key", None)
        if current is None or current[0] is not self:
            return original_all_items(self)  # type: ignore[no-any-return]
        _, hash_key, comparison, bounds = current
        partition: dict[Any, Any] = self.items.get(hash_key) or {}  # .get: a defaultdict
        items = list(partition.values())
        test = get_comparison_func(comparison) if comparison else None
        if test is not None:  # moto applies the same test again to what is left
            values = [bound.cast_value for bound in bounds]
            items = [item for item in items if test(item.range_key.cast_value, *values)]
        # Sorted as moto sorts keys (by cast value), each key cast once.
        return sorted(items, key=lambda item: item.range_key.cast_value)

    Table.query = query  # type: ignore[method-assign]
    Table.all_items = all_items  # type: ignore[method-assign]
    models.copy = _NoTableCopy()  # type: ignore[assignment]
    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]
    DynamoHandler.call_action = call_action  # type: ignore[method-assign]
    _PATCHED = True
