"""The synthesized template has every resource with the properties the runtime relies on."""

from __future__ import annotations

import json
from typing import Any

from aws_cdk.assertions import Match, Template

from agent_runtime import settings
from agent_runtime.adapters.aws.provision import INSTANCES_INDEX, PENDING_INDEX
from agent_runtime.blocking import blocking_child_definition
from infra.constructs.api import HTTP_ROUTES
from infra.stack import HANDLERS, WEBSOCKET_HANDLER
from tests.infra.helpers import Resources, function_named, of_type, one, resolve_join

HANDLER_PATHS = [spec.handler for spec in (*HANDLERS, WEBSOCKET_HANDLER)]


def _queue(resources: Resources) -> tuple[str, dict[str, Any]]:
    return one(resources, "AWS::SQS::Queue", DeduplicationScope="messageGroup")


def _table(resources: Resources) -> str:
    return next(iter(of_type(resources, "AWS::DynamoDB::Table")))


# --- storage ---------------------------------------------------------------------------


def test_table_keys_ttl_pitr_and_the_indexes(cdk_template: Template, resources: Resources) -> None:
    cdk_template.resource_count_is("AWS::DynamoDB::Table", 1)
    cdk_template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "BillingMode": "PAY_PER_REQUEST",
            "KeySchema": [
                {"AttributeName": settings.TABLE_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": settings.TABLE_SORT_KEY, "KeyType": "RANGE"},
            ],
            "AttributeDefinitions": Match.array_equals(
                [
                    {"AttributeName": settings.TABLE_PARTITION_KEY, "AttributeType": "S"},
                    {"AttributeName": settings.TABLE_SORT_KEY, "AttributeType": "S"},
                    {"AttributeName": settings.PENDING_SHARD_ATTRIBUTE, "AttributeType": "N"},
                    {"AttributeName": settings.PENDING_SINCE_ATTRIBUTE, "AttributeType": "N"},
                    {"AttributeName": settings.INSTANCES_AGENT_ATTRIBUTE, "AttributeType": "S"},
                    {"AttributeName": settings.INSTANCES_ACTIVE_ATTRIBUTE, "AttributeType": "N"},
                ]
            ),
            "TimeToLiveSpecification": {
                "AttributeName": settings.TABLE_TTL_ATTRIBUTE,
                "Enabled": True,
            },
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            # The sweeper's and the listings' sparse indexes: as `provision` creates them locally.
            "GlobalSecondaryIndexes": [
                {"IndexName": index["IndexName"], "KeySchema": index["KeySchema"], "Projection": index["Projection"]}
                for index in (PENDING_INDEX, INSTANCES_INDEX)
            ],
            "LocalSecondaryIndexes": Match.absent(),
        },
    )
    # Stage dev: deletable (prod is checked in test_config).
    body = resources[_table(resources)]
    assert body["DeletionPolicy"] == "Delete"
    assert body["Properties"]["DeletionProtectionEnabled"] is False


def test_fifo_queue_dedupe_redrive_visibility_and_encryption(
    cdk_template: Template, resources: Resources
) -> None:
    dlq_name, dlq = one(resources, "AWS::SQS::Queue", FifoQueue=True, RedrivePolicy=None)
    queue_name, queue = _queue(resources)
    assert queue["Properties"] == {
        **queue["Properties"],
        "FifoQueue": True,
        "ContentBasedDeduplication": False,
        "DeduplicationScope": "messageGroup",
        "FifoThroughputLimit": "perMessageGroupId",
        "VisibilityTimeout": settings.QUEUE_VISIBILITY_SECONDS,
        "SqsManagedSseEnabled": True,
        "RedrivePolicy": {
            "deadLetterTargetArn": {"Fn::GetAtt": [dlq_name, "Arn"]},
            "maxReceiveCount": settings.DLQ_MAX_RECEIVE_COUNT,
        },
    }
    assert settings.QUEUE_VISIBILITY_SECONDS == 6 * settings.WORKER_TIMEOUT_SECONDS
    assert dlq["Properties"]["FifoQueue"] is True
    assert dlq["Properties"]["SqsManagedSseEnabled"] is True
    # TLS only, on both queues.
    for name in (queue_name, dlq_name):
        cdk_template.has_resource_properties(
            "AWS::SQS::QueuePolicy",
            {
                "Queues": [{"Ref": name}],
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [
                            Match.object_like(
                                {
                                    "Effect": "Deny",
                                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                                }
                            )
                        ]
                    )
                },
            },
        )


