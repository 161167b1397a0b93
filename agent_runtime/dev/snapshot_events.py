"""EventBridge Scheduler schedules and EventBridge buses and rules in a snapshot, and back.

A one-time schedule created before a restart (a scheduled effect) must still exist after it,
and so must a bus or rule the local stack created. Each is dumped in the shape of its
``Create*`` / ``Put*`` call, so restoring is that call again:

- ``scheduler.json``: ``{"groups": [name...], "schedules": [CreateSchedule parameters...]}``
  (the ``default`` group always exists and is not listed);
- ``events.json``: ``{"buses": [CreateEventBus parameters...], "rules": [PutRule parameters
  with "Targets": [...]]}`` (rules of every bus, the ``default`` bus included; rules managed
  by another service are left to it).

Dates (a schedule's start and end) are kept as ISO 8601 text.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from agent_runtime.dev.state_files import all_pages, read_json, write_atomic

__all__ = ["restore_events", "restore_schedules", "save_events", "save_schedules"]

_SCHEDULE_FIELDS = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "FlexibleTimeWindow",
    "Target",
    "State",
    "Description",
    "KmsKeyArn",
    "StartDate",
    "EndDate",
    "ActionAfterCompletion",
)
_SCHEDULE_DATES = ("StartDate", "EndDate")
_RULE_FIELDS = ("Name", "EventPattern", "ScheduleExpression", "State", "Description", "RoleArn")
_DEFAULT = "default"


def save_schedules(scheduler: Any, root: Path, folder: str) -> dict[str, Any]:
    groups = [g for g in _names(scheduler.list_schedule_groups, "ScheduleGroups") if g != _DEFAULT]
    schedules = []
    for summary in all_pages(scheduler.list_schedules, "Schedules", "NextToken", "NextToken"):
        found = scheduler.get_schedule(Name=summary["Name"], GroupName=summary["GroupName"])
        one = {f: found[f] for f in _SCHEDULE_FIELDS if found.get(f) is not None}
        for date in _SCHEDULE_DATES:
            if isinstance(one.get(date), datetime):
                one[date] = one[date].isoformat()
        schedules.append(one)
    return _save(root, f"{folder}/scheduler.json", {"groups": groups, "schedules": schedules})


def restore_schedules(scheduler: Any, root: Path, entry: dict[str, Any]) -> int:
    saved = read_json(root / entry["file"])
    existing = set(_names(scheduler.list_schedule_groups, "ScheduleGroups"))
    for group in saved["groups"]:
        if group not in existing:
            scheduler.create_schedule_group(Name=group)
    for schedule in saved["schedules"]:
        parameters = dict(schedule)
        for date in _SCHEDULE_DATES:
            if parameters.get(date):
                parameters[date] = datetime.fromisoformat(parameters[date])
        try:
            scheduler.create_schedule(**parameters)
        except scheduler.exceptions.ConflictException:
            scheduler.update_schedule(**parameters)
    return len(saved["schedules"])


def save_events(events: Any, root: Path, folder: str) -> dict[str, Any]:
    buses = [
        {k: bus[k] for k in ("Name", "Description") if bus.get(k)}
        for bus in all_pages(events.list_event_buses, "EventBuses", "NextToken", "NextToken")
    ]
    rules = []
    for bus in buses:
        for rule in all_pages(
            lambda **kw: events.list_rules(EventBusName=bus["Name"], **kw),  # noqa: B023
            "Rules",
            "NextToken",
            "NextToken",
        ):
            if rule.get("ManagedBy"):
                continue
            one = {f: rule[f] for f in _RULE_FIELDS if rule.get(f)}
            one["EventBusName"] = bus["Name"]
            one["Targets"] = list(
                all_pages(
                    lambda **kw: events.list_targets_by_rule(
                        Rule=rule["Name"], EventBusName=bus["Name"], **kw  # noqa: B023
                    ),
                    "Targets",
                    "NextToken",
                    "NextToken",
                )
            )
            rules.append(one)
    custom = [bus for bus in buses if bus["Name"] != _DEFAULT]
    return _save(root, f"{folder}/events.json", {"buses": custom, "rules": rules})


def restore_events(events: Any, root: Path, entry: dict[str, Any]) -> int:
    saved = read_json(root / entry["file"])
    existing = set(_names(events.list_event_buses, "EventBuses"))
    for bus in saved["buses"]:
        if bus["Name"] not in existing:
            events.create_event_bus(**bus)
    for rule in saved["rules"]:
        parameters = dict(rule)
        targets = parameters.pop("Targets")
        events.put_rule(**parameters)
        if targets:
            events.put_targets(
                Rule=rule["Name"], EventBusName=rule["EventBusName"], Targets=targets
            )
    return len(saved["rules"])


def _names(call: Any, items: str) -> list[str]:
    return [one["Name"] for one in all_pages(call, items, "NextToken", "NextToken")]


def _save(root: Path, file: str, content: dict[str, list[Any]]) -> dict[str, Any]:
    """Write `content` to `file`; the manifest's entry (the file, and a count per list)."""
    write_atomic(root / file, json.dumps(content, indent=1, sort_keys=True).encode())
    return {"file": file, **{name: len(values) for name, values in content.items()}}
