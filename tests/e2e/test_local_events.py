"""EventBridge and Scheduler on the local stack, reached as a user reaches them: boto3 on the
local AWS endpoint. A dispatch event put on the bus, and a one-time schedule whose input is a
dispatch event, both become a submission that the worker settles."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import httpx

from agent_runtime import settings
from agent_runtime.dev import LocalStack

DEADLINE = 30.0


def aws_client(stack: LocalStack, service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=stack.aws.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def echoed(http: httpx.Client, instance: str, *, timeout: float = DEADLINE) -> str:
    """The echo agent's answer in the instance's default session, once there is one."""
    deadline = time.monotonic() + timeout
    while True:
        response = http.get(f"/agents/echo/{instance}/sessions/default/messages")
        if response.status_code == 200:
            for message in response.json()["messages"]:
                text = json.dumps(message)
                if message.get("role") == "assistant" and "echo: " in text:
                    return text
        assert time.monotonic() < deadline, f"no answer for {instance} after {timeout:g} s"
        time.sleep(0.05)


def test_every_function_is_told_the_bus_the_schedule_group_and_the_effect_target(stack: LocalStack) -> None:
    assert stack.dispatcher is not None
    assert os.environ[settings.ENV_EVENT_BUS] == settings.LOCAL_EVENT_BUS
    assert os.environ[settings.ENV_SCHEDULE_GROUP] == settings.LOCAL_SCHEDULE_GROUP
    assert os.environ[settings.ENV_EFFECT_TARGET_ARN] == stack.dispatcher.arn
    assert os.environ[settings.ENV_SCHEDULER_ROLE_ARN].startswith("arn:aws:iam::")


def test_a_dispatch_event_put_on_the_bus_is_admitted_and_settles(
    stack: LocalStack, client: httpx.Client, instance: str
) -> None:
    assert stack.dispatcher is not None
    invoked = stack.dispatcher.invoked
    events = aws_client(stack, "events")
    detail = {"agent": "echo", "id": instance, "input": "from the bus"}
    other = {"agent": "echo", "id": instance, "input": "not a dispatch"}
    answer = events.put_events(
        Entries=[
            {
                "EventBusName": settings.LOCAL_EVENT_BUS,
                "Source": "shop.orders",
                "DetailType": settings.DISPATCH_DETAIL_TYPE,
                "Detail": json.dumps(detail),
            },
            {
                "EventBusName": settings.LOCAL_EVENT_BUS,
                "Source": "shop.orders",
                "DetailType": "something.else",
                "Detail": json.dumps(other),
            },
        ]
    )
    assert answer["FailedEntryCount"] == 0
    assert "from the bus" in echoed(client, instance)
    # Both events were routed when put_events answered: once the dispatch function's queue is
    # empty, it has seen every event the rule matched, and the rule's pattern left one out.
    sqs, queue = stack.aws.client("sqs"), stack.aws.events.dispatch_queue_url  # type: ignore[union-attr]
    counts = ("ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible")
    deadline = time.monotonic() + DEADLINE
    while any(int(n) for n in sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=counts)["Attributes"].values()):
        assert time.monotonic() < deadline, "the dispatch queue never emptied"
        time.sleep(0.05)
    assert stack.dispatcher.invoked == invoked + 1


def test_a_one_time_schedule_fires_a_dispatch_event_on_time_and_is_deleted(
    stack: LocalStack, client: httpx.Client, instance: str
) -> None:
    scheduler = aws_client(stack, "scheduler")
    fires_at = (datetime.now(UTC) + timedelta(seconds=1)).replace(microsecond=0) + timedelta(seconds=1)
    event = {
        "version": "0",
        "id": f"timer-{instance}",
        "detail-type": settings.DISPATCH_DETAIL_TYPE,
        "source": "agent-runtime.tests",
        "account": "123456789012",
        "time": fires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": "us-east-1",
        "resources": [],
        "detail": {"agent": "echo", "id": instance, "input": "on time"},
    }
    scheduler.create_schedule(
        Name=f"timer-{instance}"[:64],
        GroupName=os.environ[settings.ENV_SCHEDULE_GROUP],
        ScheduleExpression=f"at({fires_at.strftime('%Y-%m-%dT%H:%M:%S')})",
        ScheduleExpressionTimezone="UTC",
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion="DELETE",
        Target={
            "Arn": os.environ[settings.ENV_EFFECT_TARGET_ARN],
            "RoleArn": os.environ[settings.ENV_SCHEDULER_ROLE_ARN],
            "Input": json.dumps(event),
        },
    )
    assert "on time" in echoed(client, instance)
    assert datetime.now(UTC) >= fires_at  # not before its time
    group = os.environ[settings.ENV_SCHEDULE_GROUP]
    deadline = time.monotonic() + DEADLINE
    while scheduler.list_schedules(GroupName=group)["Schedules"]:
        assert time.monotonic() < deadline, "the schedule was not deleted after it fired"
        time.sleep(0.05)
