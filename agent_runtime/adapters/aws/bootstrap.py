"""Build the runtime on AWS once per Lambda cold start.

Clients are made here and only here (`functools.cache`), then passed into the
adapters. One event loop per container is kept too: the model SDK's async HTTP
pool is bound to the loop it was made on, so every invocation reuses it.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent_runtime import settings as names
from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.adapters.aws.events import (
    ApiGatewayPoster,
    DynamoDBConnections,
    DynamoDBEventLog,
)
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.adapters.aws.scheduler import SchedulerTimers
from agent_runtime.adapters.aws.sqs import SqsWakeUps
from agent_runtime.adapters.aws.stepfunctions import StepFunctionsChildren
from agent_runtime.registry import Registry, discover
from agent_runtime.service import Service
from agent_runtime.settings import Settings
from agent_runtime.streaming import Broadcaster

if TYPE_CHECKING:
    from agent_runtime.runtime import Runtime

T = TypeVar("T")


@dataclass(frozen=True)
class Clients:
    dynamodb: Any
    sqs: Any
    s3: Any


@functools.cache
def clients() -> Clients:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
    return Clients(
        dynamodb=boto3.client("dynamodb", config=config),
        sqs=boto3.client("sqs", config=config),
        s3=boto3.client("s3", config=config),
    )


@functools.cache
def management_client(endpoint: str) -> Any:
    """API Gateway's management API for the WebSocket stage at `endpoint` (its
    ``https://{api}.execute-api.{region}.amazonaws.com/{stage}`` callback URL)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 3}, connect_timeout=3, read_timeout=10)
    return boto3.client("apigatewaymanagementapi", endpoint_url=endpoint, config=config)


def broadcaster(aws: Clients, table: str, endpoint: str | None) -> Broadcaster | None:
    """Fan-out to WebSocket connections, when the stack has a WebSocket API."""
    if not endpoint:
        return None
    return Broadcaster(DynamoDBConnections(aws.dynamodb, table), ApiGatewayPoster(management_client(endpoint)))


def aws_runtime(settings: Settings, *, registry: Registry, aws: Clients) -> Runtime:
    """The service and the worker (the worker and sweeper Lambdas)."""
    from agent_runtime.runtime import Runtime  # the step machine: only the worker side loads it

    return Runtime(**_parts(settings, registry=registry, aws=aws))


def aws_service(settings: Settings, *, registry: Registry, aws: Clients) -> Service:
    """The service alone (HTTP, WebSocket, EventBridge dispatch): admission and reads,
    without importing the step machine, which these Lambdas never run."""
    return Service(**_parts(settings, registry=registry, aws=aws))


def _parts(settings: Settings, *, registry: Registry, aws: Clients) -> dict[str, Any]:
    blobs = S3Blobs(aws.s3, settings.bucket)
    return dict(
        registry=registry,
        stores=dynamodb_stores(
            aws.dynamodb,
            settings.table,
            blobs,
            kms=kms_client,
            secrets_key=settings.secrets_key,
            timers=timers(settings),
        ),
        wakeups=SqsWakeUps(aws.sqs, settings.queue_url),
        events=DynamoDBEventLog(aws.dynamodb, settings.table, ttl_seconds=names.event_ttl_seconds()),
        broadcaster=broadcaster(aws, settings.table, os.environ.get(names.ENV_WEBSOCKET_ENDPOINT)),
        stream_options=names.event_flush_options(),
        children=children(aws, settings),
    )


def timers(settings: Settings) -> SchedulerTimers | None:
    """Effects' timers on EventBridge Scheduler (None where the stack configures none)."""
    if not (settings.schedule_group and settings.scheduler_role_arn and settings.effect_target_arn):
        return None
    return SchedulerTimers(
        scheduler_client,
        group=settings.schedule_group,
        role_arn=settings.scheduler_role_arn,
        target_arn=settings.effect_target_arn,
    )


def children(aws: Clients, settings: Settings) -> StepFunctionsChildren | None:
    """Blocking children on the stack's state machine (None where none is configured)."""
    if not settings.state_machine_arn:
        return None
    return StepFunctionsChildren(
        stepfunctions=stepfunctions_client, state_machine_arn=settings.state_machine_arn, dynamodb=aws.dynamodb, table=settings.table
    )


@functools.cache
def kms_client() -> Any:
    """Made on first use: only a secret's write or a tool's `ctx.secret` needs it."""
    import boto3
    from botocore.config import Config

    return boto3.client("kms", config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10))


@functools.cache
def scheduler_client() -> Any:
    """Made on first use: only scheduling or cancelling an effect needs it."""
    import boto3
    from botocore.config import Config

    return boto3.client("scheduler", config=Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=10))


@functools.cache
def stepfunctions_client() -> Any:
    """Made on first use: only a worker running a `task`, or a child, needs it."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5}, connect_timeout=5, read_timeout=30)
    return boto3.client("stepfunctions", config=config)


@functools.cache
def default_service() -> Service:
    """The service a request handler uses: settings from the environment, agents discovered."""
    settings = Settings.from_env()
    return aws_service(settings, registry=discover(settings.agents), aws=clients())


@functools.cache
def default_runtime(*, agents: bool = True) -> Runtime:
    """The runtime a Lambda handler uses: settings from the environment, agents discovered.
    ``agents=False`` skips the discovery, for handlers that only move stored work along
    (the sweeper): an agent module that fails to import cannot stop them."""
    settings = Settings.from_env()
    registry = discover(settings.agents) if agents else Registry()
    return aws_runtime(settings, registry=registry, aws=clients())


@functools.cache
def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.new_event_loop()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the container's one event loop."""
    return _loop().run_until_complete(coro)
