"""EventBridge Scheduler's one-time schedules, fired by the local stack (moto only stores them).

`LocalScheduler` polls its groups every `interval` seconds (``ListSchedules``, then
``GetSchedule`` for the details the list leaves out). A schedule whose expression is
``at(yyyy-mm-ddThh:mm:ss)`` (in its ``ScheduleExpressionTimezone``, UTC by default), whose
state is ``ENABLED`` and whose time has come is delivered to its target on a thread of its
own, so a slow or failing target never holds up the others:

- a Lambda function of the local stack (its ARN, see `LocalScheduler.functions`): invoked
  asynchronously with ``json.loads(Input)`` as the event, as Scheduler invokes Lambda
  targets (``InvocationType=Event``: the function's own retries then apply);
- an SQS queue: ``SendMessage`` with ``Input`` as the body, and the ``MessageGroupId`` of the
  target's ``SqsParameters`` for a FIFO queue.

A delivery that fails (an unknown function, an unreachable queue) is retried with a
doubling backoff within the target's ``RetryPolicy`` (attempts and event age; Scheduler's
defaults are 185 and 24 h), then sent to the target's ``DeadLetterConfig`` queue if it has
one. After its last attempt, a schedule whose ``ActionAfterCompletion`` is ``DELETE`` is
deleted. A schedule is delivered once per process, by ARN and modification date (updating
it arms it again); deployed, Scheduler delivers at least once, and so does this across a
crash, so consumers deduplicate.

Schedules already due when the scheduler starts (after a restart) fire at once. ``rate()``
and ``cron()`` schedules are left alone: the runtime makes only one-time schedules.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["LocalScheduler", "Schedule", "due_at"]

log = logging.getLogger(__name__)

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
#: Scheduler's RetryPolicy defaults, for targets that give none.
DEFAULT_RETRY_ATTEMPTS = 185
DEFAULT_EVENT_AGE_SECONDS = 86_400

#: Delivers one event to a Lambda function asynchronously.
AsyncTarget = Callable[[Any], None]


def due_at(expression: str, timezone: str | None = None) -> datetime | None:
    """When an ``at(...)`` expression fires (aware, UTC); None for ``rate()``/``cron()``.
    Raises ValueError for an ``at(...)`` that is not a valid time."""
    match = _AT.match(expression.strip())
    if match is None:
        return None
    local = datetime.fromisoformat(match.group(1)).replace(tzinfo=ZoneInfo(timezone or "UTC"))
    return local.astimezone(UTC)


@dataclass(frozen=True)
class Schedule:
    """The parts of a ``GetSchedule`` answer that firing needs."""

    arn: str
    name: str
    group: str
    due: datetime
    target: dict[str, Any]
    delete_after: bool
    version: str  # the last modification date: an updated schedule fires again

    @classmethod
    def parse(cls, details: dict[str, Any], *, version: str) -> Schedule | None:
        """None for a schedule that is not an enabled ``at(...)`` one."""
        if details.get("State", "ENABLED") != "ENABLED":
            return None
        try:
            due = due_at(details["ScheduleExpression"], details.get("ScheduleExpressionTimezone"))
        except ValueError:
            log.warning("schedule %s has an invalid expression", details.get("Arn"))
            return None
        if due is None:
            return None
        return cls(
            arn=details["Arn"],
            name=details["Name"],
            group=details.get("GroupName") or "default",
            due=due,
            target=details["Target"],
            delete_after=details.get("ActionAfterCompletion") == "DELETE",
            version=version,
        )


class DeliveryError(Exception):
    """A target could not be delivered to (retried within the target's RetryPolicy)."""


class LocalScheduler:
    """Fire the due one-time schedules of `groups`. ``start()`` / ``stop()``.

    `functions` maps a Lambda function's ARN to the way it is invoked asynchronously
    (`AsyncInvoker.invoke` in the local stack). `retry_delay` is the first backoff, doubled
    up to `max_retry_delay`.
    """

    def __init__(
        self,
        *,
        scheduler: Any,
        sqs: Any,
        groups: Iterable[str],
        functions: Mapping[str, AsyncTarget],
        interval: float = 0.25,
        retry_delay: float = 0.5,
        max_retry_delay: float = 30.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.scheduler = scheduler
        self.sqs = sqs
        self.groups = tuple(groups)
        self.functions = dict(functions)
        self.interval = interval
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self.clock = clock
        self.delivered = 0
        self.failed = 0
        #: (ARN, version) of the schedules taken for delivery, and of those read so far.
        self._seen: set[tuple[str, str]] = set()
        self._known: dict[tuple[str, str], Schedule | None] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._deliveries: set[threading.Thread] = set()

    @property
    def in_flight(self) -> int:
        """Deliveries under way (retrying included)."""
        with self._lock:
            return len(self._deliveries)

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="local-scheduler", daemon=True)
        self._thread.start()

    def stop(self, grace: float = 5.0) -> None:
        """Stop polling and retrying; a delivery cut short fires again after a restart."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(grace)
        with self._lock:
            deliveries = list(self._deliveries)
        for thread in deliveries:
            thread.join(grace)
        self._thread = None

    def poll(self) -> list[Schedule]:
        """Start delivering every schedule that is due and not yet taken; those schedules."""
        now = self.clock()
        started = []
        for schedule in self._due(now):
            key = (schedule.arn, schedule.version)
            with self._lock:
                if key in self._seen:
                    continue
                self._seen.add(key)
            thread = threading.Thread(
                target=self._fire, args=(schedule,), name=f"schedule:{schedule.name}", daemon=True
            )
            with self._lock:
                self._deliveries.add(thread)
            thread.start()
            started.append(schedule)
        return started

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll()
            except Exception:
                if self._stop.is_set():
                    return
                log.warning("polling the schedules failed; retrying", exc_info=True)
            self._stop.wait(self.interval)

    def _due(self, now: datetime) -> list[Schedule]:
        """The enabled one-time schedules due by `now` that were not delivered yet. Each
        version of a schedule is read (``GetSchedule``) once: the list has no expression."""
        due: list[Schedule] = []
        listed: set[tuple[str, str]] = set()
        for group in self.groups:
            for summary in self._list(group):
                key = (summary["Arn"], str(summary.get("LastModificationDate", "")))
                listed.add(key)
                with self._lock:
                    if key in self._seen:
                        continue
                if key not in self._known:
                    try:
                        details = self.scheduler.get_schedule(Name=summary["Name"], GroupName=group)
                    except self.scheduler.exceptions.ResourceNotFoundException:
                        continue  # deleted meanwhile
                    self._known[key] = Schedule.parse(details, version=key[1])
                schedule = self._known[key]
                if schedule is not None and schedule.due <= now:
                    due.append(schedule)
        for key in set(self._known) - listed:
            del self._known[key]  # deleted or updated: forget the old version
        return due

    def _list(self, group: str) -> list[dict[str, Any]]:
        schedules: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"GroupName": group}
        while True:
            page = self.scheduler.list_schedules(**kwargs)
            schedules.extend(page.get("Schedules", []))
            if not page.get("NextToken"):
                return schedules
            kwargs["NextToken"] = page["NextToken"]

    # -- one delivery ----------------------------------------------------------------------

    def _fire(self, schedule: Schedule) -> None:
        try:
            delivered = self._deliver_with_retries(schedule)
            with self._lock:
                self.delivered += delivered
                self.failed += not delivered
            if not delivered:
                self._dead_letter(schedule)
            if schedule.delete_after and not self._stop.is_set():
                self._delete(schedule)
        except Exception:
            log.exception("firing schedule %s failed", schedule.arn)
        finally:
            with self._lock:
                self._deliveries.discard(threading.current_thread())

    def _deliver_with_retries(self, schedule: Schedule) -> bool:
        policy = schedule.target.get("RetryPolicy") or {}
        attempts = 1 + int(policy.get("MaximumRetryAttempts", DEFAULT_RETRY_ATTEMPTS))
        expires = schedule.due.timestamp() + int(
            policy.get("MaximumEventAgeInSeconds", DEFAULT_EVENT_AGE_SECONDS)
        )
        delay = self.retry_delay
        for attempt in range(1, attempts + 1):
            try:
                self._deliver(schedule.target)
                return True
            except Exception as exc:
                log.warning(
                    "schedule %s: delivery attempt %d failed: %s", schedule.arn, attempt, exc
                )
            if attempt == attempts or time.time() + delay > expires:
                break
            if self._stop.wait(delay):
                return False
            delay = min(delay * 2, self.max_retry_delay)
        log.error("schedule %s: gave up delivering to %s", schedule.arn, schedule.target["Arn"])
        return False

    def _deliver(self, target: dict[str, Any]) -> None:
        arn: str = target["Arn"]
        body: str = target.get("Input") or "{}"
        if arn.startswith("arn:aws:lambda:"):
            function = self.functions.get(arn)
            if function is None:
                raise DeliveryError(f"no local function has the ARN {arn}")
            function(json.loads(body))
        elif arn.startswith("arn:aws:sqs:"):
            message: dict[str, Any] = {"QueueUrl": self._queue_url(arn), "MessageBody": body}
            group = (target.get("SqsParameters") or {}).get("MessageGroupId")
            if group:
                message["MessageGroupId"] = group
            self.sqs.send_message(**message)
        else:
            raise DeliveryError(f"the local scheduler cannot deliver to {arn}")

    def _dead_letter(self, schedule: Schedule) -> None:
        queue = (schedule.target.get("DeadLetterConfig") or {}).get("Arn")
        if not queue:
            return
        try:
            self.sqs.send_message(
                QueueUrl=self._queue_url(queue), MessageBody=schedule.target.get("Input") or "{}"
            )
        except Exception:
            log.exception("schedule %s: could not send to its dead-letter queue", schedule.arn)

    def _queue_url(self, arn: str) -> str:
        *_, account, name = arn.split(":")
        url: str = self.sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)[
            "QueueUrl"
        ]
        return url

    def _delete(self, schedule: Schedule) -> None:
        with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
            self.scheduler.delete_schedule(Name=schedule.name, GroupName=schedule.group)
