"""The Lambda functions: one per handler module in ``functions/``, each with its own role.

A function is described by a `HandlerSpec`; what its role may touch is the set of
`Access` grants in the spec, each applied as narrowly as the service allows. Adding a
handler is one more spec passed to `RuntimeFunctions.add`.

Code: every function runs the one source asset with the common dependency layer; a
handler that calls language models (``calls_models``) also gets the model SDK layer
(see `infra.bundling`), which keeps the SDK out of every other function.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from agent_runtime import settings
from infra import bundling
from infra.config import StackConfig
from infra.constructs.common import log_group
from infra.constructs.storage import FILE_OBJECTS, UPLOADS_PREFIX
from infra.nag import acknowledge, finding_resource

SERVICE_NAME = settings.SERVICE_NAME
RUNTIME = lambda_.Runtime.PYTHON_3_13
ARCHITECTURE = lambda_.Architecture.ARM_64

# The item actions the store uses (transactions are authorised per item action). The
# table's `grant_*_data` would add Scan, stream reads and every index (``index/*``).
_TABLE_READ_ACTIONS = ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
_TABLE_WRITE_ACTIONS = [
    "dynamodb:ConditionCheckItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:BatchWriteItem",
]
# The actions a handler needs on blobs; `grant_read_write` would add wildcards
# (``s3:GetObject*``, ``s3:List*``, ``s3:Abort*``) it does not use. They cover files too:
# HeadObject and a presigned GET are s3:GetObject, a presigned PUT is s3:PutObject, and a
# server-side CopyObject is s3:GetObject on the source and s3:PutObject on the target
# (the objects carry no tags, so no s3:*ObjectTagging).
_OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
_UPLOAD_OBJECTS = f"{UPLOADS_PREFIX}*"
# A secret variable's encryption context is exactly {"instance": ..., "variable": ...}
# (agent_runtime.variables.encryption_context): with no other keys (ForAllValues), and
# with both present (Null: ForAllValues alone would also allow an empty context).
_SECRET_CONTEXT = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["instance", "variable"]},
    "Null": {
        "kms:EncryptionContext:instance": "false",
        "kms:EncryptionContext:variable": "false",
    },
}
# Task-token calls identify the task by its token, not by an ARN: IAM supports no
# resource for them, so AWS requires Resource "*".
_TASK_TOKEN_ACTIONS = [
    "states:SendTaskSuccess",
    "states:SendTaskFailure",
    "states:SendTaskHeartbeat",
]


# What X-Ray's OTLP endpoint (spans) checks; PutTraceSegments covers its segment API.
_XRAY_ACTIONS = ["xray:PutTraceSegments", "xray:PutSpans", "xray:PutSpansForIndexing"]

_BEDROCK_ACTIONS = ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
#: Model ids that start with these name cross-region inference profiles.
_PROFILE_PREFIXES = frozenset({"us", "eu", "apac", "us-gov", "global"})


class Access(enum.Enum):
    """What a handler's role may do; each member maps to one narrow grant."""

    TABLE_READ = "read the instance table"
    TABLE_READ_WRITE = "read and write the instance table"
    PENDING_INDEX = "query the pending-work index"
    INSTANCES_INDEX = "query the instances index (listings)"
    QUEUE_SEND = "send wake-ups"
    BLOBS = "get, put and delete objects in the bucket, list it"
    FILES = "read, write, copy and delete instance files, presign their downloads"
    UPLOADS = "presign uploads, complete them from their staging objects"
    ENCRYPT_SECRETS = "encrypt secret variables"
    DECRYPT_SECRETS = "decrypt secret variables"
    START_CHILDREN = "start blocking-child executions"
    TASK_TOKENS = "answer blocking-child task tokens"
    MODEL_SECRET = "read the model API key"


@dataclass(frozen=True)
class HandlerSpec:
    """One Lambda function: ``name`` is its construct id, ``handler`` the Python path."""

    name: str
    handler: str
    description: str
    timeout_seconds: int
    memory: Literal["api", "worker", "small"]
    access: frozenset[Access]
    #: Calls language models (runs agents' turns): gets the model SDK layer too.
    calls_models: bool = False
    #: Named after the stack (``<stack>-<name>``) rather than by CloudFormation, so that its
    #: ARN is known before it exists: its own environment may then name it (a reference to
    #: the function's ``Arn`` from its own properties would be a circular dependency).
    fixed_name: bool = False


