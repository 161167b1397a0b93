"""Hooks: application code at fixed points of the step machine.

    agent = create_agent(lambda ctx: dict(
        model=..., hooks=Hooks(filter_messages=drop_old_tool_noise, after_tool_call_failure=log_failure)))

Each hook may be a plain or an ``async`` function and gets a `HookContext` last:

    prefilter_llm_history(messages, ctx) -> messages   the history, before anything else looks at it
    filter_messages(messages, ctx) -> messages         what the model is sent this turn
    before_create_message(message, ctx) -> message     the model's reply, before it is kept
    after_create_message(message, ctx)                 the model's reply, as kept
    before_store_tool_result(call, result, ctx) -> result
    after_tool_call_success(call, result, ctx)
    after_tool_call_failure(call, result, ctx)
    prepare_handoff(messages, ctx)                     before the session moves to another agent
    prepare_end(result, ctx) -> result                 before the submission ends completed

A hook returning None keeps what it was given. `ctx.context` is the session's context
(`ToolContext.context`): a hook may change it, and the change is journaled with the turn.
Hooks that change what the model sees work on a copy: stored history is never rewritten,
and a tool call is never separated from its result (what a filter leaves unpaired is
dropped from the request). A hook that raises fails the submission with a `hook_error`
naming the hook (another attempt would raise again): never a silent skip.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from agent_runtime.errors import DefinitionError, UserError
from agent_runtime.ids import InstanceRef
from agent_runtime.tools import SchedulesEffects, Surroundings


class HookError(UserError):
    """A hook raised."""

    type = "hook_error"


@dataclass
class HookContext(SchedulesEffects):
    instance: InstanceRef
    session: str
    submission_id: str
    #: The agent that owns the session (its name).
    agent: str | None
    turn: int
    context: dict[str, Any] = field(default_factory=dict)
    #: What the attempt's tools reach too; hooks schedule effects through it.
    surroundings: Surroundings | None = field(default=None, repr=False)

    def _around(self) -> Surroundings:
        if self.surroundings is None:
            raise UserError("this hook context cannot schedule effects (a context made by hand?)")
        return self.surroundings

    def _effects_scope(self) -> str:
        return f"hook-{self.turn}"


@dataclass
class EndResult:
    """What `prepare_end` sees and may change: the submission's result."""

    text: str | None
    data: Any = None


Hook = Callable[..., Any]


@dataclass(frozen=True, kw_only=True)
class Hooks:
    prefilter_llm_history: Hook | None = None
    filter_messages: Hook | None = None
    before_create_message: Hook | None = None
    after_create_message: Hook | None = None
    before_store_tool_result: Hook | None = None
    after_tool_call_success: Hook | None = None
    after_tool_call_failure: Hook | None = None
    prepare_handoff: Hook | None = None
    prepare_end: Hook | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and not callable(value):
                raise DefinitionError("hooks", f"{f.name} must be a function")


__all__ = ["EndResult", "Hook", "HookContext", "HookError", "Hooks"]
