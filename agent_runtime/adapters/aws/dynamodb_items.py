"""The instance store's items: key layout, attribute helpers, and the codec (`Items`)
that turns submission records and history messages into items and back.

Key layout (``pk``, ``sk``; both strings):

    pk = "I#{agent}/{id}"
    sk = "META"                                 next_seq (admission counter), head (first unsettled,
                                                or a little behind it), agent_name, active_at (last
                                                admission), gap_seq, gap_at (a sequence taken by an
                                                admission that has not written it yet, first seen)
         "SUB#{seq:010d}"                       one ledger item per submission (SubmissionRecord;
                                                waiting_on while it waits; pending_shard and
                                                pending_since while unsettled), or a void one:
                                                a sequence its admission gave up
         "RCPT#{kind}:{key}"                    receipt: hash, submission_id, accepted_at; kept for life
         "MSG#{session}#{seq:010d}#{idx:06d}"   one history message; never rewritten
         "TR#{seq:010d}#{turn:04d}#{call_id}"   one recorded tool result
         "KV#{key}"                             a kv value
         "KID#{ref}"                            a child: child instance, submission, call, created_at

History keys sort by (submission sequence, index within the submission): submissions
of an instance run one at a time in sequence order, so that is conversation order,
and appending needs neither a counter nor a read. JSON attributes over `SPILL_BYTES`
go to S3 (``instances/{agent}/{id}/...``) and the item keeps ``<name>_ref``.

How the store writes these items (fencing, the pending index) is described in
`agent_runtime.adapters.aws.dynamodb`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import settings
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import (
    RECORD_SCHEMA_VERSION,
    Journal,
    Outcome,
    Status,
    SubmissionRecord,
)
from agent_runtime.messages import Message
from agent_runtime.ports import BlobStore, StoredMessage

#: JSON attributes larger than this go to S3 (items stay far below DynamoDB's 400 KB).
SPILL_BYTES = 32 * 1024
_SEQ_MAX = "9999999999"
_SHARD = settings.PENDING_SHARD_ATTRIBUTE
_SINCE = settings.PENDING_SINCE_ATTRIBUTE
_AGENT = settings.INSTANCES_AGENT_ATTRIBUTE
_ACTIVE = settings.INSTANCES_ACTIVE_ATTRIBUTE

Item = dict[str, Any]


def _pk(instance: InstanceRef) -> str:
    return f"I#{instance.key}"


def _sub(seq: int) -> str:
    return f"SUB#{seq:010d}"


def _msg(session: str, seq: int, idx: int) -> str:
    return f"MSG#{session}#{seq:010d}#{idx:06d}"


def pending_shard(instance: InstanceRef) -> int:
    """The instance's partition of the pending index: stable across processes."""
    digest = hashlib.sha256(instance.key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % settings.PENDING_SHARDS


def _key(instance: InstanceRef, sk: str) -> Item:
    return {"pk": {"S": _pk(instance)}, "sk": {"S": sk}}


def _s(value: str) -> Item:
    return {"S": value}


def _n(value: float | int) -> Item:
    return {"N": str(Decimal(str(value)))}


def _num(item: Item, name: str) -> float | None:
    return float(item[name]["N"]) if name in item else None


def _int(item: Item, name: str, default: int = 0) -> int:
    return int(item[name]["N"]) if name in item else default


def _str(item: Item, name: str) -> str | None:
    return item[name]["S"] if name in item else None


def _is_void(item: Item) -> bool:
    """A SUB item that holds no submission: its sequence was given up (see `void_item`)."""
    return "void" in item


def void_item(instance: InstanceRef, seq: int) -> Item:
    """The item that closes a sequence no submission will have: an admission that failed
    after taking it, or one that never wrote it in time (claims pass it as settled)."""
    return {**_key(instance, _sub(seq)), "id": _s(f"void-{seq}"), "status": _s("settled"), "void": {"BOOL": True}}


def _journal(journal: Journal) -> dict[str, Any]:
    """A journal as stored: fields at their defaults are left out (read back by the
    model's defaults), which keeps a SUB item of an ordinary turn within one write unit."""
    return journal.model_dump(mode="json", exclude_defaults=True)


def _cancel_reasons(error: ClientError) -> list[dict[str, Any]]:
    reasons: Any = error.response.get("CancellationReasons") or []
    return list(reasons)


def _old_item(error: ClientError) -> Item | None:
    """The item as it was when a condition failed (ReturnValuesOnConditionCheckFailure)."""
    item: Any = error.response.get("Item")
    return dict(item) if item else None


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class Items:
    """Encodes records and messages as items and decodes them, spilling big JSON
    attributes to the blob store. Holds no table: the store writes what it returns."""

    def __init__(self, blobs: BlobStore, *, spill_bytes: int = SPILL_BYTES) -> None:
        self.blobs = blobs
        self.spill_bytes = spill_bytes

    # --- JSON attributes with S3 spill ---------------------------------------------

    async def json_attr(self, instance: InstanceRef, name: str, value: Any, blob_key: str) -> tuple[str, Item]:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        if len(text.encode()) <= self.spill_bytes:
            return name, _s(text)
        key = f"instances/{instance.key}/{blob_key}"
        await self.blobs.put(key, text.encode())
        return f"{name}_ref", _s(key)

    async def load_json(self, item: Item, name: str) -> Any:
        if name in item:
            return json.loads(item[name]["S"])
        if f"{name}_ref" in item:
            return json.loads(await self.blobs.get(item[f"{name}_ref"]["S"]))
        return None

    # --- records -------------------------------------------------------------------

    async def record(self, item: Item) -> SubmissionRecord:
        journal = await self.load_json(item, "journal")
        status = item["status"]["S"]
        outcome = _str(item, "outcome")
        return SubmissionRecord(
            v=_int(item, "v"),
            id=item["id"]["S"],
            instance=item["pk"]["S"][2:],
            sequence=_int(item, "sequence"),
            kind=item["kind"]["S"],
            session=item["session"]["S"],
            payload=await self.load_json(item, "payload"),
            status=Status(status),
            outcome=Outcome(outcome) if outcome else None,
            result=await self.load_json(item, "result"),
            error=await self.load_json(item, "error"),
            accepted_at=_num(item, "accepted_at") or 0.0,
            started_at=_num(item, "started_at"),
            settled_at=_num(item, "settled_at"),
            claims=_int(item, "claims"),
            yields=_int(item, "yields"),
            attempt_id=_str(item, "attempt_id"),
            lease_until=_num(item, "lease_until"),
            not_before=_num(item, "not_before"),
            max_attempts=_int(item, "max_attempts") if "max_attempts" in item else None,
            timeout_s=_num(item, "timeout_s"),
            abort_requested=bool(item.get("abort_requested", {}).get("BOOL", False)),
            waiting_on=_str(item, "waiting_on"),
            receipt_key=_str(item, "receipt_key"),
            journal=Journal.model_validate(journal) if journal else Journal(),
        )

    async def ledger_item(self, instance: InstanceRef, record: SubmissionRecord, payload_blob: str) -> Item:
        name, payload = await self.json_attr(instance, "payload", record.payload, payload_blob)
        item: Item = {
            **_key(instance, _sub(record.sequence)),
            "v": _n(RECORD_SCHEMA_VERSION),
            "id": _s(record.id),
            "sequence": _n(record.sequence),
            "kind": _s(record.kind),
            "session": _s(record.session),
            name: payload,
            "status": _s(record.status.value),
            "accepted_at": _n(record.accepted_at),
            "claims": _n(0),
            "yields": _n(0),
            "abort_requested": {"BOOL": False},
        }
        if record.max_attempts is not None:
            item["max_attempts"] = _n(record.max_attempts)
        if record.timeout_s is not None:
            item["timeout_s"] = _n(record.timeout_s)
        if record.receipt_key:
            item["receipt_key"] = _s(record.receipt_key)
        return item

    # --- history messages ----------------------------------------------------------

    async def messages(self, instance: InstanceRef, session: str, seq: int, start: int, messages: Iterable[Message]) -> list[Item]:
        """One history item per message, the first at index `start` of submission `seq`."""
        items = []
        for offset, message in enumerate(messages):
            idx = start + offset
            name, value = await self.json_attr(instance, "m", message.model_dump(mode="json"), f"history/{session}/{seq:010d}-{idx:06d}.json")
            items.append({**_key(instance, _msg(session, seq, idx)), name: value})
        return items

    async def stored_message(self, item: Item) -> StoredMessage:
        # sk = MSG#{session}#{seq}#{idx}; sessions contain no '#'.
        _, _, seq_text, idx_text = item["sk"]["S"].split("#")
        message = Message.model_validate(await self.load_json(item, "m"))
        return StoredMessage(int(seq_text), int(idx_text), message)
