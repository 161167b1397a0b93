"""Least privilege: each role may touch only its own resources; ``*`` only where AWS
requires it (task-token calls; CloudWatch Logs delivery and X-Ray for Step Functions)."""

from __future__ import annotations

import json
from typing import Any

from agent_runtime import settings
from tests.infra.helpers import (
    Resources,
    as_list,
    function_named,
    of_type,
    one,
    role_of,
    statements_of_role,
)

TASK_TOKEN_ACTIONS = {
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
}
# Step Functions needs these on "*" to deliver its logs and traces (CDK adds them).
# What a role that reads and writes the table may do to its items.
TABLE_ITEM_ACTIONS = {
    "dynamodb:GetItem",
    "dynamodb:BatchGetItem",
    "dynamodb:Query",
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
}
LOG_DELIVERY_AND_XRAY = {
    "logs:CreateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:DescribeLogGroups",
    "logs:DescribeResourcePolicies",
    "logs:GetLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:UpdateLogDelivery",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
    "xray:PutTelemetryRecords",
    "xray:PutTraceSegments",
}


def _logical_ids_in(value: Any) -> set[str]:
    """Every logical id a policy resource refers to (Ref / Fn::GetAtt, inside joins too)."""
    found: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and not str(value["Ref"]).startswith("AWS::"):
            found.add(value["Ref"])
        elif "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        else:
            for inner in value.values():
                found |= _logical_ids_in(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _logical_ids_in(inner)
    return found


def _touched(resources: Resources, role: str) -> tuple[set[str], set[str]]:
    """(logical ids the role's statements allow, actions granted on ``*``). A Deny only
    narrows what is allowed (test_files_and_secrets checks each)."""
    ids: set[str] = set()
    star_actions: set[str] = set()
    for statement in statements_of_role(resources, role):
        if statement["Effect"] == "Deny":
            assert "*" not in as_list(statement["Resource"])
            continue
        assert statement["Effect"] == "Allow"
        for resource in as_list(statement["Resource"]):
            if resource == "*":
                star_actions |= set(as_list(statement["Action"]))
            else:
                ids |= _logical_ids_in(resource)
    return ids, star_actions


def _id(resources: Resources, kind: str, **where: Any) -> str:
    return one(resources, kind, **where)[0]


def test_no_star_action_and_star_resource_only_where_required(resources: Resources) -> None:
    for name, policy in of_type(resources, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = as_list(statement["Action"])
            assert "*" not in actions, name
            assert not any(action.endswith(":*") for action in actions), (name, actions)
            if "*" in as_list(statement["Resource"]):
                assert set(actions) <= TASK_TOKEN_ACTIONS | LOG_DELIVERY_AND_XRAY, (name, actions)
    # No managed policies anywhere (each role's permissions are in its own policy).
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        assert "ManagedPolicyArns" not in role["Properties"], name


def test_worker_touches_only_its_resources(resources: Resources) -> None:
    _, worker = function_named(resources, "functions.worker.handler")
    role = role_of(worker)
    ids, star_actions = _touched(resources, role)
    table = next(iter(of_type(resources, "AWS::DynamoDB::Table")))
    queue = _id(resources, "AWS::SQS::Queue", DeduplicationScope="messageGroup")
    bucket = next(
        name
        for name, body in of_type(resources, "AWS::S3::Bucket").items()
        if "LoggingConfiguration" in body["Properties"]
    )
    machine = next(iter(of_type(resources, "AWS::StepFunctions::StateMachine")))
    secret = next(iter(of_type(resources, "AWS::SecretsManager::Secret")))
    key = next(iter(of_type(resources, "AWS::KMS::Key")))
    websocket = _id(resources, "AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")
    log_group = worker["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    scheduler_role = _scheduler_role(resources)  # passed to Scheduler with its schedules
    assert ids == {table, queue, bucket, machine, secret, key, websocket, log_group, scheduler_role}
    # The only "*": answering task tokens (IAM has no resource for them).
    assert star_actions == TASK_TOKEN_ACTIONS


def _scheduler_role(resources: Resources) -> str:
    return next(
        name
        for name, body in of_type(resources, "AWS::IAM::Role").items()
        if "scheduler.amazonaws.com" in json.dumps(body["Properties"]["AssumeRolePolicyDocument"])
    )


SCHEDULING = ("worker", "http_api", "websocket", "dispatch_events")
SCHEDULE_ACTIONS = ["scheduler:CreateSchedule", "scheduler:DeleteSchedule", "scheduler:GetSchedule"]


def _dispatch_arn(resources: Resources) -> dict[str, Any]:
    """The dispatch function's ARN, built from its fixed name (no reference to it)."""
    _, dispatch = function_named(resources, "functions.dispatch_events.handler")
    name = dispatch["Properties"]["FunctionName"]
    return {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":lambda:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                f":function:{name}",
            ],
        ]
    }


def test_functions_that_run_or_admit_work_schedule_effects_in_the_group_only(resources: Resources) -> None:
    ((_, group),) = of_type(resources, "AWS::Scheduler::ScheduleGroup").items()
    group_name = group["Properties"]["Name"]
    scheduler_role = _scheduler_role(resources)
    for name in SCHEDULING:
        _, function = function_named(resources, f"functions.{name}.handler")
        statements = statements_of_role(resources, role_of(function))
        scheduling = [s for s in statements if any(a.startswith("scheduler:") for a in as_list(s["Action"]))]
        assert [sorted(as_list(s["Action"])) for s in scheduling] == [SCHEDULE_ACTIONS], name
        assert json.dumps(scheduling[0]["Resource"]).endswith(f':schedule/{group_name}/*"]]}}'), name
        passing = [s for s in statements if "iam:PassRole" in as_list(s["Action"])]
        assert passing == [
            {
                "Action": "iam:PassRole",
                "Condition": {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
                "Effect": "Allow",
                "Resource": {"Fn::GetAtt": [scheduler_role, "Arn"]},
            }
        ], name
        variables = function["Properties"]["Environment"]["Variables"]
        assert variables[settings.ENV_SCHEDULE_GROUP] == group_name, name
        assert variables[settings.ENV_SCHEDULER_ROLE_ARN] == {"Fn::GetAtt": [scheduler_role, "Arn"]}, name
        assert variables[settings.ENV_EFFECT_TARGET_ARN] == _dispatch_arn(resources), name


def test_no_other_function_may_call_scheduler_or_pass_a_role(resources: Resources) -> None:
    scheduling = {function_named(resources, f"functions.{name}.handler")[0] for name in SCHEDULING}
    for name, body in of_type(resources, "AWS::Lambda::Function").items():
        if name in scheduling:
            continue
        actions = {
            action
            for s in statements_of_role(resources, role_of(body))
            for action in as_list(s["Action"])
        }
        assert not {a for a in actions if a.startswith("scheduler:") or a == "iam:PassRole"}, name
        assert settings.ENV_SCHEDULER_ROLE_ARN not in body["Properties"]["Environment"]["Variables"], name


def test_worker_state_machine_calls(resources: Resources) -> None:
    _, worker = function_named(resources, "functions.worker.handler")
    machine = next(iter(of_type(resources, "AWS::StepFunctions::StateMachine")))
    statements = statements_of_role(resources, role_of(worker))
    on_machine = [s for s in statements if s["Resource"] == {"Ref": machine}]
    assert [as_list(s["Action"]) for s in on_machine] == [["states:StartExecution"]]


def test_only_the_worker_reads_the_model_secret(resources: Resources) -> None:
    secret = next(iter(of_type(resources, "AWS::SecretsManager::Secret")))
    readers = {
        name
        for name, body in of_type(resources, "AWS::IAM::Policy").items()
        for statement in body["Properties"]["PolicyDocument"]["Statement"]
        if {"Ref": secret} in as_list(statement["Resource"])
    }
    _, worker = function_named(resources, "functions.worker.handler")
    assert [
        body["Properties"]["Roles"]
        for name, body in of_type(resources, "AWS::IAM::Policy").items()
        if name in readers
    ] == [[{"Ref": role_of(worker)}]]


def _scoped(resources: Resources, function: dict[str, Any]) -> set[tuple[tuple[str, ...], str]]:
    """A function's statements other than writing its own logs, as (actions, resource)."""
    log_group = function["Properties"]["LoggingConfig"]["LogGroup"]["Ref"]
    return {
        (tuple(sorted(as_list(s["Action"]))), json.dumps(s["Resource"]))
        for s in statements_of_role(resources, role_of(function))
        if s["Resource"] != {"Fn::GetAtt": [log_group, "Arn"]}
    }


def test_sweeper_queries_the_pending_index_and_sends_wakeups_only(resources: Resources) -> None:
    _, sweeper = function_named(resources, "functions.sweeper.handler")
    table = next(iter(of_type(resources, "AWS::DynamoDB::Table")))
    queue = _id(resources, "AWS::SQS::Queue", DeduplicationScope="messageGroup")
    index = {"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, f"/index/{settings.PENDING_INDEX}"]]}
    assert _scoped(resources, sweeper) == {
        (("dynamodb:Query",), json.dumps(index)),
        (("sqs:SendMessage",), json.dumps({"Fn::GetAtt": [queue, "Arn"]})),
    }


def test_only_the_http_function_queries_the_instances_index(resources: Resources) -> None:
    table = next(iter(of_type(resources, "AWS::DynamoDB::Table")))
    index = json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [table, "Arn"]}, f"/index/{settings.INSTANCES_INDEX}"]]})
    for name in ("http_api", "worker", "sweeper", "dispatch_events"):
        _, function = function_named(resources, f"functions.{name}.handler")
        granted = {resource for _, resource in _scoped(resources, function)}
        assert (index in granted) is (name == "http_api"), name
    _, http = function_named(resources, "functions.http_api.handler")
    assert settings.ENV_WEBSOCKET_URL in http["Properties"]["Environment"]["Variables"]


