"""Handoffs: an agent hands its session to another (DeepAgents' ``transfer_to_<name>``).

An agent's (or a profile's) ``handoffs=[billing, lambda: scheduling]`` name profiles it may
hand the session to; a function of no arguments is resolved when first needed, so two
profiles may name each other. Each target becomes a built-in tool
``transfer_to_<snake_case(name)>`` (``BillingAgent`` -> ``transfer_to_billing_agent``),
described by the target's ``handoff_description`` (else its ``description``).

After a transfer, the target **owns the session**: it answers within the same
submission, sees the whole conversation, and takes the session's later prompts. The
owner is the session's state (`SessionState.owner`, the profile's name), journaled with
the turn and stored with the session. `owner_config` is the configuration an owner runs
with: the profile's fields, on the instance agent's model when the profile has none, with
the agent's durability and variables. The owner is looked up among the profiles reachable
by handoffs from the agent, so a name no longer reachable (the agent changed since) falls
back to the agent itself.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from typing import Any

from agent_runtime.children import snake_case
from agent_runtime.definition import AgentConfig, AgentProfile, build_config
from agent_runtime.errors import DefinitionError

TRANSFER_PREFIX = "transfer_to_"

log = logging.getLogger("agent_runtime")


def transfer_tool(name: str) -> str:
    return TRANSFER_PREFIX + snake_case(name)


def targets(handoffs: tuple[Any, ...], *, where: str = "handoffs") -> list[AgentProfile]:
    """The profiles `handoffs` names, functions resolved; `DefinitionError` for anything else
    and for two targets whose transfer tools would share a name."""
    found: list[AgentProfile] = []
    for item in handoffs:
        profile = item if isinstance(item, AgentProfile) else _call(item, where)
        if not isinstance(profile, AgentProfile):
            raise DefinitionError(where, f"a handoff function returned {type(profile).__name__}, not a profile")
        found.append(profile)
    tools = [transfer_tool(p.name) for p in found]
    clashes = sorted({t for t in tools if tools.count(t) > 1})
    if clashes:
        raise DefinitionError(where, f"two handoffs share the tool name(s) {', '.join(clashes)}")
    return found


def _call(item: Any, where: str) -> Any:
    try:
        return item()
    except Exception as exc:
        raise DefinitionError(where, f"a handoff function raised {type(exc).__name__}: {exc}") from exc


def reachable(root: AgentConfig) -> Iterator[AgentProfile]:
    """Every profile reachable by handoffs from `root`, each once, nearest first."""
    seen: set[str] = set()
    queue = targets(root.handoffs)
    while queue:
        profile = queue.pop(0)
        if profile.name in seen:
            continue
        seen.add(profile.name)
        yield profile
        queue.extend(targets(profile.handoffs, where=f"handoffs of {profile.name}"))


def check_handoffs(root: AgentConfig) -> None:
    """Resolve every handoff reachable from `root` (the agent's module is loaded by now):
    `DefinitionError` for a bad target or a clash of transfer tool names."""
    for profile in reachable(root):
        config = build_config({"profile": profile, "model": profile.model or root.model})
        names = {t.name for t in config.tools}
        clash = names & {transfer_tool(p.name) for p in targets(profile.handoffs)}
        if clash:
            raise DefinitionError("handoffs", f"{profile.name}: tools {sorted(clash)} clash with its transfer tools")


#: A profile's configuration, built once per process (profiles are module-level values).
_BUILT: dict[tuple[int, str], tuple[AgentProfile, AgentConfig]] = {}


def owner_config(root: AgentConfig, owner: str | None) -> AgentConfig:
    """The configuration the session's `owner` runs with (`root` for the agent itself)."""
    if owner is None or owner == root.name:
        return root
    profile = next((p for p in reachable(root) if p.name == owner), None)
    if profile is None:
        log.warning("session owner is no longer reachable by handoffs; the agent takes over", extra={"owner": owner})
        return root
    key = (id(profile), root.model_name)
    if key not in _BUILT or _BUILT[key][0] is not profile:
        _BUILT[key] = (profile, build_config({"profile": profile, "model": profile.model or root.model}))
    return dataclasses.replace(_BUILT[key][1], durability=root.durability, variables=root.variables)


def owner_name(config: AgentConfig, fallback: str) -> str:
    return config.name or fallback


__all__ = ["TRANSFER_PREFIX", "check_handoffs", "owner_config", "owner_name", "reachable", "targets", "transfer_tool"]