def test_bucket_private_encrypted_logged_with_tmp_expiry(
    cdk_template: Template, resources: Resources
) -> None:
    logs_name = next(
        name
        for name, body in of_type(resources, "AWS::S3::Bucket").items()
        if "LoggingConfiguration" not in body["Properties"]
    )
    cdk_template.resource_count_is("AWS::S3::Bucket", 2)
    cdk_template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [
                    {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                ]
            },
            "LoggingConfiguration": {"DestinationBucketName": {"Ref": logs_name}},
            "LifecycleConfiguration": {
                "Rules": Match.array_with(
                    [Match.object_like({"Prefix": "tmp/", "ExpirationInDays": 1})]
                )
            },
            # No CORS unless origins are configured (see test_config for the other case).
            "CorsConfiguration": Match.absent(),
            "VersioningConfiguration": Match.absent(),
        },
    )
    # Both buckets refuse plain HTTP.
    policies = of_type(resources, "AWS::S3::BucketPolicy")
    assert len(policies) == 2
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny"
            and s.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
            for s in statements
        )


# --- functions -------------------------------------------------------------------------


def test_one_function_per_handler_python313_arm64(resources: Resources) -> None:
    functions = of_type(resources, "AWS::Lambda::Function")
    assert sorted(body["Properties"]["Handler"] for body in functions.values()) == sorted(
        HANDLER_PATHS
    )
    for body in functions.values():
        props = body["Properties"]
        assert props["Runtime"] == "python3.13"
        assert props["Architectures"] == ["arm64"]
        assert "LogGroup" in props["LoggingConfig"]
    # One role each, never shared.
    roles = [json.dumps(body["Properties"]["Role"]) for body in functions.values()]
    assert len(set(roles)) == len(roles)


def test_function_environment(resources: Resources) -> None:
    table, (queue, _) = _table(resources), _queue(resources)
    secret = next(iter(of_type(resources, "AWS::SecretsManager::Secret")))
    for handler in HANDLER_PATHS:
        _, function = function_named(resources, handler)
        env = function["Properties"]["Environment"]["Variables"]
        assert env["POWERTOOLS_SERVICE_NAME"] == "agent-runtime"
        assert env["POWERTOOLS_LOG_LEVEL"] == "INFO"
        assert env["POWERTOOLS_METRICS_NAMESPACE"] == "AgentRuntime/dev"
        assert env[settings.ENV_TABLE] == {"Ref": table}
        assert env[settings.ENV_QUEUE_URL] == {"Ref": queue}
        assert settings.ENV_BUCKET in env
        assert settings.ENV_STATE_MACHINE_ARN in env
        assert settings.ENV_EVENT_BUS in env
        # The key itself is never in the environment; only the worker learns where it is.
        if handler == "functions.worker.handler":
            assert env[settings.ENV_MODEL_SECRET_ARN] == {"Ref": secret}
        else:
            assert settings.ENV_MODEL_SECRET_ARN not in env
        assert not any("api_key" in name.lower() for name in env)


def test_worker_timeout_and_fifo_event_source(cdk_template: Template, resources: Resources) -> None:
    worker_name, worker = function_named(resources, "functions.worker.handler")
    queue, _ = _queue(resources)
    assert worker["Properties"]["Timeout"] == settings.WORKER_TIMEOUT_SECONDS
    cdk_template.has_resource_properties(
        "AWS::Lambda::EventSourceMapping",
        {
            "FunctionName": {"Ref": worker_name},
            "EventSourceArn": {"Fn::GetAtt": [queue, "Arn"]},
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            # At most this many workers at once: parallel model calls are bounded.
            "ScalingConfig": {"MaximumConcurrency": 50},
        },
    )
    cdk_template.resource_count_is("AWS::Lambda::EventSourceMapping", 1)


