"""``transfer_to_<snake name>``: hand the session to another agent (`agent_runtime.handoffs`).

Argument-less; the result tells the model the transfer happened, and the call asks the
step machine to move the session to the target once the turn's results are recorded.
One transfer per turn: a second in the same turn is a tool error.
"""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.definition import AgentConfig, AgentProfile
from agent_runtime.handoffs import targets, transfer_tool
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec


class Transfer:
    silent = False

    def __init__(self, target: AgentProfile) -> None:
        self.target = target.name
        about = target.handoff_description or target.description
        self.spec = ToolSpec(
            name=transfer_tool(target.name),
            description=f"Hand this conversation to {target.name}: {about}",
            parameters={"type": "object", "properties": {}, "additionalProperties": False},
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        return self.replayed(call, ToolResultPart(call_id=call.id, name=call.name, content=f"Transferred to {self.target}."))

    def replayed(self, call: ToolCallPart, part: ToolResultPart) -> Handled:
        """What a recorded result of this call asks (after a crash): the same transfer."""
        return Handled(part, handoff=None if part.is_error else self.target)


class HandoffFamily(PlainFamily):
    def __init__(self, config: AgentConfig) -> None:
        self.transfers = [Transfer(p) for p in targets(config.handoffs)]

    def builtins(self) -> Sequence[Builtin]:
        return self.transfers
