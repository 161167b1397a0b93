"""The local scheduler fires one-time schedules stored in moto: on time, once, to a local
function or an SQS queue, with retries, then deletes them when they ask for it. The clock is
set by the test and `poll()` is called directly, so no test waits for a schedule's time."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from agent_runtime import settings
from agent_runtime.dev.aws import LocalAws
from agent_runtime.dev.scheduler import LocalScheduler, due_at
from tests.dev.polling import eventually

FUNCTION = "arn:aws:lambda:us-east-1:123456789012:function:agent-runtime-dispatch-events"
GROUP = settings.LOCAL_SCHEDULE_GROUP
START = datetime(2030, 5, 1, 12, 0, 0, tzinfo=UTC)


class Target:
    """A local function's asynchronous invocation: records events, fails the first `fail`."""

    def __init__(self, fail: int = 0) -> None:
        self.events: list[Any] = []
        self.calls = 0
        self.fail = fail
        self._lock = threading.Lock()

    def __call__(self, event: Any) -> None:
        with self._lock:
            self.calls += 1
            if self.calls <= self.fail:
                raise ConnectionError("the event queue is unreachable")
            self.events.append(event)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def target() -> Target:
    return Target()


def scheduler_for(aws: LocalAws, clock: Clock, target: Target) -> LocalScheduler:
    return LocalScheduler(
        scheduler=aws.client("scheduler"),
        sqs=aws.client("sqs"),
        groups=[GROUP],
        functions={FUNCTION: target},
        retry_delay=0.01,
        clock=clock,
    )


@pytest.fixture
def local(local_aws: LocalAws, clock: Clock, target: Target) -> Iterator[LocalScheduler]:
    scheduler = scheduler_for(local_aws, clock, target)
    yield scheduler
    scheduler.stop()


def at(moment: datetime) -> str:
    return f"at({moment.strftime('%Y-%m-%dT%H:%M:%S')})"


def create(aws: LocalAws, name: str, *, when: datetime | str, target: dict[str, Any], **options: Any) -> None:
    aws.client("scheduler").create_schedule(
        Name=name,
        GroupName=GROUP,
        ScheduleExpression=when if isinstance(when, str) else at(when),
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={"RoleArn": "arn:aws:iam::123456789012:role/scheduler", **target},
        **options,
    )


def names(aws: LocalAws) -> set[str]:
    return {s["Name"] for s in aws.client("scheduler").list_schedules(GroupName=GROUP)["Schedules"]}


def fired(local: LocalScheduler, count: int) -> None:
    eventually(lambda: local.delivered + local.failed >= count and not local.in_flight, "the deliveries")


def test_at_expressions_are_read_in_their_timezone_and_others_are_ignored() -> None:
    assert due_at("at(2030-05-01T12:00:00)") == START
    assert due_at("at(2030-05-01T14:00:00)", "Europe/Paris") == START
    assert due_at("rate(5 minutes)") is None and due_at("cron(0 12 * * ? *)") is None
    with pytest.raises(ValueError):
        due_at("at(2030-13-01T00:00:00)")


def test_a_schedule_fires_when_due_once_and_is_deleted(
    local_aws: LocalAws, local: LocalScheduler, clock: Clock, target: Target
) -> None:
    event = {"detail-type": settings.EFFECT_DETAIL_TYPE, "detail": {"n": 1}}
    create(
        local_aws,
        "later",
        when=START + timedelta(seconds=2),
        target={"Arn": FUNCTION, "Input": json.dumps(event)},
        ActionAfterCompletion="DELETE",
    )
    assert local.poll() == [] and target.events == []

    clock.now = START + timedelta(seconds=2)
    (schedule,) = local.poll()
    assert schedule.name == "later" and local.poll() == []  # taken once
    fired(local, 1)
    assert target.events == [event]
    assert names(local_aws) == set()


def test_a_kept_schedule_fires_once_per_process_disabled_and_recurring_ones_never(
    local_aws: LocalAws, local: LocalScheduler, target: Target
) -> None:
    create(local_aws, "kept", when=START, target={"Arn": FUNCTION, "Input": "{}"})
    create(local_aws, "off", when=START, target={"Arn": FUNCTION, "Input": "{}"}, State="DISABLED")
    create(local_aws, "every", when="rate(1 minute)", target={"Arn": FUNCTION, "Input": "{}"})

    assert [s.name for s in local.poll()] == ["kept"]
    fired(local, 1)
    assert local.poll() == []
    assert target.events == [{}] and names(local_aws) == {"kept", "off", "every"}


def test_schedules_already_due_fire_as_soon_as_it_starts(
    local_aws: LocalAws, local: LocalScheduler, clock: Clock, target: Target
) -> None:
    create(local_aws, "overdue", when=START - timedelta(hours=3), target={"Arn": FUNCTION, "Input": '{"late": 1}'})
    local.start()
    eventually(lambda: target.events, "the overdue schedule")
    assert target.events == [{"late": 1}]


def test_a_failed_delivery_is_retried_with_backoff(local_aws: LocalAws, clock: Clock) -> None:
    flaky = Target(fail=2)
    local = scheduler_for(local_aws, clock, flaky)
    create(local_aws, "flaky", when=START, target={"Arn": FUNCTION, "Input": "[1]"}, ActionAfterCompletion="DELETE")
    local.poll()
    fired(local, 1)
    assert (flaky.calls, flaky.events, local.delivered) == (3, [[1]], 1)
    assert names(local_aws) == set()


def test_an_undeliverable_schedule_goes_to_its_dead_letter_queue_after_its_retries(
    local_aws: LocalAws, local: LocalScheduler
) -> None:
    sqs = local_aws.client("sqs")
    dlq = sqs.create_queue(QueueName="timer-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    unknown = FUNCTION.replace("dispatch-events", "nobody")
    create(
        local_aws,
        "lost",
        when=START,
        target={
            "Arn": unknown,
            "Input": '{"lost": true}',
            "RetryPolicy": {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 60},
            "DeadLetterConfig": {"Arn": dlq_arn},
        },
        ActionAfterCompletion="DELETE",
    )
    local.poll()
    fired(local, 1)
    assert local.failed == 1
    (message,) = sqs.receive_message(QueueUrl=dlq)["Messages"]
    assert json.loads(message["Body"]) == {"lost": True}
    assert names(local_aws) == set()


def test_an_sqs_target_gets_the_input_in_its_message_group(local_aws: LocalAws, local: LocalScheduler) -> None:
    sqs = local_aws.client("sqs")
    queue = sqs.create_queue(
        QueueName="timers.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    create(
        local_aws,
        "wake",
        when=START,
        target={"Arn": arn, "Input": '{"wake": "echo/t-1"}', "SqsParameters": {"MessageGroupId": "echo/t-1"}},
    )
    local.poll()
    fired(local, 1)
    (message,) = sqs.receive_message(QueueUrl=queue, AttributeNames=["MessageGroupId"])["Messages"]
    assert message["Body"] == '{"wake": "echo/t-1"}'
    assert message["Attributes"]["MessageGroupId"] == "echo/t-1"
