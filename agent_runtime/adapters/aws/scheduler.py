"""`Timers` on EventBridge Scheduler: one one-time schedule per effect, named by the
effect id, in the runtime's schedule group; deleted by Scheduler once it has fired
(``ActionAfterCompletion=DELETE``).

Its target is the dispatch function (`functions.dispatch_events`), invoked as the
scheduler role with an EventBridge-shaped event of detail-type
`settings.EFFECT_DETAIL_TYPE` whose detail names the instance and the effect; the
arguments stay in the instance's store (a target's input is at most 8,192 characters).
Scheduler delivers at least once and retries a failed invocation; the dispatch side
admits each effect once, by its id. Locally, the local stack fires these schedules
itself (moto stores them but never fires them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb_items import _code
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.effects import EffectRecord, schedule_expression
from agent_runtime.events import iso
from agent_runtime.ids import InstanceRef

SCHEDULE_SOURCE = "agent-runtime.scheduler"
#: How long Scheduler keeps trying to deliver a due effect, and how often.
RETRY_POLICY = {"MaximumEventAgeInSeconds": 24 * 3600, "MaximumRetryAttempts": 185}


def effect_event(instance: InstanceRef, record: EffectRecord) -> dict[str, Any]:
    """What the schedule delivers to the dispatch function."""
    return {
        "version": "0",
        "id": record.id,
        "detail-type": settings.EFFECT_DETAIL_TYPE,
        "source": SCHEDULE_SOURCE,
        "account": "",
        "time": iso(record.due_at),
        "region": "",
        "resources": [],
        "detail": {"agent": instance.agent, "id": instance.id, "effect_id": record.id},
    }


def provision_schedule_group(client: Any, name: str) -> str:
    """Create the schedule group `name` unless it exists (the local stack and tests)."""
    try:
        client.create_schedule_group(Name=name)
    except ClientError as error:
        if _code(error) != "ConflictException":
            raise
    return name


class SchedulerTimers:
    """A Scheduler client (or a function that makes one on first use), the group, the
    role Scheduler assumes, and the target function's ARN."""

    def __init__(self, client: Any | Callable[[], Any], *, group: str, role_arn: str, target_arn: str) -> None:
        self._client = client
        self.group = group
        self.role_arn = role_arn
        self.target_arn = target_arn

    @property
    def client(self) -> Any:
        if callable(self._client) and not hasattr(self._client, "create_schedule"):
            self._client = self._client()
        return self._client

    async def arm(self, instance: InstanceRef, record: EffectRecord) -> None:
        try:
            await offload(
                self.client.create_schedule,
                Name=record.id,
                GroupName=self.group,
                ScheduleExpression=schedule_expression(record.due_at),
                ScheduleExpressionTimezone="UTC",
                FlexibleTimeWindow={"Mode": "OFF"},
                ActionAfterCompletion="DELETE",
                State="ENABLED",
                Description=f"effect {record.name} of {instance.key}"[:512],
                Target={
                    "Arn": self.target_arn,
                    "RoleArn": self.role_arn,
                    "Input": json.dumps(effect_event(instance, record)),
                    "RetryPolicy": RETRY_POLICY,
                },
            )
        except ClientError as error:
            if _code(error) != "ConflictException":  # armed before: this is a replay
                raise

    async def disarm(self, effect_id: str) -> None:
        try:
            await offload(self.client.delete_schedule, Name=effect_id, GroupName=self.group)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise


__all__ = ["SCHEDULE_SOURCE", "SchedulerTimers", "effect_event", "provision_schedule_group"]
