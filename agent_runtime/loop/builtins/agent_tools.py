"""Agents as tools (`AgentProfile.as_tool`): the calling agent stays in control, the callee
runs isolated and durably as a blocking child (the `task` machinery: its own instance,
seeing only the call's ``input``; the parent waits without a Lambda, and the outcome
comes back as the call's recorded result).

The `output_extractor` shapes what the caller's model reads. It runs when the recorded
outcome is turned into the turn's result (`replayed`), in the caller's process, on
``TaskOutcome(text, data)`` (``data``: the callee's validated result when its profile has
a result schema), so it must be a pure function of the outcome.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime.children import TaskOutcome
from agent_runtime.definition import AgentTool, Subagent
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.builtins.task import ChildRefused, start_child, started, validated
from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec


class AgentToolArguments(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    input: str = Field(min_length=1)


class AgentToolCall:
    silent = False

    def __init__(self, agent_tool: AgentTool, child_runs: ChildRuns) -> None:
        self.agent_tool = agent_tool
        self.child_runs = child_runs
        self.spec = ToolSpec(
            name=agent_tool.name,
            description=agent_tool.description,
            parameters={
                "type": "object",
                "properties": {"input": {"type": "string", "minLength": 1, "description": "What to ask, with everything needed."}},
                "required": ["input"],
                "additionalProperties": False,
            },
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(AgentToolArguments, call)
        if isinstance(args, Handled):
            return args
        spec = Subagent(profile=self.agent_tool.profile, blocking=True)
        try:
            link = await start_child(self.child_runs, ctx, spec, args.input, call.id, tool=call.name)
        except ChildRefused as exc:
            return Handled(error_result(call, str(exc)))
        return started(call, link, "")

    def replayed(self, call: ToolCallPart, part: ToolResultPart) -> Handled:
        extractor = self.agent_tool.output_extractor
        if part.is_error or extractor is None:
            return Handled(part)
        schema = self.agent_tool.profile.result
        try:
            data = schema.model_validate_json(part.content) if schema is not None else None
            value = extractor(TaskOutcome(text=part.content, data=data))
        except (ValidationError, Exception) as exc:
            return Handled(error_result(call, f"{call.name}: the output extractor failed: {type(exc).__name__}: {exc}"))
        if isinstance(value, BaseModel):
            value = value.model_dump(mode="json")
        content = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
        return Handled(part.model_copy(update={"content": content}))


class AgentToolsFamily(PlainFamily):
    def __init__(self, agent_tools: Sequence[AgentTool], child_runs: ChildRuns) -> None:
        self.calls = [AgentToolCall(t, child_runs) for t in agent_tools]

    def builtins(self) -> Sequence[Builtin]:
        return self.calls
