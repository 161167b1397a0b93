"""The blocking-child state machine, executed by moto's Step Functions interpreter.

Each test runs the exact definition `blocking_child_definition` returns against a
table and FIFO queue made by `provision` (the local stack's resources), plays the
child's worker (receive the wake-up, answer through the task token) and checks
what the parent's worker will see: the outcome item and its wake-up.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from agent_runtime import settings
from agent_runtime.adapters.aws.provision import Resources, provision
from agent_runtime.blocking import blocking_child_definition, child_result_key

REGION = "us-east-1"
ROLE_ARN = "arn:aws:iam::123456789012:role/blocking-child"

PARENT = {
    "instance": "support-assistant/t-1",
    "submission_id": "sub-parent-1",
    "call_id": "call_000001",
}
CHILD = {"instance": "policy-researcher/t-1~call_000001", "submission_id": "sub-child-1"}


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Clients and the local stack's resources, in moto with Step Functions executing."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("dynamodb", "sqs", "s3", "stepfunctions")
        }
        clients["resources"] = provision(
            dynamodb=clients["dynamodb"], sqs=clients["sqs"], s3=clients["s3"]
        )
        yield clients


def _start(
    machine: dict[str, Any], *, heartbeat_seconds: int = 300, timeout_seconds: int = 3600
) -> str:
    resources: Resources = machine["resources"]
    definition = blocking_child_definition(
        table=resources.table,
        queue_url=resources.queue_url,
        heartbeat_seconds=heartbeat_seconds,
        timeout_seconds=timeout_seconds,
    )
    sfn = machine["stepfunctions"]
    machine_arn = sfn.create_state_machine(
        name=f"blocking-child-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn=ROLE_ARN,
    )["stateMachineArn"]
    # Named like the runtime names them: one execution per call id.
    return str(
        sfn.start_execution(
            stateMachineArn=machine_arn,
            name=PARENT["call_id"],
            input=json.dumps({"parent": PARENT, "child": CHILD}),
        )["executionArn"]
    )


def _receive_one(machine: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    sqs, queue_url = machine["sqs"], machine["resources"].queue_url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        messages = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, AttributeNames=["All"]
        ).get("Messages", [])
        if messages:
            assert len(messages) == 1, messages
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=messages[0]["ReceiptHandle"])
            return dict(messages[0])
        time.sleep(0.05)
    raise AssertionError("no message arrived on the queue")


def _wait_done(
    machine: dict[str, Any], execution_arn: str, timeout: float = 60.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        execution = machine["stepfunctions"].describe_execution(executionArn=execution_arn)
        if execution["status"] != "RUNNING":
            return dict(execution)
        time.sleep(0.05)
    raise AssertionError("execution still running")


def _child_wake(machine: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    message = _receive_one(machine)
    body = json.loads(message["Body"])
    assert message["Attributes"]["MessageGroupId"] == CHILD["instance"]
    dedupe = message["Attributes"]["MessageDeduplicationId"]
    assert dedupe.startswith("child-") and len(dedupe) <= 128
    assert {k: v for k, v in body.items() if k != "task_token"} == {
        "v": 1,
        "instance": CHILD["instance"],
        "reason": "child",
        "submission_id": CHILD["submission_id"],
    }
    assert body["task_token"]
    return str(body["task_token"]), body


def _assert_parent_woken(machine: dict[str, Any]) -> None:
    message = _receive_one(machine)
    assert json.loads(message["Body"]) == {
        "v": 1,
        "instance": PARENT["instance"],
        "reason": "child_done",
    }
    assert message["Attributes"]["MessageGroupId"] == PARENT["instance"]
    assert message["Attributes"]["MessageDeduplicationId"].startswith("child-done-")


def _outcome_item(machine: dict[str, Any]) -> dict[str, Any]:
    key = child_result_key(PARENT["instance"], PARENT["submission_id"], PARENT["call_id"])
    item = machine["dynamodb"].get_item(
        TableName=machine["resources"].table,
        Key={name: {"S": value} for name, value in key.items()},
        ConsistentRead=True,
    )["Item"]
    assert item[settings.TABLE_PARTITION_KEY]["S"] == "I#support-assistant/t-1"
    assert item[settings.TABLE_SORT_KEY]["S"] == "CHILD#sub-parent-1#call_000001"
    assert item["v"] == {"N": "1"}
    assert item["child"] == {"S": CHILD["instance"]}
    assert item["child_submission_id"] == {"S": CHILD["submission_id"]}
    assert item["settled_at"]["S"]
    return dict(item)


def test_success_records_result_and_wakes_parent(machine: dict[str, Any]) -> None:
    execution = _start(machine)
    token, _ = _child_wake(machine)
    result = {"text": "Section 4.2 says: refunds within 30 days.", "usage": {"requests": 2}}
    machine["stepfunctions"].send_task_success(taskToken=token, output=json.dumps(result))

    assert _wait_done(machine, execution)["status"] == "SUCCEEDED"
    item = _outcome_item(machine)
    assert item["status"] == {"S": "ok"}
    assert json.loads(item["result"]["S"]) == result
    assert "error" not in item
    _assert_parent_woken(machine)


def test_child_failure_records_error_and_wakes_parent(machine: dict[str, Any]) -> None:
    execution = _start(machine)
    token, _ = _child_wake(machine)
    machine["stepfunctions"].send_task_failure(
        taskToken=token, error="ChildFailed", cause="max_turns reached after 8 turns"
    )

    assert _wait_done(machine, execution)["status"] == "SUCCEEDED"
    item = _outcome_item(machine)
    assert item["status"] == {"S": "error"}
    assert item["error"] == {"S": "ChildFailed"}
    # moto's SendTaskFailure drops the cause (AWS keeps it); either way it is a string.
    assert item["cause"]["S"] in {"max_turns reached after 8 turns", ""}
    assert "result" not in item
    _assert_parent_woken(machine)


def test_failure_without_cause_still_records(machine: dict[str, Any]) -> None:
    execution = _start(machine)
    token, _ = _child_wake(machine)
    machine["stepfunctions"].send_task_failure(taskToken=token, error="ChildAborted")

    assert _wait_done(machine, execution)["status"] == "SUCCEEDED"
    item = _outcome_item(machine)
    assert item["status"] == {"S": "error"}
    assert item["error"] == {"S": "ChildAborted"}
    assert item["cause"] == {"S": ""}
    _assert_parent_woken(machine)


def test_missed_heartbeat_records_timeout_and_wakes_parent(machine: dict[str, Any]) -> None:
    execution = _start(machine, heartbeat_seconds=1, timeout_seconds=60)
    _child_wake(machine)  # the child's worker never answers nor heartbeats

    assert _wait_done(machine, execution)["status"] == "SUCCEEDED"
    item = _outcome_item(machine)
    assert item["status"] == {"S": "error"}
    # moto says States.Timeout, AWS says States.HeartbeatTimeout.
    assert item["error"]["S"] in {"States.Timeout", "States.HeartbeatTimeout"}
    _assert_parent_woken(machine)


def test_first_outcome_wins(machine: dict[str, Any]) -> None:
    key = child_result_key(PARENT["instance"], PARENT["submission_id"], PARENT["call_id"])
    earlier = {name: {"S": value} for name, value in key.items()} | {"status": {"S": "ok"}}
    machine["dynamodb"].put_item(TableName=machine["resources"].table, Item=earlier)

    execution = _start(machine)
    token, _ = _child_wake(machine)
    machine["stepfunctions"].send_task_failure(taskToken=token, error="Late", cause="too late")

    assert _wait_done(machine, execution)["status"] == "SUCCEEDED"
    item = machine["dynamodb"].get_item(
        TableName=machine["resources"].table,
        Key={name: {"S": value} for name, value in key.items()},
    )["Item"]
    assert item == earlier
    _assert_parent_woken(machine)


def test_definition_rejects_heartbeat_not_below_timeout() -> None:
    with pytest.raises(ValueError):
        blocking_child_definition(
            table="t", queue_url="q", heartbeat_seconds=60, timeout_seconds=60
        )
