"""Names shared by the Lambda handlers, the CDK stack and the local stack.

The stack sets these environment variables on every function; the local stack
sets them for its in-process handlers. One place, so the three never drift.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

ENV_TABLE = "AGENT_RUNTIME_TABLE"
ENV_QUEUE_URL = "AGENT_RUNTIME_QUEUE_URL"
ENV_BUCKET = "AGENT_RUNTIME_BUCKET"
ENV_AGENTS = "AGENT_RUNTIME_AGENTS"
ENV_STATE_MACHINE_ARN = "AGENT_RUNTIME_STATE_MACHINE_ARN"
#: The KMS key (id or ARN) that encrypts secret variables.
ENV_SECRETS_KEY = "AGENT_RUNTIME_SECRETS_KEY"
ENV_EVENT_BUS = "AGENT_RUNTIME_EVENT_BUS"
ENV_MODEL_SECRET_ARN = "AGENT_RUNTIME_MODEL_SECRET_ARN"
ENV_EVENT_TTL = "AGENT_RUNTIME_EVENT_TTL_SECONDS"
ENV_DEFAULT_MODEL = "AGENT_RUNTIME_DEFAULT_MODEL"
# The WebSocket API's management endpoint (``https://{api}.execute-api.{region}.../{stage}``).
ENV_WEBSOCKET_ENDPOINT = "AGENT_RUNTIME_WEBSOCKET_ENDPOINT"
#: The WebSocket API's client URL (``wss://...``), which the console connects to.
ENV_WEBSOCKET_URL = "AGENT_RUNTIME_WEBSOCKET_URL"
# Effects: one-time EventBridge Scheduler schedules in this group, delivered to the
# target (the dispatch function) as the scheduler role, with an event of detail-type
# EFFECT_DETAIL_TYPE whose detail names the instance and the effect.
ENV_SCHEDULE_GROUP = "AGENT_RUNTIME_SCHEDULE_GROUP"
ENV_SCHEDULER_ROLE_ARN = "AGENT_RUNTIME_SCHEDULER_ROLE_ARN"
ENV_EFFECT_TARGET_ARN = "AGENT_RUNTIME_EFFECT_TARGET_ARN"
EFFECT_DETAIL_TYPE = "agent-runtime.effect"

# Resource names used by the local stack (the deployed stack lets CloudFormation name them).
LOCAL_TABLE = "agent-runtime"
LOCAL_QUEUE = "agent-runtime-wakeups.fifo"
LOCAL_DLQ = "agent-runtime-wakeups-dlq.fifo"
LOCAL_BUCKET = "agent-runtime-local"
LOCAL_STATE_MACHINE = "agent-runtime-blocking-child"
LOCAL_EVENT_BUS = "agent-runtime-local"
LOCAL_SCHEDULE_GROUP = "agent-runtime-timers"

# DynamoDB key schema (see agent_runtime.adapters.aws.dynamodb_items for the item layout).
TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
TABLE_TTL_ATTRIBUTE = "expires_at"

# Sparse index of unsettled submissions, for the sweeper (see
# agent_runtime.adapters.aws.dynamodb). Only unsettled SUB items carry both attributes
# (admission sets them, the settle removes them); the shard (hash of the instance key) spreads them over a few partitions.
PENDING_INDEX = "pending"
PENDING_SHARD_ATTRIBUTE = "pending_shard"
PENDING_SINCE_ATTRIBUTE = "pending_since"
PENDING_SHARDS = 8

# Sparse index of instances by agent, latest admission first, for listings (see
# agent_runtime.adapters.aws.dynamodb). Only META items carry both attributes: each
# admission sets them, in the update of META's counter it makes anyway.
INSTANCES_INDEX = "instances"
INSTANCES_AGENT_ATTRIBUTE = "agent_name"
INSTANCES_ACTIVE_ATTRIBUTE = "active_at"
INSTANCES_INDEX_PROJECTED = ("next_seq", "head")

# EventBridge: events of this detail-type on the runtime's bus are dispatched to instances
# (any source; the bus is the runtime's own). Detail: `protocol.DispatchEventDetail`.
DISPATCH_DETAIL_TYPE = "agent-runtime.dispatch"

# The sweeper runs every SWEEP_INTERVAL_SECONDS and re-wakes instances whose work has made
# no progress for SWEEP_IDLE_SECONDS, at most SWEEP_LIMIT of them per run (oldest first).
SWEEP_INTERVAL_SECONDS = 300
SWEEP_IDLE_SECONDS = 300
SWEEP_LIMIT = 2000

# The event log (agent_runtime.events, agent_runtime.streaming). Events expire after
# EVENT_TTL_SECONDS (ENV_EVENT_TTL overrides it). Text and thinking deltas are coalesced:
# the worker flushes what it has every EVENT_FLUSH_LIVE_SECONDS while a WebSocket client
# watches the instance, every EVENT_FLUSH_QUIET_SECONDS otherwise, and as soon as
# EVENT_FLUSH_BYTES of deltas wait. Tool calls, results and endings are flushed at once.
EVENT_TTL_SECONDS = 24 * 3600
EVENT_FLUSH_LIVE_SECONDS = 0.2
EVENT_FLUSH_QUIET_SECONDS = 1.0
EVENT_FLUSH_BYTES = 4096
# WebSocket connections are forgotten this long after they were made (API Gateway
# closes any connection after 2 hours).
CONNECTION_TTL_SECONDS = 3 * 3600


ENV_EVENT_FLUSH_LIVE = "AGENT_RUNTIME_EVENT_FLUSH_LIVE_SECONDS"
ENV_EVENT_FLUSH_QUIET = "AGENT_RUNTIME_EVENT_FLUSH_QUIET_SECONDS"


def event_flush_options() -> dict[str, float]:
    """The flush intervals, where the environment overrides them (for `EventStream`)."""
    options: dict[str, float] = {}
    for name, option in ((ENV_EVENT_FLUSH_LIVE, "live_seconds"), (ENV_EVENT_FLUSH_QUIET, "quiet_seconds")):
        if raw := os.environ.get(name):
            options[option] = float(raw)
    return options


def event_ttl_seconds() -> float:
    raw = os.environ.get(ENV_EVENT_TTL)
    return float(raw) if raw else float(EVENT_TTL_SECONDS)


# While a model call or a tool runs, the attempt reads its submission's abort flag this
# often, so an abort stops a long stream (and tells a long tool) within about this long;
# at step boundaries the fenced writes see it anyway. One strongly consistent read of one
# attribute per poll, and none for calls shorter than one interval. 0 turns polling off.
ABORT_POLL_SECONDS = 1.0
ENV_ABORT_POLL = "AGENT_RUNTIME_ABORT_POLL_SECONDS"


def abort_poll_seconds() -> float:
    raw = os.environ.get(ENV_ABORT_POLL)
    return float(raw) if raw else ABORT_POLL_SECONDS


# Traces (agent_runtime.tracing): ENV_TRACING names the sinks, comma-separated: "table"
# keeps finished spans in the instance table for TRACE_TTL_SECONDS (the trace route reads
# them; the local stack sets it), "xray" sends them to AWS X-Ray's OTLP endpoint. Unset
# or empty: tracing is off and OpenTelemetry is never imported.
ENV_TRACING = "AGENT_RUNTIME_TRACING"
TRACING_SINKS = frozenset({"table", "xray"})
TRACE_TTL_SECONDS = 24 * 3600


def tracing_sinks(raw: str) -> frozenset[str]:
    """The sinks `raw` (ENV_TRACING's value) names; an unknown one is refused loudly."""
    sinks = frozenset(s.strip() for s in raw.split(",") if s.strip() and s.strip() != "off")
    unknown = sinks - TRACING_SINKS
    if unknown:
        raise ValueError(f"{ENV_TRACING}: unknown sink(s) {sorted(unknown)} (known: {sorted(TRACING_SINKS)})")
    return sinks

# The worker reports each settled submission as CloudWatch metrics (embedded metric
# format, written to its log: no API call) in this namespace, with the dimension
# ``service`` (``POWERTOOLS_SERVICE_NAME``). ``POWERTOOLS_METRICS_NAMESPACE`` overrides it.
METRICS_NAMESPACE = "AgentRuntime"
SERVICE_NAME = "agent-runtime"


# Worker timing. The lease must outlive one worker step; the queue's visibility timeout
# must be at least the worker's timeout so a live worker's message is not redelivered.
WORKER_TIMEOUT_SECONDS = 900
# A lease outlives any live worker, so only a crashed attempt ever loses it.
LEASE_SECONDS = WORKER_TIMEOUT_SECONDS
WORKER_SAFETY_MARGIN_MS = 30_000
QUEUE_VISIBILITY_SECONDS = 6 * WORKER_TIMEOUT_SECONDS
DLQ_MAX_RECEIVE_COUNT = 5


@dataclass(frozen=True, kw_only=True)
class Settings:
    table: str
    queue_url: str
    bucket: str
    agents: str = "agents"
    state_machine_arn: str | None = None
    event_bus: str | None = None
    secrets_key: str | None = None
    schedule_group: str | None = None
    scheduler_role_arn: str | None = None
    effect_target_arn: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        try:
            return cls(
                table=os.environ[ENV_TABLE],
                queue_url=os.environ[ENV_QUEUE_URL],
                bucket=os.environ[ENV_BUCKET],
                agents=os.environ.get(ENV_AGENTS, "agents"),
                state_machine_arn=os.environ.get(ENV_STATE_MACHINE_ARN),
                event_bus=os.environ.get(ENV_EVENT_BUS),
                secrets_key=os.environ.get(ENV_SECRETS_KEY),
                schedule_group=os.environ.get(ENV_SCHEDULE_GROUP),
                scheduler_role_arn=os.environ.get(ENV_SCHEDULER_ROLE_ARN),
                effect_target_arn=os.environ.get(ENV_EFFECT_TARGET_ARN),
            )
        except KeyError as missing:
            raise RuntimeError(f"environment variable {missing} is not set") from None
