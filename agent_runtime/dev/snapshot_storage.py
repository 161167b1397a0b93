"""DynamoDB tables and S3 buckets dumped into a snapshot folder through the AWS APIs, and back.

DynamoDB: every table's schema and all its items (a paginated, consistent ``Scan``), restored
with ``CreateTable`` (when missing) and ``BatchWriteItem``. S3: every bucket's objects with
content type and user metadata, restored with ``PutObject``; bodies are stored once per
content under ``s3/blobs/<sha256>``, shared by every snapshot (a blob never changes, so a
snapshot being written cannot disturb the one the manifest names).

A manifest entry per table keeps ``key_schema``, ``attribute_definitions``,
``global_secondary_indexes`` / ``local_secondary_indexes`` (name, key schema, projection) and
``ttl_attribute``, in the shapes of the DynamoDB API, and ``file``, relative to the state
folder.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

from agent_runtime.dev.state_files import (
    LocalStateError,
    all_pages,
    decode_binary,
    encode_binary,
    jsonl,
    read_json,
    read_jsonl,
    write_atomic,
)

__all__ = [
    "BLOBS",
    "bucket_objects",
    "restore_bucket",
    "restore_table",
    "save_buckets",
    "save_tables",
    "unused_blobs",
]

BLOBS = "s3/blobs"

_INDEX_KINDS = {  # DescribeTable / CreateTable field -> manifest key
    "GlobalSecondaryIndexes": "global_secondary_indexes",
    "LocalSecondaryIndexes": "local_secondary_indexes",
}
_OBJECT_FIELDS = {  # GetObject response field -> PutObject parameter, kept with each object
    "ContentType": "ContentType",
    "CacheControl": "CacheControl",
    "ContentDisposition": "ContentDisposition",
    "ContentEncoding": "ContentEncoding",
    "ContentLanguage": "ContentLanguage",
}


def _table_names(dynamodb: Any) -> list[str]:
    return list(
        all_pages(
            dynamodb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName"
        )
    )


def save_tables(dynamodb: Any, root: Path, folder: str) -> dict[str, Any]:
    """Dump every table into ``<root>/<folder>/dynamodb/``; the manifest's entries."""
    tables: dict[str, Any] = {}
    for name in _table_names(dynamodb):
        entry = _table_schema(dynamodb, name)
        items = [
            encode_binary(item)
            for item in all_pages(
                lambda **kw: dynamodb.scan(TableName=name, ConsistentRead=True, **kw),  # noqa: B023
                "Items",
                "ExclusiveStartKey",
                "LastEvaluatedKey",
            )
        ]
        entry["file"] = f"{folder}/dynamodb/{name}.jsonl"
        entry["items"] = len(items)
        write_atomic(root / entry["file"], jsonl(items))
        tables[name] = entry
    return tables


def restore_table(dynamodb: Any, root: Path, name: str, entry: dict[str, Any]) -> int:
    if name not in _table_names(dynamodb):
        _create_table(dynamodb, name, entry)
    count = 0
    batch: list[dict[str, Any]] = []
    for item in read_jsonl(root / entry["file"]):
        batch.append({"PutRequest": {"Item": decode_binary(item)}})
        if len(batch) == 25:
            _batch_write(dynamodb, name, batch)
            count, batch = count + len(batch), []
    if batch:
        _batch_write(dynamodb, name, batch)
        count += len(batch)
    return count


