"""How an agent delegates to a profile as a child (`agent_runtime.children`): blocking or
not, one-shot or resumable (`subagent(profile, blocking=..., resumable=Resumable(...))`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from agent_runtime.errors import DefinitionError

if TYPE_CHECKING:
    from agent_runtime.definition import AgentProfile


@dataclass(frozen=True, kw_only=True)
class Resumable:
    """A subagent whose children live on: the model creates one with `subagent_create`
    and talks to it again with `subagent_message` (each message queues in the child's
    FIFO and continues its session). `max_instances` bounds how many children of this
    subagent one parent instance may create. `parent_communication`: ``"implicit"``
    reports each finished message to the parent; ``"explicit"`` reports only what the
    child's tools send with `ctx.notify_parent(text)` (and a failure)."""

    max_instances: int = 1
    parent_communication: Literal["implicit", "explicit"] = "implicit"

    def __post_init__(self) -> None:
        count = self.max_instances
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise DefinitionError("subagents", "Resumable(max_instances=...) must be an int between 1 and 100")
        if self.parent_communication not in ("implicit", "explicit"):
            raise DefinitionError("subagents", 'Resumable(parent_communication=...) must be "implicit" or "explicit"')


@dataclass(frozen=True, kw_only=True)
class Subagent:
    """A profile as a subagent, and how `task` runs it: `blocking` (the default) waits for
    the child's outcome as the call's result; otherwise the call returns the child's
    reference at once and the outcome arrives later as a message (a `child_report`).
    With `resumable`, the model reaches it through `subagent_create` / `subagent_message`
    instead of `task`."""

    profile: AgentProfile
    blocking: bool = True
    resumable: Resumable | None = None

    @property
    def name(self) -> str:
        return self.profile.name


def subagent(profile: AgentProfile, *, blocking: bool = True, resumable: Resumable | None = None) -> Subagent:
    """``subagents=[researcher, subagent(monitor, blocking=False, resumable=Resumable(max_instances=2))]``."""
    from agent_runtime.definition import AgentProfile

    if not isinstance(profile, AgentProfile):
        raise DefinitionError("subagents", "subagent(...) takes a profile from define_agent_profile(...)")
    if not isinstance(blocking, bool):
        raise DefinitionError("subagents", "blocking must be True or False")
    if resumable is not None and not isinstance(resumable, Resumable):
        raise DefinitionError("subagents", "resumable must be Resumable(...) or None")
    if resumable is not None and blocking and resumable.parent_communication == "explicit":
        raise DefinitionError(
            "subagents",
            f"subagent {profile.name!r}: explicit parent communication needs blocking=False "
            "(a blocking call always gets the child's answer)",
        )
    return Subagent(profile=profile, blocking=blocking, resumable=resumable)


__all__ = ["Resumable", "Subagent", "subagent"]
