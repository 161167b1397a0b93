"""The stack's configuration, read from CDK context.

Every field has a default; override any of them in ``cdk.json`` (``"context"``) or on
the command line (``cdk deploy -c stage=prod -c cors_origins=https://app.example.com``).
Command-line values arrive as strings; they are parsed the same way as typed values.

| context key            | default                        | meaning                                                  |
| ---------------------- | ------------------------------ | -------------------------------------------------------- |
| ``stage``              | ``dev``                        | ``dev`` or ``prod``; prod keeps data (RETAIN, deletion protection) |
| ``log_retention_days`` | ``30``                         | CloudWatch Logs retention; a value CloudWatch accepts    |
| ``removal_policy``     | ``destroy`` (dev), ``retain`` (prod) | what deleting the stack does to data and logs; prod refuses ``destroy`` |
| ``log_level``          | ``INFO``                       | ``POWERTOOLS_LOG_LEVEL`` of every function               |
| ``model_id``           | ``anthropic/claude-haiku-4-5`` | default ``provider/model`` for agents that name none     |
| ``api_memory_mb``      | ``512``                        | HTTP and WebSocket functions                             |
| ``worker_memory_mb``   | ``1024``                       | the worker                                               |
| ``small_memory_mb``    | ``256``                        | sweeper and EventBridge dispatch                         |
| ``cors_origins``       | none                           | allowed browser origins (list or comma-separated); none = no CORS |
| ``model_secret``       | none                           | ARN or name of the secret holding the model API key; none = the stack creates an empty one |
| ``api_rate_limit``     | ``100``                        | requests per second each API stage (HTTP, WebSocket) accepts, steady; more get 429 |
| ``api_burst_limit``    | ``200``                        | requests each API stage accepts in a burst               |
| ``worker_concurrency`` | ``50``                         | most worker invocations the queue runs at once (2 to 1000): bounds parallel model calls; ``0`` = no bound |
| ``bedrock_models``     | none                           | Bedrock model ids (or inference profiles) the worker may invoke (list or comma-separated); none = no Bedrock |
| ``websocket``          | ``auto``                       | ``true``/``false``, or ``auto``: only if ``functions/websocket.py`` exists |
| ``bundle``             | ``true``                       | ``false`` skips installing dependencies and compiling bytecode (tests: synthesis in seconds) |
| ``tracing``            | none                           | trace sinks (list or comma-separated): ``xray`` (OTLP to X-Ray; needs CloudWatch Transaction Search), ``table`` (spans kept for the trace route); none = off |
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agent_runtime import settings

# The retention periods CloudWatch Logs accepts.
LOG_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip


class StackConfig(BaseModel):
    """Validated stack settings; see the module docstring for each key."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Literal["dev", "prod"] = "dev"
    log_retention_days: int = 30
    removal_policy: Literal["destroy", "retain"] | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    model_id: str = "anthropic/claude-haiku-4-5"
    api_memory_mb: int = Field(default=512, ge=128, le=10240)
    worker_memory_mb: int = Field(default=1024, ge=128, le=10240)
    small_memory_mb: int = Field(default=256, ge=128, le=10240)
    cors_origins: tuple[str, ...] = ()
    api_rate_limit: float = Field(default=100, gt=0)
    api_burst_limit: int = Field(default=200, ge=0, le=5000)
    worker_concurrency: int = Field(default=50, ge=0, le=1000)
    model_secret: str | None = None
    bedrock_models: tuple[str, ...] = ()
    websocket: bool | Literal["auto"] = "auto"
    bundle: bool = True
    tracing: tuple[str, ...] = ()

    @field_validator("worker_concurrency")
    @classmethod
    def _concurrency(cls, value: int) -> int:
        if value == 1:
            raise ValueError("must be 0 (no bound) or from 2 to 1000: SQS event sources run at least 2")
        return value

    @property
    def metrics_namespace(self) -> str:
        """Where the worker's submission metrics go: one namespace per stage."""
        return f"{settings.METRICS_NAMESPACE}/{self.stage}"

    @field_validator("cors_origins", "bedrock_models", "tracing", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if origin != "*" and not origin.startswith(("https://", "http://")):
                raise ValueError(f"CORS origin {origin!r} must start with https:// or http://")
        return value

    @field_validator("bedrock_models")
    @classmethod
    def _check_bedrock_models(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for model in value:
            if not model or not all(c.isalnum() or c in ".-:_" for c in model):
                raise ValueError(f"Bedrock model id {model!r} is not a model id like anthropic.claude-3-5-haiku-20241022-v1:0")
        return value

    @field_validator("tracing")
    @classmethod
    def _check_tracing(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(sorted(settings.tracing_sinks(",".join(value))))  # refuses an unknown sink

    @field_validator("log_retention_days")
    @classmethod
    def _check_retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"log_retention_days must be one of {LOG_RETENTION_DAYS}")
        return value

    @field_validator("model_secret", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("websocket", mode="before")
    @classmethod
    def _parse_websocket(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() == "auto":
            return "auto"
        return value

    @model_validator(mode="after")
    def _prod_keeps_data(self) -> StackConfig:
        if self.stage == "prod" and self.removal_policy == "destroy":
            raise ValueError("removal_policy 'destroy' is refused on stage 'prod'")
        return self

    @property
    def retain(self) -> bool:
        """Whether data and logs outlive the stack."""
        if self.removal_policy is None:
            return self.stage == "prod"
        return self.removal_policy == "retain"

    @classmethod
    def from_context(cls, node: Any) -> StackConfig:
        """Read every field from ``node.try_get_context``; absent keys keep their default."""
        values = {
            name: value
            for name in cls.model_fields
            if (value := node.try_get_context(name)) is not None
        }
        return cls.model_validate(values)