def save_buckets(
    s3: Any, root: Path, folder: str, previous: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Dump every bucket's index into ``<root>/<folder>/s3/`` and new bodies into the blobs.

    `previous` (bucket -> objects of the last snapshot) spares reading objects whose ETag is
    unchanged."""
    blobs = root / BLOBS
    blobs.mkdir(parents=True, exist_ok=True)
    buckets: dict[str, Any] = {}
    for bucket in s3.list_buckets().get("Buckets", []):
        name = bucket["Name"]
        before = previous.get(name, {})
        objects: dict[str, Any] = {}
        for summary in all_pages(
            lambda **kw: s3.list_objects_v2(Bucket=name, **kw),  # noqa: B023
            "Contents",
            "ContinuationToken",
            "NextContinuationToken",
        ):
            key, etag = summary["Key"], summary.get("ETag", "")
            old = before.get(key)
            if old and old.get("etag") == etag and (blobs / old["blob"]).exists():
                objects[key] = old
                continue
            response = s3.get_object(Bucket=name, Key=key)
            body = response["Body"].read()
            digest = hashlib.sha256(body).hexdigest()
            if not (blobs / digest).exists():
                write_atomic(blobs / digest, body)
            meta: dict[str, Any] = {
                "blob": digest,
                "etag": etag,
                "metadata": response.get("Metadata") or {},
            }
            meta.update({f: response[f] for f in _OBJECT_FIELDS if response.get(f)})
            objects[key] = meta
        entry: dict[str, Any] = {"file": f"{folder}/s3/{name}.json", "objects": len(objects)}
        write_atomic(root / entry["file"], json.dumps({"objects": objects}).encode())
        buckets[name] = entry
    return buckets


def bucket_objects(root: Path, entry: dict[str, Any] | None) -> dict[str, Any]:
    """The objects a bucket's manifest entry lists (none when there is no entry)."""
    if not entry or not (root / entry["file"]).exists():
        return {}
    objects: dict[str, Any] = read_json(root / entry["file"])["objects"]
    return objects


def unused_blobs(root: Path, buckets: dict[str, Any]) -> list[Path]:
    """Bodies no object of `buckets` (manifest entries) refers to."""
    blobs = root / BLOBS
    if not blobs.is_dir():
        return []
    live = {
        meta["blob"] for entry in buckets.values() for meta in bucket_objects(root, entry).values()
    }
    return [b for b in blobs.iterdir() if b.name not in live and not b.name.startswith(".")]


def restore_bucket(s3: Any, root: Path, name: str, entry: dict[str, Any]) -> int:
    objects: dict[str, Any] = read_json(root / entry["file"])["objects"]
    try:
        s3.head_bucket(Bucket=name)
    except Exception:
        s3.create_bucket(Bucket=name)
    for key, meta in objects.items():
        body = (root / BLOBS / meta["blob"]).read_bytes()
        extra = {
            param: meta[field_] for field_, param in _OBJECT_FIELDS.items() if meta.get(field_)
        }
        s3.put_object(
            Bucket=name, Key=key, Body=body, Metadata=meta.get("metadata") or {}, **extra
        )
    return len(objects)


def _table_schema(dynamodb: Any, name: str) -> dict[str, Any]:
    table = dynamodb.describe_table(TableName=name)["Table"]
    entry: dict[str, Any] = {
        "key_schema": table["KeySchema"],
        "attribute_definitions": table["AttributeDefinitions"],
    }
    for kind, key in _INDEX_KINDS.items():
        indexes = [
            {
                "IndexName": i["IndexName"],
                "KeySchema": i["KeySchema"],
                "Projection": i["Projection"],
            }
            for i in table.get(kind) or []
        ]
        if indexes:
            entry[key] = indexes
    ttl = dynamodb.describe_time_to_live(TableName=name).get("TimeToLiveDescription", {})
    if ttl.get("TimeToLiveStatus") in ("ENABLED", "ENABLING") and ttl.get("AttributeName"):
        entry["ttl_attribute"] = ttl["AttributeName"]
    return entry


def _create_table(dynamodb: Any, name: str, entry: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": entry["key_schema"],
        "AttributeDefinitions": entry["attribute_definitions"],
    }
    for kind, key in _INDEX_KINDS.items():
        if entry.get(key):
            kwargs[kind] = entry[key]
    dynamodb.create_table(**kwargs)
    if entry.get("ttl_attribute"):
        dynamodb.update_time_to_live(
            TableName=name,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": entry["ttl_attribute"]},
        )


def _batch_write(dynamodb: Any, table: str, requests: list[dict[str, Any]]) -> None:
    pending: dict[str, Any] = {table: requests}
    for attempt in range(20):
        pending = dynamodb.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
        if not pending:
            return
        time.sleep(0.05 * (attempt + 1))
    raise LocalStateError(f"could not restore every item of table {table}", path=Path(table))
