"""The agent-runtime stack: composes the constructs, creates nothing itself but outputs.

Storage ─ table (+ the KMS key of its secret variables), bucket (+ access-log bucket)
Wakeups ─ FIFO queue + dead-letter queue ──────────────► worker (SQS event source)
BlockingChildren ─ state machine (sends to the queue, puts into the table)
Events ─ bus + dispatch rule ──► dispatch_events;  sweeper schedule ──► sweeper;
         schedule group (effects' one-time schedules, made by the worker and the
         admitting functions) ──► dispatch_events, as the scheduler role
ModelSecret ─ the model API key (read by the worker only)
RuntimeFunctions ─ one function and role per `HandlerSpec` below
Api ─ HTTP API ──► http_api;  WebSocket API ──► websocket (when it exists)
Alarms ─ dead letters, dispatch failures, worker errors/throttles, oldest wake-up
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import CfnOutput, Stack
from constructs import Construct

from agent_runtime import settings
from infra.config import StackConfig
from infra.constructs.api import Api, WebSocketSurface
from infra.constructs.children import BlockingChildren
from infra.constructs.events import Events
from infra.constructs.functions import (
    Access,
    HandlerSpec,
    RuntimeFunctions,
    RuntimeResources,
)
from infra.constructs.monitoring import Alarms, Dashboard
from infra.constructs.secrets import ModelSecret
from infra.constructs.storage import Storage
from infra.constructs.wakeups import Wakeups

ROOT = Path(__file__).resolve().parents[1]

_ADMISSION = frozenset({Access.TABLE_READ_WRITE, Access.QUEUE_SEND, Access.BLOBS})

HANDLERS: tuple[HandlerSpec, ...] = (
    HandlerSpec(
        name="http_api",
        handler="functions.http_api.handler",
        description="agent-runtime HTTP API",
        timeout_seconds=29,  # API Gateway HTTP integrations time out at 30 s
        memory="api",
        # File routes and presigned uploads; setting a secret variable encrypts it; the
        # instances listing reads its index.
        access=_ADMISSION | {Access.FILES, Access.UPLOADS, Access.ENCRYPT_SECRETS, Access.INSTANCES_INDEX},
    ),
    HandlerSpec(
        name="worker",
        handler="functions.worker.handler",
        description="agent-runtime worker: runs instances woken on the FIFO queue",
        timeout_seconds=settings.WORKER_TIMEOUT_SECONDS,
        memory="worker",
        # Tools read and write files (children get copies) and read secret variables.
        access=_ADMISSION
        | {
            Access.START_CHILDREN,
            Access.TASK_TOKENS,
            Access.MODEL_SECRET,
            Access.FILES,
            Access.DECRYPT_SECRETS,
        },
        calls_models=True,
    ),
    HandlerSpec(
        name="sweeper",
        handler="functions.sweeper.handler",
        description="agent-runtime sweeper: re-wakes instances with idle queued work",
        timeout_seconds=120,
        memory="small",
        # The pending index only (never the table's items, never a scan), and wake-ups.
        access=frozenset({Access.PENDING_INDEX, Access.QUEUE_SEND}),
    ),
    HandlerSpec(
        name="dispatch_events",
        handler="functions.dispatch_events.handler",
        description="agent-runtime EventBridge dispatch",
        timeout_seconds=30,
        memory="small",
        access=_ADMISSION,
        # Its own environment names it, as the target of the effects' schedules.
        fixed_name=True,
    ),
)

#: The functions that run or admit work, and so may schedule effects (with the WebSocket
#: function, when there is one).
SCHEDULING = ("worker", "http_api", "dispatch_events")

WEBSOCKET_HANDLER = HandlerSpec(
    name="websocket",
    handler="functions.websocket.handler",
    description="agent-runtime WebSocket API",
    timeout_seconds=29,
    memory="api",
    access=_ADMISSION,
)


def websocket_enabled(config: StackConfig, root: Path = ROOT) -> bool:
    """``websocket`` from the configuration; ``auto`` means: its handler module exists."""
    if config.websocket == "auto":
        return (root / "functions" / "websocket.py").is_file()
    return config.websocket


class AgentRuntimeStack(Stack):
    """Every resource lives in a construct, exposed as an attribute of this stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: StackConfig | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        self.config = config or StackConfig.from_context(self.node)

        self.storage = Storage(self, "Storage", config=self.config)
        self.wakeups = Wakeups(self, "Wakeups")
        self.children = BlockingChildren(
            self,
            "BlockingChildren",
            config=self.config,
            table=self.storage.table,
            queue=self.wakeups.queue,
        )
        self.events = Events(self, "Events", config=self.config)
        self.model_secret = ModelSecret(self, "ModelSecret", config=self.config)
        self.functions = RuntimeFunctions(
            self,
            "Functions",
            config=self.config,
            resources=RuntimeResources(
                table=self.storage.table,
                queue=self.wakeups.queue,
                bucket=self.storage.bucket,
                state_machine=self.children.state_machine,
                event_bus=self.events.bus,
                model_secret=self.model_secret.secret,
                secrets_key=self.storage.secrets_key,
            ),
            handlers=HANDLERS,
        )
        self.wakeups.add_consumer(self.functions["worker"], max_concurrency=self.config.worker_concurrency)
        self.events.route_dispatch_to(self.functions["dispatch_events"])
        self.events.sweep_with(self.functions["sweeper"])
        self.events.deliver_schedules_to(self.functions.arn("dispatch_events"))
        for name in SCHEDULING:
            self.schedule_effects_from(name)
        self.api = Api(self, "Api", config=self.config, http_handler=self.functions["http_api"])
        self.alarms = Alarms(
            self,
            "Alarms",
            queue=self.wakeups.queue,
            dead_letter_queue=self.wakeups.dead_letter_queue,
            dispatch_failures=self.events.dispatch_failures,
            worker=self.functions["worker"],
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            namespace=self.config.metrics_namespace,
            service=settings.SERVICE_NAME,
            queue=self.wakeups.queue,
            dead_letter_queue=self.wakeups.dead_letter_queue,
            worker=self.functions["worker"],
            alarms=self.alarms.alarms,
        )

        self.websocket: WebSocketSurface | None = None
        if websocket_enabled(self.config):
            self.add_websocket()

        self._output("HttpUrl", self.api.http_url, "HTTP API base URL")
        self._output("TableName", self.storage.table.table_name, "Instance table")
        self._output("QueueUrl", self.wakeups.queue.queue_url, "FIFO wake-up queue")
        self._output("BucketName", self.storage.bucket.bucket_name, "Blob bucket")
        self._output(
            "StateMachineArn",
            self.children.state_machine.state_machine_arn,
            "Blocking-child state machine",
        )
        self._output("EventBusName", self.events.bus.event_bus_name, "Dispatch event bus")
        self._output("ModelSecretArn", self.model_secret.secret.secret_arn, "Model API key")
        self._output("SecretsKeyArn", self.storage.secrets_key.key_arn, "KMS key of secret variables")
        self._output("DashboardName", self.dashboard.dashboard.dashboard_name, "CloudWatch dashboard")

    def add_websocket(self, spec: HandlerSpec = WEBSOCKET_HANDLER) -> WebSocketSurface:
        """The WebSocket surface: its function, API and stage ``live``, the right to post
        to its connections, and the ``WebSocketUrl`` output. Every function that stores
        events posts them to the instance's subscribers: the WebSocket function, the
        worker, and the admissions (HTTP, EventBridge dispatch) with ``submission_queued``.
        Runs when ``functions/websocket.py`` exists (or ``-c websocket=true``)."""
        function = self.functions.add(spec)
        surface = self.api.add_websocket(function)
        for name in (spec.name, "worker", "http_api", "dispatch_events"):
            surface.grant_manage_connections(self.functions.roles[name])
            self.functions[name].add_environment(settings.ENV_WEBSOCKET_ENDPOINT, surface.callback_url)
        # The console (served by the HTTP function) connects its browser here.
        self.functions["http_api"].add_environment(settings.ENV_WEBSOCKET_URL, surface.url)
        self.schedule_effects_from(spec.name)
        self.websocket = surface
        self._output("WebSocketUrl", surface.url, "WebSocket API URL (stage live)")
        return surface

    def schedule_effects_from(self, name: str) -> None:
        """Let function `name` schedule effects: the Scheduler grants on the schedule group,
        and the group, the scheduler role and the dispatch function in its environment."""
        self.events.allow_schedules(self.functions.roles[name])
        environment = self.events.schedule_environment(self.functions.arn("dispatch_events"))
        for variable, value in environment.items():
            self.functions[name].add_environment(variable, value)

    def _output(self, name: str, value: str, description: str) -> None:
        CfnOutput(self, name, value=value, description=description)
