"""The sweep: re-wake instances whose work is queued but has made no progress.

SQS is only the wake-up; the ledger is the truth. A wake-up can be lost (a send that failed
after admission, a message that went to the dead-letter queue, a local stack stopped with
messages in flight), and then nothing would run the instance's work until its next
admission. The sweep asks the store for instances pending and idle for `idle_seconds`
(an index query, never a scan) and sends each one wake-up.

It never disturbs a running attempt: wake-ups of an instance share its FIFO message group,
so a sweep wake-up waits behind the message a live worker is processing, and a worker that
finds the head leased anyway fails the message for a later redelivery. It does not flood:
the deduplication id is per instance per sweep window, so sweeps that overlap or are
retried in one window send one wake-up per instance.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass

from agent_runtime import settings
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import Ledger, WakeUps

log = logging.getLogger("agent_runtime")


@dataclass(frozen=True)
class SweepResult:
    """`pending`: instances found idle; `woken`: wake-ups sent; `failed`: sends that raised."""

    pending: int
    woken: int
    failed: int


def sweep_dedupe_id(instance: InstanceRef, window: int) -> str:
    """``sweep-<window>-<hash of the instance>``: within the 128 characters SQS allows,
    and unique per instance, whatever the queue's deduplication scope."""
    digest = hashlib.sha256(instance.key.encode()).hexdigest()[:40]
    return f"sweep-{window}-{digest}"


async def sweep(
    ledger: Ledger,
    wakeups: WakeUps,
    *,
    now: float,
    idle_seconds: float = settings.SWEEP_IDLE_SECONDS,
    interval_seconds: float = settings.SWEEP_INTERVAL_SECONDS,
    limit: int = settings.SWEEP_LIMIT,
) -> SweepResult:
    """Send one ``sweep`` wake-up to each of the (at most `limit`, oldest first)
    instances pending since `now - idle_seconds` or earlier. A failed send is logged and
    counted; the others are still sent (the next sweep tries the failed ones again)."""
    window = int(now // interval_seconds)
    pending = await ledger.pending_instances(idle_since=now - idle_seconds, limit=limit)
    woken = failed = 0
    for instance in pending:
        try:
            await wakeups.send(instance, reason="sweep", dedupe_id=sweep_dedupe_id(instance, window))
            woken += 1
        except Exception:
            failed += 1
            log.exception("sweep wake-up failed", extra={"instance": instance.key})
    return SweepResult(pending=len(pending), woken=woken, failed=failed)


__all__ = ["SweepResult", "sweep", "sweep_dedupe_id"]
