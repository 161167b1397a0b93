"""Structured instructions (DeepAgents): ``instructions(purpose=[...], routine=[...])``.

    instructions=instructions(purpose=["You route customers."], routine=["Ask one question at a time."])

renders as markdown::

    # Purpose
    You route customers.

    # Routine
    1. Ask one question at a time.

The variants also describe the agents the session can be handed to (the agent's
``handoffs``, with their ``handoff_description``), for the role the agent plays:

    instructions.swarm(...)                 peers that pass the conversation among themselves
    instructions.supervisor(...)            a supervisor that hands work to specialists
    instructions.supervisor_subagent(...)   a specialist that hands back when done
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent_runtime.errors import DefinitionError

Style = Literal["plain", "swarm", "supervisor", "supervisor_subagent"]

_ROLE = {
    "swarm": (
        "You are one of several agents that serve the same conversation. When another agent "
        "is better placed to help, hand the conversation to it with its transfer tool and "
        "say nothing more yourself; the user should not have to repeat anything."
    ),
    "supervisor": (
        "You supervise the specialists below. Decide who should handle the request, hand the "
        "conversation to them with their transfer tool, and take it back to close the "
        "conversation once they are done."
    ),
    "supervisor_subagent": (
        "You are a specialist working for a supervisor. Do your part well; when it is done, "
        "or when the request is outside your part, hand the conversation back."
    ),
}


@dataclass(frozen=True)
class StructuredInstructions:
    purpose: tuple[str, ...]
    routine: tuple[str, ...] = ()
    style: Style = "plain"

    def render(self, handoffs: Sequence[Any] = ()) -> str:
        """The markdown; `handoffs` (profiles) are described for the variants."""
        sections: list[str] = []
        if self.style != "plain":
            sections.append(f"# Role\n{_ROLE[self.style]}")
        sections.append("# Purpose\n" + "\n".join(self.purpose))
        if self.routine:
            sections.append("# Routine\n" + "\n".join(f"{n}. {step}" for n, step in enumerate(self.routine, 1)))
        if self.style != "plain" and handoffs:
            from agent_runtime.handoffs import transfer_tool

            lines = [
                f"- **{p.name}** (`{transfer_tool(p.name)}`): {p.handoff_description or p.description}" for p in handoffs
            ]
            title = "# Hand back to" if self.style == "supervisor_subagent" else "# Agents you can hand the conversation to"
            sections.append(title + "\n" + "\n".join(lines))
        return "\n\n".join(sections)


def _lines(value: Any, field: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Sequence) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise DefinitionError("instructions", f"instructions({field}=...) takes a str or a list of str")


class _Instructions:
    def __call__(self, *, purpose: Sequence[str] | str, routine: Sequence[str] | str = ()) -> StructuredInstructions:
        return self._make(purpose, routine, "plain")

    def swarm(self, *, purpose: Sequence[str] | str, routine: Sequence[str] | str = ()) -> StructuredInstructions:
        return self._make(purpose, routine, "swarm")

    def supervisor(self, *, purpose: Sequence[str] | str, routine: Sequence[str] | str = ()) -> StructuredInstructions:
        return self._make(purpose, routine, "supervisor")

    def supervisor_subagent(self, *, purpose: Sequence[str] | str, routine: Sequence[str] | str = ()) -> StructuredInstructions:
        return self._make(purpose, routine, "supervisor_subagent")

    @staticmethod
    def _make(purpose: Any, routine: Any, style: Style) -> StructuredInstructions:
        lines = _lines(purpose, "purpose")
        if not lines:
            raise DefinitionError("instructions", "instructions(purpose=...) needs at least one line")
        return StructuredInstructions(lines, _lines(routine, "routine") if routine else (), style)


instructions = _Instructions()

__all__ = ["StructuredInstructions", "instructions"]
