"""The instance-store ports on one DynamoDB table; partition key = instance.

`dynamodb_stores()` builds them over one table:

    dynamodb_ledger      Ledger: admission, reads, the abort flag, the pending index
    dynamodb_attempts    Attempts: claims, fenced checkpoints, release, suspend/resume, settle
    dynamodb_history     History, ToolResults, Sessions, KV, ChildIndex
    s3_files             Files (FILE items here, bytes in S3; dynamodb_files holds the items)
    dynamodb_variables   Variables (VAR items; secrets encrypted with KMS)
    dynamodb_table       their base: client, table, codec, the fence condition
    dynamodb_items       the item layout (keys, attributes, JSON over `SPILL_BYTES` spilled
                         to S3) and `Items`, the codec between records and items

Every write of an attempt carries the fence condition
``attempt_id = :attempt AND #status = :running`` (plus ``abort_requested = :false``
where an abort must stop the attempt). The failure's old item (returned with
``ReturnValuesOnConditionCheckFailure=ALL_OLD``) says which domain error to raise.

A single-turn submission makes five writes here, and only the last is a transaction: admission takes a sequence from META's counter (one update, which also
lists the instance) and puts the SUB item there; the claim updates SUB; the input
message is one put (`Attempts.record_input`); the settle writes SUB and the answer
together. META's ``head`` is a lower bound that claims and settles move forward only
every `HEAD_LAG` submissions (`dynamodb_claims` says how a claim finds the head, and
what it does about a sequence taken and not written).

The sweeper finds instances with idle work without a scan, through the sparse global
secondary index ``pending`` (keys only): partition key ``pending_shard`` (number,
``0..PENDING_SHARDS-1``, a stable hash of the instance key, so no one partition takes
every write), sort key ``pending_since`` (number, epoch seconds). Only unsettled SUB
items carry them: the admission's put sets both, the settle (fenced or not) removes
them, so neither costs a write of its own. The sweeper asks for ``pending_since <= now
- idle`` and takes each instance once. Index reads are eventually consistent: a wake-up
too many is harmless, and none is ever missed for long.

Listings (`Ledger.instances`) read the sparse index ``instances``: partition key
``agent_name``, sort key ``active_at`` (the last admission), projecting ``next_seq`` and
``head``. Both keys are set by the admission's update of META, so the index costs no
write request of its own, only the index's replication of that update. One agent is one
index partition: past about a thousand admissions a second for one agent, the index
would throttle its writes (shard the key then, as ``pending`` does).
"""

from __future__ import annotations

from typing import Any

from agent_runtime.adapters.aws.dynamodb_attempts import DynamoDBAttempts
from agent_runtime.adapters.aws.dynamodb_effects import DynamoDBEffects
from agent_runtime.adapters.aws.dynamodb_history import (
    KV_MAX_BYTES,
    DynamoDBChildIndex,
    DynamoDBHistory,
    DynamoDBKV,
    DynamoDBSessions,
    DynamoDBToolResults,
)
from agent_runtime.adapters.aws.dynamodb_items import SPILL_BYTES, Items, pending_shard
from agent_runtime.adapters.aws.dynamodb_ledger import MAX_ADMIT_RETRIES, DynamoDBLedger
from agent_runtime.adapters.aws.dynamodb_variables import DynamoDBVariables
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.adapters.aws.s3_files import S3Files
from agent_runtime.effects import Timers
from agent_runtime.ports import Stores

__all__ = [
    "KV_MAX_BYTES",
    "MAX_ADMIT_RETRIES",
    "SPILL_BYTES",
    "DynamoDBAttempts",
    "DynamoDBChildIndex",
    "DynamoDBHistory",
    "DynamoDBKV",
    "DynamoDBLedger",
    "DynamoDBToolResults",
    "dynamodb_stores",
    "pending_shard",
]


def dynamodb_stores(
    client: Any,
    table: str,
    blobs: S3Blobs,
    *,
    spill_bytes: int = SPILL_BYTES,
    kms: Any = None,
    secrets_key: str | None = None,
    timers: Timers | None = None,
) -> Stores:
    """Every instance-store port over one table (+ S3 for big attributes and files, + KMS
    for secrets: a client, or a function that makes one on first use). Clients are passed in."""
    items = Items(blobs, spill_bytes=spill_bytes)
    return Stores(
        ledger=DynamoDBLedger(client, table, items),
        attempts=DynamoDBAttempts(client, table, items),
        tool_results=DynamoDBToolResults(client, table, items),
        history=DynamoDBHistory(client, table, items),
        kv=DynamoDBKV(client, table, items),
        child_index=DynamoDBChildIndex(client, table, items),
        sessions=DynamoDBSessions(client, table, items),
        files=S3Files(client, table, blobs.client, blobs.bucket),
        variables=DynamoDBVariables(client, table, kms, secrets_key),
        effects=DynamoDBEffects(client, table),
        timers=timers,
    )
