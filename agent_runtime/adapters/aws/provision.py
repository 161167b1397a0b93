"""Create the runtime's AWS resources through boto3: used by the local stack and tests.

The deployed stack creates the same resources through CDK (`infra/`); the names of
keys, attributes and queue settings come from `agent_runtime.settings` for both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agent_runtime import settings


def _index(name: str, hash_key: tuple[str, str], range_key: tuple[str, str], projection: dict[str, Any]) -> dict[str, Any]:
    """A global secondary index's `CreateTable` shape; keys are (attribute, type)."""
    return {
        "IndexName": name,
        "KeySchema": [
            {"AttributeName": hash_key[0], "KeyType": "HASH"},
            {"AttributeName": range_key[0], "KeyType": "RANGE"},
        ],
        "Projection": projection,
    }


def _attributes(*keys: tuple[str, str]) -> list[dict[str, str]]:
    return [{"AttributeName": name, "AttributeType": kind} for name, kind in keys]


_PENDING_KEYS = ((settings.PENDING_SHARD_ATTRIBUTE, "N"), (settings.PENDING_SINCE_ATTRIBUTE, "N"))
_INSTANCES_KEYS = ((settings.INSTANCES_AGENT_ATTRIBUTE, "S"), (settings.INSTANCES_ACTIVE_ATTRIBUTE, "N"))
#: The sweeper's sparse index (see agent_runtime.adapters.aws.dynamodb); CDK makes the same.
PENDING_INDEX_ATTRIBUTES = _attributes(*_PENDING_KEYS)
PENDING_INDEX = _index(settings.PENDING_INDEX, *_PENDING_KEYS, {"ProjectionType": "KEYS_ONLY"})
#: The listings' sparse index (see agent_runtime.adapters.aws.dynamodb); CDK makes the same.
INSTANCES_INDEX_ATTRIBUTES = _attributes(*_INSTANCES_KEYS)
INSTANCES_INDEX = _index(
    settings.INSTANCES_INDEX,
    *_INSTANCES_KEYS,
    {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(settings.INSTANCES_INDEX_PROJECTED)},
)


#: The alias of the local stack's key for secret variables.
LOCAL_SECRETS_KEY_ALIAS = "alias/agent-runtime-secrets"


@dataclass(frozen=True)
class Resources:
    table: str
    queue_url: str
    queue_arn: str
    dlq_url: str
    bucket: str
    #: The blocking-child state machine, once `provision_children` made it.
    state_machine_arn: str | None = None
    #: The ARN of the KMS key that encrypts secret variables, when `provision` had a KMS client.
    secrets_key: str | None = None

    def env(self) -> dict[str, str]:
        """The environment variables the Lambda handlers read (see `settings.Settings`)."""
        env = {
            settings.ENV_TABLE: self.table,
            settings.ENV_QUEUE_URL: self.queue_url,
            settings.ENV_BUCKET: self.bucket,
        }
        if self.state_machine_arn:
            env[settings.ENV_STATE_MACHINE_ARN] = self.state_machine_arn
        if self.secrets_key:
            env[settings.ENV_SECRETS_KEY] = self.secrets_key
        return env


