"""Model providers by ``"provider/model"`` prefix; see `base` for the protocol."""

import sys
import types
from typing import TYPE_CHECKING

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

if TYPE_CHECKING:
    ALLOW_MODEL_REQUESTS: bool


class _ModelsModule(types.ModuleType):
    """This package's module type: ``ALLOW_MODEL_REQUESTS`` is a property that reads and
    writes the one flag in `base`, which the providers and `allow_model_requests` use.

    A module attribute would be a copy (assigning it would not reach the providers) and
    a module ``__getattr__`` only serves reads: ``agent_runtime.models.ALLOW_MODEL_REQUESTS
    = False`` would store a second flag beside it that nothing checks.
    """

    @property
    def ALLOW_MODEL_REQUESTS(self) -> bool:
        return base.ALLOW_MODEL_REQUESTS

    @ALLOW_MODEL_REQUESTS.setter
    def ALLOW_MODEL_REQUESTS(self, allow: bool) -> None:
        base.ALLOW_MODEL_REQUESTS = allow


sys.modules[__name__].__class__ = _ModelsModule


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
