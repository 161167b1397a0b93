"""The Step Functions state machine that drives one blocking child (DESIGN section 5).

A parent whose tool call starts a blocking child marks its submission ``waiting``
on the call id, starts one execution of this state machine (execution name = the
call id, so a second start is refused instead of running the child twice) and
returns. The execution then:

1. ``WakeChild``: sends the child's wake-up to the FIFO queue and waits for the
   callback (``sqs:sendMessage.waitForTaskToken``). The body carries the task
   token; the worker that settles the child submission calls ``SendTaskSuccess``
   (output = the child's result as JSON) or ``SendTaskFailure``, and
   ``SendTaskHeartbeat`` at least every ``heartbeat_seconds`` while it runs.
2. ``RecordResult`` / ``RecordFailure``: writes the outcome as the parent's tool
   result, one item at `child_result_key` (first write wins: a condition keeps an
   outcome from ever being overwritten).
3. ``WakeParent``: sends the parent's wake-up (``reason = "child_done"``); the
   parent's worker reads the item and resumes the waiting submission.

Execution input::

    {"parent": {"instance": "agent/id", "submission_id": "...", "call_id": "..."},
     "child":  {"instance": "agent/id", "submission_id": "..."}}

Result item (attributes beyond the key)::

    v=1, status="ok" | "error", child, child_submission_id, settled_at,
    result (the child's output as a JSON string)  or  error, cause

The definition is plain JSONPath Amazon States Language (no JSONata): the CDK stack
deploys exactly this output and the local stack executes it in moto.
"""

from __future__ import annotations

from typing import Any

from agent_runtime import settings

# Wake-up reasons this state machine puts in message bodies (schema version 1).
WAKE_MESSAGE_VERSION = 1
REASON_CHILD = "child"
REASON_CHILD_DONE = "child_done"

CHILD_STATUS_OK = "ok"
CHILD_STATUS_ERROR = "error"
CHILD_RESULT_VERSION = 1

# States.Hash keeps every deduplication id within SQS's 128 characters whatever
# the length of the ids it is derived from.
_HASH = "'SHA-256'"

# Errors a Record state must not retry: the outcome is already there.
_CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"


def child_result_key(
    parent_instance: str, parent_submission_id: str, call_id: str
) -> dict[str, str]:
    """The table key (``pk``, ``sk``) of the item holding one blocking child's outcome."""
    return {
        settings.TABLE_PARTITION_KEY: f"I#{parent_instance}",
        settings.TABLE_SORT_KEY: f"CHILD#{parent_submission_id}#{call_id}",
    }


def _default_string(name: str, path: str, default: str, then: str) -> dict[str, Any]:
    """A Choice (``name``) going to `then` when `path` holds a string, else through a Pass
    that sets it to `default`. Rules run in order, so the type test never sees a missing path."""
    fill = f"{name}Default"
    return {
        name: {
            "Type": "Choice",
            "Choices": [
                {"Not": {"Variable": path, "IsPresent": True}, "Next": fill},
                {"Variable": path, "IsString": True, "Next": then},
            ],
            "Default": fill,
        },
        fill: {"Type": "Pass", "Result": default, "ResultPath": path, "Next": then},
    }