def test_dispatch_events_admits_sends_wakeups_and_schedules_only(resources: Resources) -> None:
    _, dispatch = function_named(resources, "functions.dispatch_events.handler")
    table = next(iter(of_type(resources, "AWS::DynamoDB::Table")))
    queue = _id(resources, "AWS::SQS::Queue", DeduplicationScope="messageGroup")
    failures = _id(resources, "AWS::SQS::Queue", MessageRetentionPeriod=14 * 24 * 3600, FifoQueue=None)
    scoped = _scoped(resources, dispatch)
    on = {resource: actions for actions, resource in scoped}
    # Admission: the table's items (never its indexes, never a scan) and one wake-up.
    assert set(on[json.dumps({"Fn::GetAtt": [table, "Arn"]})]) == TABLE_ITEM_ACTIONS
    assert on[json.dumps({"Fn::GetAtt": [queue, "Arn"]})] == ("sqs:SendMessage",)
    # Input over the spill size goes to the bucket; an event that keeps failing goes to
    # the rule's failure queue (Lambda's on-failure destination sends as the function).
    assert "sqs:SendMessage" in on[json.dumps({"Fn::GetAtt": [failures, "Arn"]})]
    others = set(on) - {json.dumps({"Fn::GetAtt": [name, "Arn"]}) for name in (table, queue, failures)}
    assert all(
        # Files, WebSocket posts, and the effects' schedules (checked above).
        action.startswith(("s3:", "scheduler:")) or action in ("execute-api:ManageConnections", "iam:PassRole")
        for resource in others
        for action in on[resource]
    )


