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
ENV_EVENT_BUS = "AGENT_RUNTIME_EVENT_BUS"
ENV_MODEL_SECRET_ARN = "AGENT_RUNTIME_MODEL_SECRET_ARN"
ENV_EVENT_TTL = "AGENT_RUNTIME_EVENT_TTL_SECONDS"

# Resource names used by the local stack (the deployed stack lets CloudFormation name them).
LOCAL_TABLE = "agent-runtime"
LOCAL_QUEUE = "agent-runtime-wakeups.fifo"
LOCAL_DLQ = "agent-runtime-wakeups-dlq.fifo"
LOCAL_BUCKET = "agent-runtime-local"

# DynamoDB key schema (see agent_runtime.adapters.aws.dynamodb for the item layout).
TABLE_PARTITION_KEY = "pk"
TABLE_SORT_KEY = "sk"
TABLE_TTL_ATTRIBUTE = "expires_at"

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
            )
        except KeyError as missing:
            raise RuntimeError(f"environment variable {missing} is not set") from None
