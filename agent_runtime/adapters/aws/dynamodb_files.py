"""The metadata side of `S3Files`: its items in the instance's partition, and the one
transaction that points a path at an object.

    pk = "I#{agent}/{id}"      (see `agent_runtime.adapters.aws.dynamodb_items`)
    sk = "FILE#{path}"         v, path, size, media_type, sha256, created_at, updated_at,
                               s3_key: the object holding the bytes
         "FILES"               bytes, files: the instance's usage, changed in the same
                               transaction as every FILE item, conditioned on the limits
         "UPLOAD#{upload_id}"  v, path, media_type, size (declared), url_expires_at,
                               staged_key, state ("staged" | "completed"), info (JSON, once
                               completed), expires_at (TTL: a day after it is forgotten)

Paths sort in a query as they sort in Python (UTF-8 keeps code point order), so a
``begins_with`` query on ``FILE#{prefix}`` lists a directory in path order.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import files as fs
from agent_runtime.adapters.aws.dynamodb_items import (
    Item,
    _cancel_reasons,
    _code,
    _int,
    _key,
    _n,
    _pk,
    _s,
)
from agent_runtime.adapters.aws.dynamodb_table import TablePort
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.errors import AgentRuntimeError, Conflict, FilesQuotaExceeded
from agent_runtime.files import FileInfo
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence

FILE_SCHEMA_VERSION = 1
USAGE_SK = "FILES"
#: How often a write re-reads and tries again when another write changed its path meanwhile.
MAX_RETRIES = 5


def file_sk(path: str) -> str:
    return f"FILE#{path}"


def upload_sk(upload_id: str) -> str:
    return f"UPLOAD#{upload_id}"


def check_version(item: Item) -> None:
    version = _int(item, "v")
    if version != FILE_SCHEMA_VERSION:
        raise ValueError(
            f"unknown file item version {version} (this runtime reads {FILE_SCHEMA_VERSION})"
        )


@dataclass(frozen=True)
class Entry:
    info: FileInfo
    key: str


def entry_of_item(item: Item) -> Entry:
    check_version(item)
    info = FileInfo(
        path=item["path"]["S"],
        size=int(item["size"]["N"]),
        media_type=item["media_type"]["S"],
        sha256=item["sha256"]["S"],
        created_at=float(item["created_at"]["N"]),
        updated_at=float(item["updated_at"]["N"]),
    )
    return Entry(info, item["s3_key"]["S"])


def file_item(instance: InstanceRef, info: FileInfo, key: str) -> Item:
    return {
        **_key(instance, file_sk(info.path)),
        "v": _n(FILE_SCHEMA_VERSION),
        "path": _s(info.path),
        "size": _n(info.size),
        "media_type": _s(info.media_type),
        "sha256": _s(info.sha256),
        "created_at": _n(info.created_at),
        "updated_at": _n(info.updated_at),
        "s3_key": _s(key),
    }


class Contended(Exception):
    """A transaction lost to a concurrent one (``TransactionConflict``): try again."""


class UploadAlreadyCompleted(Conflict):
    """Another call completed the upload first (its transaction won)."""

    type = "upload_already_completed"


class FileItems(TablePort):
    """FILE, FILES and UPLOAD items over the instance table (the base gives the fence)."""

    async def _get(self, instance: InstanceRef, sk: str) -> Item | None:
        item: Item | None = (await offload(
            self.client.get_item, TableName=self.table, Key=_key(instance, sk), ConsistentRead=True
        )).get("Item")
        return item

    async def _entry_of(self, instance: InstanceRef, path: str) -> Entry | None:
        item = await self._get(instance, file_sk(path))
        return None if item is None else entry_of_item(item)

    async def _usage_of(self, instance: InstanceRef) -> tuple[int, int]:
        item = await self._get(instance, USAGE_SK) or {}
        return _int(item, "bytes"), _int(item, "files")

    async def _query(
        self,
        instance: InstanceRef,
        prefix: str,
        *,
        after: str | None = None,
        page: int | None = None,
    ) -> AsyncIterator[Entry]:
        """FILE items whose path starts with `prefix` (and sorts after `after`), in path
        order, read `page` at a time."""
        kwargs: dict[str, Any] = {} if page is None else {"Limit": page}
        if after is not None:
            if after.startswith(prefix):
                kwargs["ExclusiveStartKey"] = _key(instance, file_sk(after))
            elif after > prefix:
                return  # every path under the prefix sorts before `after`
        while True:
            response = await offload(
                self.client.query,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={
                    ":pk": _s(_pk(instance)),
                    ":prefix": _s(file_sk(prefix)),
                },
                ConsistentRead=True,
                **kwargs,
            )
            for item in response["Items"]:
                yield entry_of_item(item)
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]

    # --- transactions ----------------------------------------------------------------


    async def _transact(
        self, fence: Fence | None, items: builtins.list[Item]
    ) -> builtins.list[dict[str, Any]] | None:
        """None once committed; else the cancellation reason of each of `items`. The
        fence's `ConditionCheck` goes first; its failure raises `StaleAttempt` or
        `AbortRequested`. A conflict with another transaction on any item raises
        `Contended`: the caller reads again and retries."""
        sent = items if fence is None else [self._fence_check(fence), *items]
        try:
            await offload(self.client.transact_write_items, TransactItems=sent)
            return None
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            reasons = _cancel_reasons(error) + [{}] * len(sent)
        if any(reason.get("Code") == "TransactionConflict" for reason in reasons):
            raise Contended
        if fence is not None:
            if reasons[0].get("Code") == "ConditionalCheckFailed":
                raise self._fence_error(fence, reasons[0].get("Item"), honour_abort=True)
            reasons = reasons[1:]
        return reasons[: len(items)]

    def _usage_update(self, instance: InstanceRef, add_bytes: int, add_files: int) -> Item:
        values: Item = {":db": _n(add_bytes), ":df": _n(add_files)}
        conditions = []
        # DynamoDB cannot add in a condition: `used + add <= limit` is `used <= limit - add`.
        # A missing usage item is zero used, which fits whenever that room is not negative.
        for name, add, limit in (
            ("#b", add_bytes, fs.INSTANCE_MAX_BYTES),
            ("#f", add_files, fs.INSTANCE_MAX_FILES),
        ):
            if add > 0:
                room = f":room{name[1]}"
                values[room] = _n(limit - add)
                fits = f"{name} <= {room}"
                conditions.append(
                    f"(attribute_not_exists({name}) OR {fits})" if limit >= add else fits
                )
        update: Item = {
            "TableName": self.table,
            "Key": _key(instance, USAGE_SK),
            "UpdateExpression": "ADD #b :db, #f :df",
            "ExpressionAttributeNames": {"#b": "bytes", "#f": "files"},
            "ExpressionAttributeValues": values,
        }
        if conditions:
            update["ConditionExpression"] = " AND ".join(conditions)
        return {"Update": update}

    async def _commit(
        self,
        instance: InstanceRef,
        path: str,
        *,
        key: str,
        size: int,
        media_type: str,
        sha256: str,
        now: float,
        fence: Fence | None,
        extra: Callable[[FileInfo], builtins.list[Item]] = lambda info: [],
    ) -> tuple[FileInfo, str | None]:
        """Point `path` at the object `key` (already in S3) together with the usage change,
        the fence and `extra(info)`, in one transaction. Returns the file and the key of
        the object it replaced (the caller deletes it)."""
        for _ in range(MAX_RETRIES):
            old = await self._entry_of(instance, path)
            info = FileInfo(
                path, size, media_type, sha256, old.info.created_at if old else now, now
            )
            put: Item = {"TableName": self.table, "Item": file_item(instance, info, key)}
            if old is None:
                put["ConditionExpression"] = "attribute_not_exists(sk)"
            else:
                # Another write may commit between our read and this transaction:
                # then the item no longer names the object we read, and we read again.
                put["ConditionExpression"] = "s3_key = :old"
                put["ExpressionAttributeValues"] = {":old": _s(old.key)}
            add_bytes, add_files = size - (old.info.size if old else 0), 0 if old else 1
            usage = self._usage_update(instance, add_bytes, add_files)
            try:
                reasons = await self._transact(fence, [{"Put": put}, usage, *extra(info)])
            except Contended:
                continue
            if reasons is None:
                return info, old.key if old else None
            codes = [reason.get("Code") for reason in reasons]
            if codes[1] == "ConditionalCheckFailed":
                fs.check_quota(await self._usage_of(instance), add_bytes, add_files)
                raise FilesQuotaExceeded(
                    "an instance's files are at their limit", details={"path": path}
                )
            if "ConditionalCheckFailed" in codes[2:]:
                raise UploadAlreadyCompleted("the upload was completed meanwhile")
            if codes[0] != "ConditionalCheckFailed":
                raise AgentRuntimeError(
                    f"writing {path} was refused: {codes}", details={"path": path}
                )
        raise Conflict(
            f"{path} kept changing while it was written; try again", details={"path": path}
        )
