"""What a restarted local stack does for the work the previous run left behind.

When `agent-runtime dev` stops (Ctrl-C, a crash, a closed laptop) while an instance is
running, the attempt dies with it, its lease is still in the saved table, and the SQS
message that was being processed is not saved. Deployed, the lease would expire and the
sweeper would re-wake the instance; locally nobody would for up to the worker timeout.

So on start, after the saved state is back: every submission still ``running`` belongs
to a process that no longer exists, and its lease is ended (the next claim treats it as
the crashed attempt it is: recorded tool results are kept, calls of unknown outcome are
marked interrupted); then one sweep with no idle threshold wakes every instance with
unsettled work. Both are local only: the deployed stack never scans its table.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.adapters.aws.sqs import SqsWakeUps
from agent_runtime.sweep import sweep

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Recovered:
    leases: int
    woken: int


def end_dead_leases(dynamodb: Any, table: str) -> int:
    """End the lease of every running submission; returns how many there were."""
    ended = 0
    request: dict[str, Any] = {
        "TableName": table,
        "FilterExpression": "begins_with(sk, :sub) AND #status = :running",
        "ExpressionAttributeNames": {"#status": "status"},
        "ExpressionAttributeValues": {":sub": {"S": "SUB#"}, ":running": {"S": "running"}},
        "ProjectionExpression": "pk, sk",
    }
    while True:
        page = dynamodb.scan(**request)
        for item in page["Items"]:
            dynamodb.update_item(
                TableName=table,
                Key={"pk": item["pk"], "sk": item["sk"]},
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="#status = :running",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":running": {"S": "running"}},
            )
            ended += 1
        if "LastEvaluatedKey" not in page:
            return ended
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _sweep(dynamodb: Any, sqs: Any, s3: Any, table: str, queue_url: str, bucket: str, idle_seconds: float) -> int:
    ledger = dynamodb_stores(dynamodb, table, S3Blobs(s3, bucket)).ledger
    wakeups = SqsWakeUps(sqs, queue_url)
    # On a thread of its own: the stack may be started from inside a running event loop.
    with ThreadPoolExecutor(1) as pool:
        result = pool.submit(asyncio.run, sweep(ledger, wakeups, now=time.time(), idle_seconds=idle_seconds)).result()
    return result.woken


def recover(*, dynamodb: Any, sqs: Any, s3: Any, table: str, queue_url: str, bucket: str) -> Recovered:
    leases = end_dead_leases(dynamodb, table)
    woken = _sweep(dynamodb, sqs, s3, table, queue_url, bucket, idle_seconds=-1)
    return Recovered(leases=leases, woken=woken)


class Sweeper:
    """The deployed stack's scheduled sweeper, locally: a thread that sweeps every
    `interval` seconds (wake-ups lost while the stack runs are found as they are deployed)."""

    def __init__(self, *, interval: float, idle_seconds: float, **resources: Any) -> None:
        self.interval = interval
        self.idle_seconds = idle_seconds
        self.resources = resources
        self.woken = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="local-sweeper", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.woken += _sweep(**self.resources, idle_seconds=self.idle_seconds)
            except Exception:  # moto stopping under us, or a transient error: next round
                log.warning("local sweep failed", exc_info=True)


__all__ = ["Recovered", "Sweeper", "end_dead_leases", "recover"]