def blocking_child_definition(
    *,
    table: str,
    queue_url: str,
    heartbeat_seconds: int = 300,
    timeout_seconds: int = 3600,
) -> dict[str, Any]:
    """Amazon States Language for one blocking child; see the module docstring.

    `table` and `queue_url` may be CDK tokens: they are only ever placed as whole
    string values, so the serialized definition resolves cleanly.
    """
    if not 0 < heartbeat_seconds < timeout_seconds:
        raise ValueError("need 0 < heartbeat_seconds < timeout_seconds")

    pk, sk = settings.TABLE_PARTITION_KEY, settings.TABLE_SORT_KEY
    key = {
        pk: {"S.$": "States.Format('I#{}', $.parent.instance)"},
        sk: {"S.$": "States.Format('CHILD#{}#{}', $.parent.submission_id, $.parent.call_id)"},
    }
    common = {
        "v": {"N": str(CHILD_RESULT_VERSION)},
        "child": {"S.$": "$.child.instance"},
        "child_submission_id": {"S.$": "$.child.submission_id"},
        "settled_at": {"S.$": "$$.State.EnteredTime"},
    }

    def record(status: str, outcome: dict[str, Any]) -> dict[str, Any]:
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:putItem",
            "Parameters": {
                "TableName": table,
                "Item": {**key, "status": {"S": status}, **common, **outcome},
                # First write wins: a retried or redriven execution never replaces
                # an outcome the parent may already have read.
                "ConditionExpression": "attribute_not_exists(#pk)",
                "ExpressionAttributeNames": {"#pk": pk},
            },
            "ResultPath": None,
            "Retry": [
                {"ErrorEquals": [_CONDITION_FAILED], "MaxAttempts": 0},
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": 1,
                    "MaxAttempts": 5,
                    "BackoffRate": 2.0,
                },
            ],
            "Catch": [
                {"ErrorEquals": [_CONDITION_FAILED], "ResultPath": None, "Next": "WakeParent"}
            ],
            "Next": "WakeParent",
        }

    return {
        "Comment": "agent-runtime: run one blocking child and report its outcome to the parent",
        "StartAt": "WakeChild",
        "States": {
            "WakeChild": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageGroupId.$": "$.child.instance",
                    "MessageDeduplicationId.$": (
                        f"States.Format('child-{{}}', States.Hash($.child.submission_id, {_HASH}))"
                    ),
                    "MessageBody": {
                        "v": WAKE_MESSAGE_VERSION,
                        "instance.$": "$.child.instance",
                        "reason": REASON_CHILD,
                        "submission_id.$": "$.child.submission_id",
                        "task_token.$": "$$.Task.Token",
                    },
                },
                "HeartbeatSeconds": heartbeat_seconds,
                "TimeoutSeconds": timeout_seconds,
                "ResultPath": "$.result",
                # Child failures, heartbeat and overall timeouts (moto reports a missed
                # heartbeat as States.Timeout, AWS as States.HeartbeatTimeout) all
                # become the parent's tool error.
                "Catch": [
                    {"ErrorEquals": ["States.ALL"], "ResultPath": "$.failure", "Next": "CheckError"}
                ],
                "Next": "RecordResult",
            },
            "RecordResult": record(
                CHILD_STATUS_OK, {"result": {"S.$": "States.JsonToString($.result)"}}
            ),
            # SendTaskFailure may omit the error or the cause (moto always drops the
            # cause); the item always has both as strings.
            **_default_string("CheckError", "$.failure.Error", "States.TaskFailed", "CheckCause"),
            **_default_string("CheckCause", "$.failure.Cause", "", "RecordFailure"),
            "RecordFailure": record(
                CHILD_STATUS_ERROR,
                {"error": {"S.$": "$.failure.Error"}, "cause": {"S.$": "$.failure.Cause"}},
            ),
            "WakeParent": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage",
                "Parameters": {
                    "QueueUrl": queue_url,
                    "MessageGroupId.$": "$.parent.instance",
                    # Call ids need not be unique across submissions (test models count
                    # from 1 in every process), so the submission id is part of the hash.
                    "MessageDeduplicationId.$": (
                        "States.Format('child-done-{}', States.Hash("
                        "States.Format('{}#{}', $.parent.submission_id, $.parent.call_id), "
                        f"{_HASH}))"
                    ),
                    "MessageBody": {
                        "v": WAKE_MESSAGE_VERSION,
                        "instance.$": "$.parent.instance",
                        "reason": REASON_CHILD_DONE,
                    },
                },
                "ResultPath": None,
                "Retry": [
                    {
                        "ErrorEquals": ["States.ALL"],
                        "IntervalSeconds": 1,
                        "MaxAttempts": 5,
                        "BackoffRate": 2.0,
                    }
                ],
                "End": True,
            },
        },
    }