@dataclass(frozen=True)
class RuntimeResources:
    """The resources the handlers are told about (environment) and may be granted."""

    table: dynamodb.ITable
    queue: sqs.IQueue
    bucket: s3.IBucket
    state_machine: sfn.IStateMachine
    event_bus: events.IEventBus
    model_secret: secretsmanager.ISecret
    secrets_key: kms.IKey


class RuntimeFunctions(Construct):
    """``functions[name]``, ``roles[name]``, ``log_groups[name]``; ``code`` is the shared
    source asset, ``dependencies`` the common layer and ``model_dependencies`` the model
    SDK layer, made when a handler first needs it (both None when bundling is off)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig,
        resources: RuntimeResources,
        handlers: Iterable[HandlerSpec] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self._config = config
        self._resources = resources
        self.functions: dict[str, lambda_.Function] = {}
        self.roles: dict[str, iam.Role] = {}
        self.log_groups: dict[str, logs.LogGroup] = {}
        self._fixed_names: dict[str, str] = {}
        # Without bundling (tests, quick checks) the sources go as they are: no bytecode.
        bytecode_for = bundling.LAMBDA_PYTHON if config.bundle else None
        self.code = lambda_.Code.from_asset(str(bundling.build_source(bytecode_for=bytecode_for)))
        self.dependencies: lambda_.LayerVersion | None = None
        self.model_dependencies: lambda_.LayerVersion | None = None
        self.tracing_dependencies: lambda_.LayerVersion | None = None
        if config.bundle:
            self.dependencies = self._layer(
                "Dependencies",
                bundling.build_dependencies(),
                "agent-runtime's common Python dependencies (boto3 comes with Lambda)",
            )
        for spec in handlers:
            self.add(spec)

    def __getitem__(self, name: str) -> lambda_.Function:
        return self.functions[name]

    def arn(self, name: str) -> str:
        """The function's ARN; for a `HandlerSpec.fixed_name` one, built from its name (no
        reference to the function, so the function itself may hold it)."""
        function = self.functions[name]
        if name not in self._fixed_names:
            return function.function_arn
        return Stack.of(self).format_arn(
            service="lambda",
            resource="function",
            resource_name=self._fixed_names[name],
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def _layer(self, construct_id: str, directory: Path, description: str) -> lambda_.LayerVersion:
        return lambda_.LayerVersion(
            self,
            construct_id,
            code=lambda_.Code.from_asset(str(directory)),
            compatible_runtimes=[RUNTIME],
            compatible_architectures=[ARCHITECTURE],
            description=description,
        )

    def layers(self, spec: HandlerSpec) -> list[lambda_.ILayerVersion]:
        """The common layer, plus the model SDK layer when `spec` calls models (none
        when bundling is off; nothing extra when the project has no model SDK)."""
        if self.dependencies is None:
            return []
        layers = [self.dependencies, *self._tracing_layer()]
        if not spec.calls_models or not bundling.model_requirements():
            return layers
        if self.model_dependencies is None:
            self.model_dependencies = self._layer(
                "ModelDependencies",
                bundling.build_model_dependencies(),
                f"agent-runtime's model SDK ({', '.join(sorted(bundling.MODEL_SDK))}), "
                "for functions that call models",
            )
        return [*layers, self.model_dependencies]

    def _tracing_layer(self) -> list[lambda_.ILayerVersion]:
        """The OpenTelemetry SDK and OTLP exporter, for every function, when tracing is on
        (`agent_runtime.tracing` loads them only then; off, no function carries them)."""
        if not self._config.tracing:
            return []
        if self.tracing_dependencies is None:
            self.tracing_dependencies = self._layer(
                "TracingDependencies",
                bundling.build_tracing_dependencies(),
                "agent-runtime's tracing: the OpenTelemetry SDK and OTLP exporter",
            )
        return [self.tracing_dependencies]

    def environment(self, spec: HandlerSpec) -> dict[str, str]:
        """What every handler is told (settings names, Powertools), plus the model secret's
        ARN for handlers that read it and the secret variables' key for those that use it."""
        res = self._resources
        env = {
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            "POWERTOOLS_LOG_LEVEL": self._config.log_level,
            "POWERTOOLS_METRICS_NAMESPACE": self._config.metrics_namespace,
            settings.ENV_TABLE: res.table.table_name,
            settings.ENV_QUEUE_URL: res.queue.queue_url,
            settings.ENV_BUCKET: res.bucket.bucket_name,
            settings.ENV_STATE_MACHINE_ARN: res.state_machine.state_machine_arn,
            settings.ENV_EVENT_BUS: res.event_bus.event_bus_name,
            settings.ENV_DEFAULT_MODEL: self._config.model_id,
        }
        if Access.MODEL_SECRET in spec.access:
            env[settings.ENV_MODEL_SECRET_ARN] = res.model_secret.secret_arn
        if spec.access & {Access.ENCRYPT_SECRETS, Access.DECRYPT_SECRETS}:
            env[settings.ENV_SECRETS_KEY] = res.secrets_key.key_arn
        if self._config.tracing:
            env[settings.ENV_TRACING] = ",".join(self._config.tracing)
        return env

    def add(self, spec: HandlerSpec) -> lambda_.Function:
        """Create the function of `spec` with its role, log group and grants."""
        if spec.name in self.functions:
            raise ValueError(f"handler {spec.name!r} is already defined")
        memory: Mapping[str, int] = {
            "api": self._config.api_memory_mb,
            "worker": self._config.worker_memory_mb,
            "small": self._config.small_memory_mb,
        }
        role = iam.Role(
            self,
            f"{spec.name}-role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"agent-runtime {spec.name}: {', '.join(sorted(a.value for a in spec.access))}",
        )
        group = log_group(self, f"{spec.name}-logs", config=self._config)
        group.grant_write(role)
        if spec.fixed_name:
            # Lambda allows 64 characters; a stack name may have 128.
            suffix = f"-{spec.name.replace('_', '-')}"
            self._fixed_names[spec.name] = Stack.of(self).stack_name[: 64 - len(suffix)] + suffix
        function = lambda_.Function(
            self,
            spec.name,
            function_name=self._fixed_names.get(spec.name),
            description=spec.description,
            code=self.code,
            handler=spec.handler,
            runtime=RUNTIME,
            architecture=ARCHITECTURE,
            memory_size=memory[spec.memory],
            timeout=Duration.seconds(spec.timeout_seconds),
            role=role,
            log_group=group,
            layers=self.layers(spec) or None,
            environment=self.environment(spec),
        )
        acknowledge(
            function,
            "L1",
            "Pinned to Python 3.13 on purpose: the dependency layers are built for CPython "
            "3.13 wheels (pydantic-core, jiter); moving to a newer runtime is a deliberate "
            "change of both.",
        )
        self._grant(role, spec)
        self.functions[spec.name] = function
        self.roles[spec.name] = role
        self.log_groups[spec.name] = group
        return function

    def _grant(self, role: iam.Role, spec: HandlerSpec) -> None:
        res = self._resources
        access = spec.access
        table_actions = (
            _TABLE_READ_ACTIONS + _TABLE_WRITE_ACTIONS
            if Access.TABLE_READ_WRITE in access
            else _TABLE_READ_ACTIONS
            if Access.TABLE_READ in access
            else []
        )
        if table_actions:
            role.add_to_policy(iam.PolicyStatement(actions=table_actions, resources=[res.table.table_arn]))
        if Access.PENDING_INDEX in access:
            index = f"{res.table.table_arn}/index/{settings.PENDING_INDEX}"
            role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[index]))
        if Access.INSTANCES_INDEX in access:
            index = f"{res.table.table_arn}/index/{settings.INSTANCES_INDEX}"
            role.add_to_policy(iam.PolicyStatement(actions=["dynamodb:Query"], resources=[index]))
        if Access.QUEUE_SEND in access:
            # Only SendMessage: `grant_send_messages` adds GetQueueAttributes and GetQueueUrl.
            role.add_to_policy(iam.PolicyStatement(actions=["sqs:SendMessage"], resources=[res.queue.queue_arn]))
        if Access.BLOBS in access:
            objects = res.bucket.arn_for_objects("*")
            role.add_to_policy(iam.PolicyStatement(actions=_OBJECT_ACTIONS, resources=[objects]))
            acknowledge(
                role,
                f"IAM5[Resource::{finding_resource(self, objects)}]",
                "Object keys are chosen at run time (per instance, per file); the grant is "
                "limited to this one bucket's objects and to get, put and delete.",
            )
        self._grant_files(role, access)
        if Access.ENCRYPT_SECRETS in access:
            role.add_to_policy(self._secrets_statement("kms:Encrypt"))
        if Access.DECRYPT_SECRETS in access:
            role.add_to_policy(self._secrets_statement("kms:Decrypt"))
        if Access.START_CHILDREN in access:
            res.state_machine.grant_start_execution(role)
        if Access.TASK_TOKENS in access:
            role.add_to_policy(iam.PolicyStatement(actions=_TASK_TOKEN_ACTIONS, resources=["*"]))
            acknowledge(
                role,
                "IAM5[Resource::*]",
                "states:SendTaskSuccess, SendTaskFailure and SendTaskHeartbeat support no "
                "resource-level permissions (the task token names the task); AWS requires "
                "Resource '*'. Only these three actions are granted on it.",
            )
        if Access.MODEL_SECRET in access:
            res.model_secret.grant_read(role)
            self._grant_bedrock(role)
        if "xray" in self._config.tracing:
            self._grant_xray(role)

    def _grant_xray(self, role: iam.Role) -> None:
        """Sending spans to X-Ray's OTLP endpoint (`agent_runtime.tracing.xray`)."""
        role.add_to_policy(iam.PolicyStatement(actions=_XRAY_ACTIONS, resources=["*"]))
        acknowledge(
            role,
            "IAM5[Resource::*]",
            "X-Ray's trace-writing actions support no resource-level permissions; AWS "
            "requires Resource '*'. Only the actions that write spans are granted on it.",
        )

    def _grant_bedrock(self, role: iam.Role) -> None:
        """`bedrock:InvokeModel*` on exactly the configured models: a foundation model in
        any region (cross-region inference profiles route to several), and an inference
        profile (``us.``, ``eu.``, ``apac.`` ids) in this account and region."""
        models = self._config.bedrock_models
        if not models:
            return
        stack = Stack.of(self)
        resources: list[str] = []
        for model in models:
            prefix, _, rest = model.partition(".")
            if prefix in _PROFILE_PREFIXES:
                resources.append(stack.format_arn(service="bedrock", resource="inference-profile", resource_name=model))
                model = rest
            resources.append(f"arn:{stack.partition}:bedrock:*::foundation-model/{model}")
        role.add_to_policy(iam.PolicyStatement(actions=_BEDROCK_ACTIONS, resources=sorted(set(resources))))
        for resource in sorted({r for r in resources if ":*::" in r}):
            acknowledge(
                role,
                f"IAM5[Resource::{finding_resource(self, resource)}]",
                "A foundation model is invoked in whichever region a cross-region inference "
                "profile routes to; the grant names the one model and only InvokeModel*.",
            )

    def _grant_files(self, role: iam.Role, access: frozenset[Access]) -> None:
        """Files and uploads, by prefix. A handler with `Access.BLOBS` may reach every
        object (spilled attributes live beside the files, under ``instances/``, and no
        Allow can name "``instances/`` but not its ``files/``"), so it is denied the
        prefixes it is not granted: only the handlers that hold FILES or UPLOADS touch
        those objects."""
        bucket = self._resources.bucket
        granted = {Access.FILES: FILE_OBJECTS, Access.UPLOADS: _UPLOAD_OBJECTS}
        allowed = [bucket.arn_for_objects(keys) for grant, keys in granted.items() if grant in access]
        denied = [bucket.arn_for_objects(keys) for grant, keys in granted.items() if grant not in access]
        if allowed:
            role.add_to_policy(iam.PolicyStatement(actions=_OBJECT_ACTIONS, resources=allowed))
            for objects in allowed:
                acknowledge(
                    role,
                    f"IAM5[Resource::{finding_resource(self, objects)}]",
                    "Object keys are random ids under the instance's prefix, made at run "
                    "time; the grant is limited to this bucket's file (or upload staging) "
                    "objects and to get, put and delete.",
                )
        if Access.BLOBS in access and denied:
            role.add_to_policy(
                iam.PolicyStatement(effect=iam.Effect.DENY, actions=_OBJECT_ACTIONS, resources=denied)
            )
        if access & {Access.BLOBS, Access.FILES, Access.UPLOADS}:
            # Without ListBucket, S3 answers a missing key with 403 instead of 404, and the
            # adapters tell "overwritten meanwhile" or "nothing uploaded yet" by the 404.
            role.add_to_policy(
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[bucket.bucket_arn])
            )

    def _secrets_statement(self, action: str) -> iam.PolicyStatement:
        return iam.PolicyStatement(
            actions=[action],
            resources=[self._resources.secrets_key.key_arn],
            conditions=_SECRET_CONTEXT,
        )