def provision(
    *,
    dynamodb: Any,
    sqs: Any,
    s3: Any,
    table: str = settings.LOCAL_TABLE,
    queue: str = settings.LOCAL_QUEUE,
    dlq: str = settings.LOCAL_DLQ,
    bucket: str = settings.LOCAL_BUCKET,
    visibility_timeout: int = settings.QUEUE_VISIBILITY_SECONDS,
    max_receive_count: int = settings.DLQ_MAX_RECEIVE_COUNT,
    kms: Any = None,
    secrets_key_alias: str = LOCAL_SECRETS_KEY_ALIAS,
) -> Resources:
    """Create (or find) the table, the FIFO queue with its dead-letter queue, and the bucket;
    with a `kms` client, also the key for secret variables (found by its alias).

    A table found without an index (made by an older version) gets it added."""
    existing = dynamodb.list_tables()["TableNames"]
    if table not in existing:
        dynamodb.create_table(
            TableName=table,
            BillingMode="PAY_PER_REQUEST",
            AttributeDefinitions=[
                {"AttributeName": settings.TABLE_PARTITION_KEY, "AttributeType": "S"},
                {"AttributeName": settings.TABLE_SORT_KEY, "AttributeType": "S"},
                *PENDING_INDEX_ATTRIBUTES,
                *INSTANCES_INDEX_ATTRIBUTES,
            ],
            KeySchema=[
                {"AttributeName": settings.TABLE_PARTITION_KEY, "KeyType": "HASH"},
                {"AttributeName": settings.TABLE_SORT_KEY, "KeyType": "RANGE"},
            ],
            GlobalSecondaryIndexes=[PENDING_INDEX, INSTANCES_INDEX],
        )
        dynamodb.update_time_to_live(
            TableName=table,
            TimeToLiveSpecification={"Enabled": True, "AttributeName": settings.TABLE_TTL_ATTRIBUTE},
        )
    else:
        indexes = dynamodb.describe_table(TableName=table)["Table"].get("GlobalSecondaryIndexes", [])
        names = {index["IndexName"] for index in indexes}
        # One index per UpdateTable call, as DynamoDB allows.
        for index, attributes in ((PENDING_INDEX, PENDING_INDEX_ATTRIBUTES), (INSTANCES_INDEX, INSTANCES_INDEX_ATTRIBUTES)):
            if index["IndexName"] not in names:
                dynamodb.update_table(
                    TableName=table, AttributeDefinitions=attributes, GlobalSecondaryIndexUpdates=[{"Create": index}]
                )
    dlq_url = sqs.create_queue(
        QueueName=dlq, Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "false"}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    queue_url = sqs.create_queue(
        QueueName=queue,
        Attributes={
            "FifoQueue": "true",
            "ContentBasedDeduplication": "false",
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receive_count)}),
        },
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    try:
        s3.head_bucket(Bucket=bucket)
    except Exception:
        s3.create_bucket(Bucket=bucket)
    secrets_key = None if kms is None else provision_secrets_key(kms, alias=secrets_key_alias)
    return Resources(
        table=table, queue_url=queue_url, queue_arn=queue_arn, dlq_url=dlq_url, bucket=bucket, secrets_key=secrets_key
    )


