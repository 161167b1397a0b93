"""Deliver effects' timers in tests, as the deployed scheduler would: the memory timers
that are due, or moto's EventBridge Scheduler schedules that are due (moto stores them
and never fires them). Each due timer's event goes to the dispatch function's handler
(`functions.dispatch_events.handler`) when `via_handler`, else straight to
`Service.fire_effect`; a schedule is deleted once delivered, as
``ActionAfterCompletion=DELETE`` has Scheduler do."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from agent_runtime.adapters.aws.scheduler import SchedulerTimers
from agent_runtime.adapters.memory_effects import MemoryTimers
from agent_runtime.service import Service


def due_events(service: Service, now: float, *, keep: bool = False) -> list[dict[str, Any]]:
    """The timer events due at `now`, oldest first; they are then gone unless `keep`."""
    timers = service.stores.timers
    if isinstance(timers, MemoryTimers):
        due = timers.due(now)
        if keep:
            for ref, effect_id in due:
                timers.armed[effect_id] = (ref, now)
        return [
            {"detail-type": "agent-runtime.effect", "id": eid, "detail": {"agent": r.agent, "id": r.id, "effect_id": eid}}
            for r, eid in due
        ]
    if isinstance(timers, SchedulerTimers):
        return _due_schedules(timers, now, keep=keep)
    raise TypeError(f"no timers to deliver from: {timers!r}")


def _due_schedules(timers: SchedulerTimers, now: float, *, keep: bool) -> list[dict[str, Any]]:
    client = timers.client
    found: list[tuple[float, dict[str, Any]]] = []
    for page in client.get_paginator("list_schedules").paginate(GroupName=timers.group):
        for summary in page.get("Schedules", []):
            schedule = client.get_schedule(Name=summary["Name"], GroupName=timers.group)
            expression = schedule["ScheduleExpression"]
            due = datetime.strptime(expression[3:-1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
            if due <= now and schedule.get("State", "ENABLED") == "ENABLED":
                found.append((due, json.loads(schedule["Target"]["Input"])))
                if not keep and schedule.get("ActionAfterCompletion") == "DELETE":
                    client.delete_schedule(Name=summary["Name"], GroupName=timers.group)
    return [event for _, event in sorted(found, key=lambda f: f[0])]


async def fire_due(service: Service, now: float | None = None, *, keep: bool = False) -> list[str | None]:
    """Fire every effect due at `now` (the service's clock by default) through
    `Service.fire_effect`; the submission ids admitted (None for a cancelled effect)."""
    admitted: list[str | None] = []
    for event in due_events(service, service.clock() if now is None else now, keep=keep):
        detail = event["detail"]
        admission = await service.fire_effect(detail["agent"], detail["id"], detail["effect_id"])
        admitted.append(admission.record.id if admission else None)
    return admitted


__all__ = ["due_events", "fire_due"]
