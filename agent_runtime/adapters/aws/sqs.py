"""SQS FIFO wake-ups: `MessageGroupId` = instance, so one instance's wake-ups are
delivered one at a time, in order, while other instances flow in parallel."""

from __future__ import annotations

import json
from typing import Any

from agent_runtime.adapters.aws.offload import offload
from agent_runtime.ids import InstanceRef

WAKEUP_VERSION = 1


def wakeup_body(instance: InstanceRef, reason: str) -> str:
    return json.dumps({"v": WAKEUP_VERSION, "instance": instance.key, "reason": reason})


def parse_wakeup(body: str) -> InstanceRef:
    """The instance a wake-up names; refuses unknown versions loudly."""
    data = json.loads(body)
    if data.get("v") != WAKEUP_VERSION:
        raise ValueError(f"unknown wake-up version {data.get('v')!r}")
    return InstanceRef.parse(data["instance"])


def child_token(body: str) -> tuple[str, str] | None:
    """``(submission id, task token)`` when the wake-up comes from a blocking child's
    execution (`agent_runtime.blocking`), else None."""
    data = json.loads(body)
    token, submission_id = data.get("task_token"), data.get("submission_id")
    if isinstance(token, str) and isinstance(submission_id, str):
        return submission_id, token
    return None


class SqsWakeUps:
    def __init__(self, client: Any, queue_url: str) -> None:
        self.client = client
        self.queue_url = queue_url

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        await offload(
            self.client.send_message,
            QueueUrl=self.queue_url,
            MessageBody=wakeup_body(instance, reason),
            MessageGroupId=instance.key,
            MessageDeduplicationId=dedupe_id[:128],
        )