def provision_secrets_key(kms: Any, *, alias: str = LOCAL_SECRETS_KEY_ALIAS) -> str:
    """Create (or find, by `alias`) the symmetric KMS key that encrypts secret variables
    (`agent_runtime.adapters.aws.dynamodb_variables`); its ARN."""
    try:
        return str(kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"])
    except kms.exceptions.NotFoundException:
        pass
    key = kms.create_key(
        Description="agent-runtime: secret variables", KeyUsage="ENCRYPT_DECRYPT", KeySpec="SYMMETRIC_DEFAULT"
    )["KeyMetadata"]
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.create_alias(AliasName=alias, TargetKeyId=key["KeyId"])
    return str(key["Arn"])


#: The role moto accepts for state machines it runs (it does not check IAM).
LOCAL_STATE_MACHINE_ROLE = "arn:aws:iam::123456789012:role/agent-runtime-blocking-child"


def provision_children(stepfunctions: Any, resources: Resources, *, name: str = settings.LOCAL_STATE_MACHINE) -> str:
    """Create (or find) the blocking-child state machine over `resources`; its ARN. The
    definition is the one the stack deploys (`agent_runtime.blocking`)."""
    from agent_runtime.blocking import blocking_child_definition

    for machine in stepfunctions.list_state_machines()["stateMachines"]:
        if machine["name"] == name:
            return str(machine["stateMachineArn"])
    definition = blocking_child_definition(table=resources.table, queue_url=resources.queue_url)
    created = stepfunctions.create_state_machine(
        name=name, definition=json.dumps(definition), roleArn=LOCAL_STATE_MACHINE_ROLE, type="STANDARD"
    )
    return str(created["stateMachineArn"])


#: The rule that sends dispatch events to the dispatch function, and its pattern (the deployed
#: rule's, see ``infra/constructs/events.py``: the detail-type, any source).
DISPATCH_RULE = "agent-runtime-dispatch"
DISPATCH_EVENT_PATTERN: dict[str, Any] = {"detail-type": [settings.DISPATCH_DETAIL_TYPE]}
#: Where the local stack keeps the dispatch function's asynchronous invocations, and those that
#: failed every attempt (deployed: Lambda's own event queue, and the dispatch failures queue).
LOCAL_DISPATCH_QUEUE = "agent-runtime-dispatch-invocations"
LOCAL_DISPATCH_FAILURES = "agent-runtime-dispatch-failures"
#: Lambda runs a failed asynchronous invocation twice more before it gives up.
ASYNC_INVOKE_ATTEMPTS = 3
#: The role the local schedules name (moto checks no IAM; the deployed stack makes the real one).
LOCAL_SCHEDULER_ROLE = "arn:aws:iam::123456789012:role/agent-runtime-scheduler"


@dataclass(frozen=True)
class EventResources:
    """The bus, the schedule group, and the queues standing in for the dispatch function's
    asynchronous invocations (see `provision_events`)."""

    bus: str
    schedule_group: str
    dispatch_queue_url: str
    dispatch_failures_url: str
    scheduler_role_arn: str = LOCAL_SCHEDULER_ROLE

    def env(self, *, effect_target_arn: str) -> dict[str, str]:
        """The handlers' variables for events and schedules (see `settings.Settings`)."""
        return {
            settings.ENV_EVENT_BUS: self.bus,
            settings.ENV_SCHEDULE_GROUP: self.schedule_group,
            settings.ENV_SCHEDULER_ROLE_ARN: self.scheduler_role_arn,
            settings.ENV_EFFECT_TARGET_ARN: effect_target_arn,
        }


def provision_events(
    *,
    events: Any,
    sqs: Any,
    scheduler: Any,
    bus: str = settings.LOCAL_EVENT_BUS,
    schedule_group: str = settings.LOCAL_SCHEDULE_GROUP,
    dispatch_queue: str = LOCAL_DISPATCH_QUEUE,
    dispatch_failures: str = LOCAL_DISPATCH_FAILURES,
    visibility_timeout: int = 60,
) -> EventResources:
    """Create (or find) the bus with the dispatch rule, and the schedule group.

    The rule has the deployed rule's pattern, but its target is a queue: moto cannot invoke
    a Lambda function from a rule, so the local stack drains the queue into the dispatch
    function as Lambda's asynchronous invocation would (`agent_runtime.dev.async_invoke`).
    A message received `ASYNC_INVOKE_ATTEMPTS` times moves to `dispatch_failures`.
    """
    if not any(b["Name"] == bus for b in events.list_event_buses(NamePrefix=bus)["EventBuses"]):
        events.create_event_bus(Name=bus)
    failures_url = sqs.create_queue(QueueName=dispatch_failures)["QueueUrl"]
    failures_arn = sqs.get_queue_attributes(QueueUrl=failures_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": failures_arn, "maxReceiveCount": str(ASYNC_INVOKE_ATTEMPTS)}
    queue_url = sqs.create_queue(
        QueueName=dispatch_queue,
        Attributes={"VisibilityTimeout": str(visibility_timeout), "RedrivePolicy": json.dumps(redrive)},
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.put_rule(
        Name=DISPATCH_RULE,
        EventBusName=bus,
        EventPattern=json.dumps(DISPATCH_EVENT_PATTERN),
        Description="Admit agent-runtime.dispatch events as submissions",
    )
    events.put_targets(Rule=DISPATCH_RULE, EventBusName=bus, Targets=[{"Id": "dispatch", "Arn": queue_arn}])
    if schedule_group not in {g["Name"] for g in scheduler.list_schedule_groups()["ScheduleGroups"]}:
        scheduler.create_schedule_group(Name=schedule_group)
    return EventResources(
        bus=bus, schedule_group=schedule_group, dispatch_queue_url=queue_url, dispatch_failures_url=failures_url
    )