def test_only_the_functions_that_store_events_post_to_websocket_connections(resources: Resources) -> None:
    posting = {
        role["Ref"]
        for body in of_type(resources, "AWS::IAM::Policy").values()
        for statement in body["Properties"]["PolicyDocument"]["Statement"]
        if "execute-api:ManageConnections" in as_list(statement["Action"])
        for role in body["Properties"]["Roles"]
    }
    expected = {
        role_of(function_named(resources, f"functions.{name}.handler")[1])
        for name in ("websocket", "worker", "http_api", "dispatch_events")
    }
    assert posting == expected
    for name in ("websocket", "worker", "http_api", "dispatch_events"):
        _, function = function_named(resources, f"functions.{name}.handler")
        assert settings.ENV_WEBSOCKET_ENDPOINT in function["Properties"]["Environment"]["Variables"]


def test_no_role_scans_the_table_or_reads_every_index(resources: Resources) -> None:
    for name, policy in of_type(resources, "AWS::IAM::Policy").items():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            assert "dynamodb:Scan" not in as_list(statement["Action"]), name
            assert "/index/*" not in json.dumps(statement["Resource"]), name


def test_state_machine_role_sends_to_the_queue_and_puts_into_the_table_only(
    resources: Resources,
) -> None:
    _, machine = one(resources, "AWS::StepFunctions::StateMachine")
    role = machine["Properties"]["RoleArn"]["Fn::GetAtt"][0]
    table = next(iter(of_type(resources, "AWS::DynamoDB::Table")))
    queue = _id(resources, "AWS::SQS::Queue", DeduplicationScope="messageGroup")
    scoped = {
        (tuple(as_list(s["Action"])), json.dumps(s["Resource"]))
        for s in statements_of_role(resources, role)
        if s["Resource"] != "*"
    }
    assert scoped == {
        (("sqs:SendMessage",), json.dumps({"Fn::GetAtt": [queue, "Arn"]})),
        (("dynamodb:PutItem",), json.dumps({"Fn::GetAtt": [table, "Arn"]})),
    }
    _, star_actions = _touched(resources, role)
    assert star_actions == LOG_DELIVERY_AND_XRAY


def test_scheduler_role_may_only_invoke_the_dispatch_function(resources: Resources) -> None:
    role = _scheduler_role(resources)
    assert statements_of_role(resources, role) == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": _dispatch_arn(resources)}
    ]
