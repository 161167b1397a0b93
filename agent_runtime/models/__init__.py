"""Model providers by ``"provider/model"`` prefix; see `base` for the protocol."""

from agent_runtime.models import base
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    ToolCallStarted,
    ToolChoice,
    ToolSpec,
    allow_model_requests,
    check_model_requests_allowed,
    register_provider,
    resolve_model,
)


def __getattr__(name: str) -> object:
    # `agent_runtime.models.ALLOW_MODEL_REQUESTS` reads the live flag in `base`.
    if name == "ALLOW_MODEL_REQUESTS":
        return base.ALLOW_MODEL_REQUESTS
    raise AttributeError(name)


__all__ = [
    "Model",
    "ModelEvent",
    "ModelRequest",
    "ModelResponse",
    "ModelSettings",
    "ResponseDone",
    "TextDelta",
    "ThinkingDelta",
    "ToolCallStarted",
    "ToolChoice",
    "ToolSpec",
    "allow_model_requests",
    "check_model_requests_allowed",
    "register_provider",
    "resolve_model",
]