def test_both_api_stages_are_throttled(cdk_template: Template) -> None:
    cdk_template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {"StageName": "$default", "DefaultRouteSettings": {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}},
    )
    cdk_template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {"StageName": "live", "DefaultRouteSettings": {"ThrottlingRateLimit": 100, "ThrottlingBurstLimit": 200}},
    )


def test_log_groups_have_retention(resources: Resources) -> None:
    groups = of_type(resources, "AWS::Logs::LogGroup")
    # Five functions, the state machine, two API stages.
    assert len(groups) == 8
    assert {body["Properties"]["RetentionInDays"] for body in groups.values()} == {30}


# --- APIs ------------------------------------------------------------------------------


def test_http_routes_to_the_http_function(cdk_template: Template, resources: Resources) -> None:
    routes = of_type(resources, "AWS::ApiGatewayV2::Route")
    http_api = one(resources, "AWS::ApiGatewayV2::Api", ProtocolType="HTTP")[0]
    http_routes = {
        body["Properties"]["RouteKey"]: body["Properties"]
        for body in routes.values()
        if body["Properties"]["ApiId"] == {"Ref": http_api}
    }
    assert set(http_routes) == {f"{method.value} {path}" for method, path in HTTP_ROUTES}
    assert set(http_routes) >= {
        "POST /agents/{name}/{id}",
        "GET /agents/{name}/{id}/submissions/{submission_id}",
        "POST /agents/{name}/{id}/dispatch",
        "GET /agents/{name}/{id}/sessions/{session}/messages",
        "GET /agents/{name}/{id}/events",
        "POST /agents/{name}/{id}/abort",
        "GET /openapi.json",
        "GET /health",
    }
    targets = {json.dumps(route["Target"]) for route in http_routes.values()}
    assert len(targets) == 1  # one integration
    integration = next(
        body["Properties"]
        for body in of_type(resources, "AWS::ApiGatewayV2::Integration").values()
        if body["Properties"]["ApiId"] == {"Ref": http_api}
    )
    http_function, _ = function_named(resources, "functions.http_api.handler")
    assert integration["IntegrationUri"] == {"Fn::GetAtt": [http_function, "Arn"]}
    cdk_template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "ApiId": {"Ref": http_api},
            "StageName": "$default",
            "AutoDeploy": True,
            "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        },
    )


def test_websocket_routes_and_live_stage(cdk_template: Template, resources: Resources) -> None:
    ws_api = one(resources, "AWS::ApiGatewayV2::Api", ProtocolType="WEBSOCKET")[0]
    keys = {
        body["Properties"]["RouteKey"]
        for body in of_type(resources, "AWS::ApiGatewayV2::Route").values()
        if body["Properties"]["ApiId"] == {"Ref": ws_api}
    }
    assert keys == {"$connect", "$disconnect", "$default"}
    cdk_template.has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "ApiId": {"Ref": ws_api},
            "StageName": "live",
            "AccessLogSettings": {"DestinationArn": Match.any_value(), "Format": Match.any_value()},
        },
    )


def test_outputs(template: dict[str, Any]) -> None:
    assert set(template["Outputs"]) >= {
        "HttpUrl",
        "WebSocketUrl",
        "TableName",
        "QueueUrl",
        "BucketName",
        "StateMachineArn",
        "DashboardName",
    }


# --- blocking children -----------------------------------------------------------------


def test_state_machine_is_exactly_blocking_child_definition(resources: Resources) -> None:
    _, machine = one(resources, "AWS::StepFunctions::StateMachine")
    table, (queue, _) = _table(resources), _queue(resources)
    deployed = resolve_join(
        machine["Properties"]["DefinitionString"], {table: "<table>", queue: "<queue-url>"}
    )
    assert json.loads(deployed) == blocking_child_definition(
        table="<table>", queue_url="<queue-url>"
    )


