"""Keep the local stack's data across restarts, in a state folder (default ``.agent-runtime/``).

moto keeps everything in memory and has no stable way to save it (pickling its backends
breaks between moto versions), so the data is dumped through the AWS APIs themselves, in a
format of our own that any future moto can be loaded from:

- DynamoDB: every table's schema and all its items (a paginated, consistent ``Scan``),
  restored with ``CreateTable`` (when missing) and ``BatchWriteItem``;
- S3: every bucket's objects with content type and user metadata, restored with ``PutObject``;
- SQS: at a clean stop only, the messages still waiting in each queue are drained in order and
  sent again on the next start (then removed from the folder once the stack runs, so a later
  crash cannot deliver them twice). Messages in flight at the stop, or waiting for a retry,
  are not kept: SQS is only the wake-up here, and the sweeper re-wakes instances whose work
  is queued.

`Autosaver` saves DynamoDB and S3 every couple of seconds when they changed, so killing the
process loses at most that moment; the stack saves once more when it stops.

Layout, format ``agent-runtime-local-state`` version 1 (a reader refuses other versions)::

    state.json              manifest: format, version, saved_at, tables, buckets, queues
    dynamodb/<table>.jsonl  one item per line in DynamoDB's wire JSON ({"S": ...}, B as base64)
    s3/<bucket>.json        {"objects": {key: {"blob", "etag", "metadata", "ContentType", ...}}}
    s3/blobs/<sha256>       object bodies, stored once per content
    sqs/<queue>.jsonl       {"body", "group_id", "deduplication_id", "attributes"} per message

The manifest keeps, per table, ``key_schema``, ``attribute_definitions``,
``global_secondary_indexes`` / ``local_secondary_indexes`` (name, key schema, projection) and
``ttl_attribute``, in the shapes of the DynamoDB API; per queue, the attributes needed to
create it again. Every file is written to a
temporary name and renamed, so a crash mid-save leaves the previous version of each file.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent_runtime.errors import AgentRuntimeError

__all__ = ["FORMAT", "VERSION", "Autosaver", "LocalState", "LocalStateError", "RestoreSummary"]

log = logging.getLogger(__name__)

FORMAT = "agent-runtime-local-state"
VERSION = 1
MANIFEST = "state.json"

_QUEUE_ATTRIBUTES = (
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
)
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


class LocalStateError(AgentRuntimeError):
    """The state folder cannot be read: unknown format or version, or a damaged file."""

    type = "local_state_error"

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message, details={"path": str(path)})
        self.path = path


@dataclass(frozen=True)
class RestoreSummary:
    items: int = 0
    objects: int = 0
    messages: int = 0

    def __str__(self) -> str:
        return f"{self.items} items, {self.objects} objects, {self.messages} messages"


@dataclass
class LocalState:
    """The state folder: `restore()` it into a fresh moto, `save()` and `drain_queues()` into it."""

    root: Path
    _manifest: dict[str, Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self._manifest = self._read_manifest()

    # -- reading ---------------------------------------------------------------------------

    def _read_manifest(self) -> dict[str, Any]:
        path = self.root / MANIFEST
        if not path.exists():
            return {"tables": {}, "buckets": {}, "queues": {}}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LocalStateError(f"cannot read {path}: {exc}", path=path) from exc
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise LocalStateError(f"{path} is not an agent-runtime state folder", path=path)
        if manifest.get("version") != VERSION:
            raise LocalStateError(
                f"{path} has state format version {manifest.get('version')!r}; this version reads "
                f"{VERSION}. Use a matching agent-runtime, or move the folder away to start empty.",
                path=path,
            )
        for section in ("tables", "buckets", "queues"):
            manifest.setdefault(section, {})
        return manifest

    def restore(self, *, dynamodb: Any, s3: Any, sqs: Any) -> RestoreSummary:
        """Load the folder into empty services; tables, buckets, queues are created if missing."""
        with self._lock:
            items = sum(
                self._restore_table(dynamodb, name, entry)
                for name, entry in self._manifest["tables"].items()
            )
            objects = sum(
                self._restore_bucket(s3, name, entry)
                for name, entry in self._manifest["buckets"].items()
            )
            messages = sum(
                self._restore_queue(sqs, name, entry)
                for name, entry in self._manifest["queues"].items()
            )
            return RestoreSummary(items=items, objects=objects, messages=messages)

    def forget_queues(self) -> None:
        """Drop the saved messages once they are back in their queues and the stack runs."""
        with self._lock:
            if not self._manifest["queues"]:
                return
            entries = list(self._manifest["queues"].values())
            self._manifest["queues"] = {}
            self._write_manifest()
            for entry in entries:
                (self.root / entry["file"]).unlink(missing_ok=True)

    def _restore_table(self, dynamodb: Any, name: str, entry: dict[str, Any]) -> int:
        if name not in _all_pages(
            dynamodb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName"
        ):
            _create_table(dynamodb, name, entry)
        path = self.root / entry["file"]
        count = 0
        batch: list[dict[str, Any]] = []
        for item in _read_jsonl(path):
            batch.append({"PutRequest": {"Item": _decode_binary(item)}})
            if len(batch) == 25:
                _batch_write(dynamodb, name, batch)
                count, batch = count + len(batch), []
        if batch:
            _batch_write(dynamodb, name, batch)
            count += len(batch)
        return count

    def _restore_bucket(self, s3: Any, name: str, entry: dict[str, Any]) -> int:
        index = self._read_json(self.root / entry["file"])
        try:
            s3.head_bucket(Bucket=name)
        except Exception:
            s3.create_bucket(Bucket=name)
        for key, meta in index["objects"].items():
            body = (self.root / "s3" / "blobs" / meta["blob"]).read_bytes()
            extra = {
                param: meta[field_] for field_, param in _OBJECT_FIELDS.items() if meta.get(field_)
            }
            s3.put_object(
                Bucket=name, Key=key, Body=body, Metadata=meta.get("metadata") or {}, **extra
            )
        return len(index["objects"])

    def _restore_queue(self, sqs: Any, name: str, entry: dict[str, Any]) -> int:
        try:
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except sqs.exceptions.QueueDoesNotExist:
            url = sqs.create_queue(QueueName=name, Attributes=entry.get("attributes") or {})[
                "QueueUrl"
            ]
        fifo = name.endswith(".fifo")
        messages = list(_read_jsonl(self.root / entry["file"]))
        for start in range(0, len(messages), 10):
            entries = []
            for offset, message in enumerate(messages[start : start + 10]):
                one: dict[str, Any] = {"Id": str(offset), "MessageBody": message["body"]}
                if message.get("attributes"):
                    one["MessageAttributes"] = _decode_message_attributes(message["attributes"])
                if fifo:
                    one["MessageGroupId"] = message["group_id"]
                    if message.get("deduplication_id"):
                        one["MessageDeduplicationId"] = message["deduplication_id"]
                entries.append(one)
            failed = sqs.send_message_batch(QueueUrl=url, Entries=entries).get("Failed")
            if failed:
                log.warning("could not restore %d messages to %s: %s", len(failed), name, failed)
        return len(messages)

    # -- writing ---------------------------------------------------------------------------

    def save(self, *, dynamodb: Any = None, s3: Any = None) -> None:
        """Dump every table (given a DynamoDB client) and every bucket (given an S3 client)."""
        with self._lock:
            if dynamodb is not None:
                self._save_tables(dynamodb)
            if s3 is not None:
                self._save_buckets(s3)
            self._write_manifest()

    def drain_queues(self, sqs: Any) -> int:
        """Move every waiting message into the folder. Destructive: only when stopping."""
        with self._lock:
            urls = list(_all_pages(sqs.list_queues, "QueueUrls", "NextToken", "NextToken"))
            attributes = {
                url: sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
                for url in urls
            }
            dead_letter_arns = {
                json.loads(a["RedrivePolicy"])["deadLetterTargetArn"]
                for a in attributes.values()
                if a.get("RedrivePolicy")
            }
            # Drain dead-letter queues last: receiving may move messages into them.
            urls.sort(key=lambda url: attributes[url].get("QueueArn") in dead_letter_arns)
            total = 0
            queues: dict[str, Any] = {}
            for url in urls:
                messages = _drain(sqs, url)
                if not messages:
                    continue
                name = url.rstrip("/").rsplit("/", 1)[-1]
                entry: dict[str, Any] = {
                    "file": f"sqs/{name}.jsonl",
                    "messages": len(messages),
                    "attributes": {
                        k: v for k, v in attributes[url].items() if k in _QUEUE_ATTRIBUTES
                    },
                }
                _write_atomic(self.root / entry["file"], _jsonl(messages))
                queues[name] = entry
                total += len(messages)
            self._manifest["queues"] = queues
            self._write_manifest()
            return total

    def _save_tables(self, dynamodb: Any) -> None:
        tables: dict[str, Any] = {}
        for name in _all_pages(
            dynamodb.list_tables, "TableNames", "ExclusiveStartTableName", "LastEvaluatedTableName"
        ):
            entry = _table_schema(dynamodb, name)
            items = [
                _encode_binary(item)
                for item in _all_pages(
                    lambda **kw: dynamodb.scan(TableName=name, ConsistentRead=True, **kw),  # noqa: B023
                    "Items",
                    "ExclusiveStartKey",
                    "LastEvaluatedKey",
                )
            ]
            entry["file"] = f"dynamodb/{name}.jsonl"
            entry["items"] = len(items)
            _write_atomic(self.root / entry["file"], _jsonl(items))
            tables[name] = entry
        for name, old in self._manifest["tables"].items():
            if name not in tables:
                (self.root / old["file"]).unlink(missing_ok=True)
        self._manifest["tables"] = tables

    def _save_buckets(self, s3: Any) -> None:
        blobs = self.root / "s3" / "blobs"
        blobs.mkdir(parents=True, exist_ok=True)
        buckets: dict[str, Any] = {}
        for bucket in s3.list_buckets().get("Buckets", []):
            name = bucket["Name"]
            previous = self._previous_objects(name)
            objects: dict[str, Any] = {}
            for summary in _all_pages(
                lambda **kw: s3.list_objects_v2(Bucket=name, **kw),  # noqa: B023
                "Contents",
                "ContinuationToken",
                "NextContinuationToken",
            ):
                key, etag = summary["Key"], summary.get("ETag", "")
                old = previous.get(key)
                if old and old.get("etag") == etag and (blobs / old["blob"]).exists():
                    objects[key] = old
                    continue
                response = s3.get_object(Bucket=name, Key=key)
                body = response["Body"].read()
                digest = hashlib.sha256(body).hexdigest()
                if not (blobs / digest).exists():
                    _write_atomic(blobs / digest, body)
                meta: dict[str, Any] = {
                    "blob": digest,
                    "etag": etag,
                    "metadata": response.get("Metadata") or {},
                }
                meta.update({f: response[f] for f in _OBJECT_FIELDS if response.get(f)})
                objects[key] = meta
            entry: dict[str, Any] = {"file": f"s3/{name}.json", "objects": len(objects)}
            _write_atomic(self.root / entry["file"], json.dumps({"objects": objects}).encode())
            buckets[name] = entry
        self._manifest["buckets"] = buckets
        live = {meta["blob"] for name in buckets for meta in self._previous_objects(name).values()}
        for blob in blobs.iterdir():
            if blob.name not in live and not blob.name.startswith("."):
                blob.unlink(missing_ok=True)

    def _previous_objects(self, bucket: str) -> dict[str, Any]:
        entry = self._manifest["buckets"].get(bucket)
        if not entry or not (self.root / entry["file"]).exists():
            return {}
        objects: dict[str, Any] = self._read_json(self.root / entry["file"])["objects"]
        return objects

    def _write_manifest(self) -> None:
        self._manifest.update(
            format=FORMAT, version=VERSION, saved_at=datetime.now(UTC).isoformat()
        )
        _write_atomic(
            self.root / MANIFEST, json.dumps(self._manifest, indent=2, sort_keys=True).encode()
        )

    def _read_json(self, path: Path) -> dict[str, Any]:
        try:
            value: dict[str, Any] = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise LocalStateError(f"cannot read {path}: {exc}", path=path) from exc
        return value


class Autosaver:
    """Saves DynamoDB and S3 every `interval` seconds when they changed since the last save.

    `generation(service)` (from `aws.ChangeTracker`) tells whether a service changed; without
    it every interval saves.
    """

    def __init__(
        self,
        state: LocalState,
        *,
        client: Callable[[str], Any],
        generation: Callable[[str], int] | None,
        interval: float = 2.0,
    ) -> None:
        self.state = state
        self.interval = interval
        self._client = client
        self._generation = generation
        self._saved: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.saves = 0

    def mark_saved(self) -> None:
        """Treat the present state as saved (after a restore or a full save)."""
        if self._generation is not None:
            self._saved = {s: self._generation(s) for s in ("dynamodb", "s3")}

    def save_if_changed(self) -> bool:
        changed: dict[str, int] = {}
        for service in ("dynamodb", "s3"):
            now = self._generation(service) if self._generation else -1
            if now == -1 or now != self._saved.get(service):
                changed[service] = now
        if not changed:
            return False
        self.state.save(
            dynamodb=self._client("dynamodb") if "dynamodb" in changed else None,
            s3=self._client("s3") if "s3" in changed else None,
        )
        self._saved.update(changed)
        self.saves += 1
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="local-state-autosave", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.save_if_changed()
            except Exception:
                log.warning("saving the local state failed; will retry", exc_info=True)


# -- helpers -------------------------------------------------------------------------------


def _all_pages(
    call: Callable[..., dict[str, Any]], items: str, token_in: str, token_out: str
) -> Iterator[Any]:
    kwargs: dict[str, Any] = {}
    while True:
        page = call(**kwargs)
        yield from page.get(items, [])
        token = page.get(token_out)
        if not token:
            return
        kwargs[token_in] = token


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


def _drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not received:
            return messages
        for message in received:
            attributes = message.get("Attributes", {})
            messages.append(
                {
                    "body": message["Body"],
                    "group_id": attributes.get("MessageGroupId"),
                    "deduplication_id": attributes.get("MessageDeduplicationId"),
                    "attributes": _encode_message_attributes(
                        message.get("MessageAttributes") or {}
                    ),
                }
            )
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(received)
            ],
        )


def _encode_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    encoded: dict[str, Any] = {}
    for name, value in attributes.items():
        one = {"DataType": value["DataType"]}
        if "StringValue" in value:
            one["StringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            one["BinaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
        encoded[name] = one
    return encoded


def _decode_message_attributes(attributes: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {**value, "BinaryValue": base64.b64decode(value["BinaryValue"])}
        if "BinaryValue" in value
        else value
        for name, value in attributes.items()
    }


def _encode_binary(value: Any) -> Any:
    """boto3's DynamoDB values hold `bytes` for B/BS; the wire JSON holds them as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _encode_binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_encode_binary(v) for v in value]
    return value


def _decode_binary(value: Any) -> Any:
    if isinstance(value, dict):
        decoded: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "B" and isinstance(inner, str):
                decoded[key] = base64.b64decode(inner)
            elif key == "BS" and isinstance(inner, list):
                decoded[key] = [base64.b64decode(v) for v in inner]
            else:
                decoded[key] = _decode_binary(inner)
        return decoded
    if isinstance(value, list):
        return [_decode_binary(v) for v in value]
    return value


def _jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()


def _read_jsonl(path: Path) -> Iterator[Any]:
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise LocalStateError(f"{path}:{number}: {exc}", path=path) from exc
    except FileNotFoundError as exc:
        raise LocalStateError(f"{path} is listed in the manifest but missing", path=path) from exc


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
