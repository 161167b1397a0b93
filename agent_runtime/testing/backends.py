"""Backends for tests: the memory adapters, or the AWS adapters on moto.

Users test their own agents the same way: ``memory_backend()`` for speed, or
``moto_backend()`` inside ``moto.mock_aws()`` for the real AWS semantics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.adapters.aws.events import DynamoDBConnections, DynamoDBEventLog
from agent_runtime.adapters.aws.provision import Resources, provision, provision_children
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.adapters.aws.scheduler import SchedulerTimers, provision_schedule_group
from agent_runtime.adapters.aws.sqs import SqsWakeUps
from agent_runtime.adapters.aws.stepfunctions import StepFunctionsChildren
from agent_runtime.adapters.memory import MemoryBlobs, MemoryChildren, MemoryWakeUps, memory_stores
from agent_runtime.adapters.memory_events import MemoryConnections, MemoryEventLog
from agent_runtime.ports import BlobStore, Children, Connections, EventLog, Stores, WakeUps
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime

#: `mock_aws(config=MOTO_CONFIG)`: moto's Step Functions executes state machines.
MOTO_CONFIG: dict[str, Any] = {"stepfunctions": {"execute_state_machine": True}}


class FakeClock:
    """A clock tests move by hand: leases expire and timeouts pass on demand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Backend:
    kind: str
    stores: Stores
    wakeups: WakeUps
    blobs: BlobStore
    events: EventLog
    connections: Connections
    children: Children | None = None
    resources: Resources | None = None
    clients: dict[str, Any] = field(default_factory=dict)

    def runtime(self, registry: Registry, **options: Any) -> Runtime:
        options.setdefault("events", self.events)
        options.setdefault("children", self.children)
        return Runtime(registry=registry, stores=self.stores, wakeups=self.wakeups, **options)


def memory_backend() -> Backend:
    wakeups = MemoryWakeUps()
    return Backend(
        "memory", memory_stores(), wakeups, MemoryBlobs(), MemoryEventLog(), MemoryConnections(), MemoryChildren(wakeups)
    )


def moto_backend(*, region: str = "us-east-1", spill_bytes: int | None = None, **provision_options: Any) -> Backend:
    """The AWS adapters on whatever endpoint boto3 reaches: call inside `mock_aws()`
    (with ``config=MOTO_CONFIG`` for blocking children: Step Functions then runs the
    state machine)."""
    import boto3

    names: tuple[Any, ...] = ("dynamodb", "sqs", "s3", "stepfunctions", "kms", "scheduler")
    clients = {name: boto3.client(name, region_name=region) for name in names}
    provision_options.setdefault("kms", clients["kms"])
    resources = provision(dynamodb=clients["dynamodb"], sqs=clients["sqs"], s3=clients["s3"], **provision_options)
    machine = provision_children(clients["stepfunctions"], resources)
    children = StepFunctionsChildren(
        stepfunctions=clients["stepfunctions"], state_machine_arn=machine, dynamodb=clients["dynamodb"], table=resources.table
    )
    blobs = S3Blobs(clients["s3"], resources.bucket)
    stores = dynamodb_stores(
        clients["dynamodb"],
        resources.table,
        blobs,
        kms=clients["kms"],
        secrets_key=resources.secrets_key,
        timers=moto_timers(clients["scheduler"]),
        **({} if spill_bytes is None else {"spill_bytes": spill_bytes}),
    )
    return Backend(
        "moto",
        stores,
        SqsWakeUps(clients["sqs"], resources.queue_url),
        blobs,
        DynamoDBEventLog(clients["dynamodb"], resources.table),
        DynamoDBConnections(clients["dynamodb"], resources.table),
        children,
        resources,
        clients,
    )


def moto_timers(client: Any) -> SchedulerTimers:
    """Effects' timers on moto's EventBridge Scheduler (which stores schedules and never
    fires them: tests fire them through the service)."""
    group = provision_schedule_group(client, settings.LOCAL_SCHEDULE_GROUP)
    account = "123456789012"
    return SchedulerTimers(
        client,
        group=group,
        role_arn=f"arn:aws:iam::{account}:role/agent-runtime-scheduler",
        target_arn=f"arn:aws:lambda:{client.meta.region_name}:{account}:function:agent-runtime-dispatch",
    )