def test_state_machine_logs_errors_and_traces(cdk_template: Template) -> None:
    cdk_template.has_resource_properties(
        "AWS::StepFunctions::StateMachine",
        {
            "StateMachineType": "STANDARD",
            "LoggingConfiguration": Match.object_like({"Level": "ERROR"}),
            "TracingConfiguration": {"Enabled": True},
        },
    )


# --- events, timers, secret, alarms ----------------------------------------------------


def test_dispatch_rule_on_the_bus_targets_the_dispatch_function(
    cdk_template: Template, resources: Resources
) -> None:
    bus = next(iter(of_type(resources, "AWS::Events::EventBus")))
    dispatch, _ = function_named(resources, "functions.dispatch_events.handler")
    cdk_template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "EventBusName": {"Ref": bus},
            "EventPattern": {"detail-type": ["agent-runtime.dispatch"]},
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [dispatch, "Arn"]}})],
        },
    )


def test_sweeper_runs_every_five_minutes(cdk_template: Template, resources: Resources) -> None:
    sweeper, _ = function_named(resources, "functions.sweeper.handler")
    assert settings.SWEEP_INTERVAL_SECONDS == 5 * 60
    cdk_template.has_resource_properties(
        "AWS::Events::Rule",
        {
            "ScheduleExpression": "rate(5 minutes)",
            "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [sweeper, "Arn"]}})],
        },
    )


def test_scheduler_group_and_role(cdk_template: Template) -> None:
    cdk_template.resource_count_is("AWS::Scheduler::ScheduleGroup", 1)
    cdk_template.has_resource_properties(
        "AWS::IAM::Role",
        {
            "AssumeRolePolicyDocument": {
                "Statement": [
                    Match.object_like({"Principal": {"Service": "scheduler.amazonaws.com"}})
                ]
            }
        },
    )


def test_model_secret_is_created_when_none_is_configured(cdk_template: Template) -> None:
    cdk_template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"Description": Match.string_like_regexp("put your provider's key")},
    )


def test_alarms(resources: Resources) -> None:
    dlq, _ = one(resources, "AWS::SQS::Queue", FifoQueue=True, RedrivePolicy=None)
    alarms = [body["Properties"] for body in of_type(resources, "AWS::CloudWatch::Alarm").values()]
    by_metric = {(a["Namespace"], a["MetricName"]): a for a in alarms}
    assert by_metric[("AWS/Lambda", "Errors")]["Threshold"] == 0
    assert by_metric[("AWS/Lambda", "Throttles")]["Threshold"] == 0
    assert by_metric[("AWS/SQS", "ApproximateAgeOfOldestMessage")]["Threshold"] == 15 * 60
    visible = [a for a in alarms if a["MetricName"] == "ApproximateNumberOfMessagesVisible"]
    assert len(visible) == 2  # the wake-up DLQ and the dispatch failures
    assert any(
        alarm["Dimensions"] == [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}]
        for alarm in visible
    )
    for alarm in alarms:
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"


def test_dashboard_shows_the_workers_submission_metrics_and_the_alarms(resources: Resources) -> None:
    (body,) = [d["Properties"]["DashboardBody"] for d in of_type(resources, "AWS::CloudWatch::Dashboard").values()]
    text = json.dumps(body)  # a Fn::Join of literal parts and the resources' names
    for metric in ("SubmissionsCompleted", "SubmissionsFailed", "SubmissionsAborted", "SubmissionSeconds", "QueueSeconds", "InputTokens", "OutputTokens"):
        assert f'\\"AgentRuntime/dev\\",\\"{metric}\\",\\"service\\",\\"agent-runtime\\"' in text, metric
    assert "ApproximateAgeOfOldestMessage" in text and "Throttles" in text
    alarms = list(of_type(resources, "AWS::CloudWatch::Alarm"))
    assert alarms and all(alarm in text for alarm in alarms)  # the alarm status widget lists each
