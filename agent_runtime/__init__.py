"""agent-runtime: durable, addressable AI agents on AWS serverless.

Define an agent in ``agents/<name>.py`` with `create_agent`; every ``(name, id)``
is a durable instance with an ordered inbox, sessions and history.
"""

from agent_runtime.definition import (
    AgentConfig,
    AgentContext,
    AgentDefinition,
    AgentProfile,
    Durability,
    Resumable,
    Subagent,
    create_agent,
    define_agent_profile,
    subagent,
)
from agent_runtime.definition_checks import set_models
from agent_runtime.effects import effect
from agent_runtime.errors import AgentRuntimeError, DefinitionError, UserError
from agent_runtime.hooks import EndResult, HookContext, Hooks
from agent_runtime.ids import InstanceRef
from agent_runtime.instructions import instructions
from agent_runtime.messages import Message
from agent_runtime.models.base import Model, ModelRequest, ModelResponse, allow_model_requests
from agent_runtime.models.cost import Budget, set_prices
from agent_runtime.models.test import FunctionModel, ScriptedModel, ToolCall
from agent_runtime.subprompts import Subprompt, subprompt
from agent_runtime.tools import ToolContext, ToolFailure, tool
from agent_runtime.variables import Secret, Variable, env

__all__ = [
    "AgentConfig",
    "AgentContext",
    "AgentDefinition",
    "AgentProfile",
    "AgentRuntimeError",
    "Budget",
    "DefinitionError",
    "DispatchContext",
    "Durability",
    "EndResult",
    "FunctionModel",
    "HookContext",
    "Hooks",
    "InstanceRef",
    "Message",
    "Model",
    "ModelRequest",
    "ModelResponse",
    "Resumable",
    "RouteRequest",
    "ScriptedModel",
    "Secret",
    "Subagent",
    "Subprompt",
    "TaskFailed",
    "TaskOutcome",
    "ToolCall",
    "ToolContext",
    "ToolFailure",
    "UserError",
    "Variable",
    "allow_model_requests",
    "create_agent",
    "define_agent_profile",
    "effect",
    "env",
    "instructions",
    "set_models",
    "set_prices",
    "subagent",
    "subprompt",
    "tool",
]


def __getattr__(name: str) -> object:
    # Imported on first use: route hooks live with the HTTP surface, dispatch handlers
    # with the loop.
    if name == "RouteRequest":
        from agent_runtime.routing import RouteRequest

        return RouteRequest
    if name in ("DispatchContext", "TaskFailed", "TaskOutcome"):
        from agent_runtime.loop import dispatch

        return getattr(dispatch, name)
    raise AttributeError(name)
