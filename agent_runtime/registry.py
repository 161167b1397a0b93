"""Find the application's agents: one module per agent in a package folder.

The agent name is the module's file name with ``_`` turned into ``-``
(``agents/support_assistant.py`` -> ``support-assistant``). The module's `agent`
attribute is its `AgentDefinition`; optional module-level `route` and `websocket`
callables expose it over HTTP and WebSocket, `on_dispatch` handles dispatched input.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from agent_runtime.children import agent_name_of
from agent_runtime.definition import (
    PROBE_ID,
    AgentConfig,
    AgentContext,
    AgentDefinition,
    AgentProfile,
    create_agent,
)
from agent_runtime.effects import Effect
from agent_runtime.errors import AgentNotFound, DefinitionError
from agent_runtime.handoffs import check_handoffs, reachable
from agent_runtime.ids import validate_agent_name


@dataclass(frozen=True)
class RegisteredAgent:
    name: str
    definition: AgentDefinition
    route: Callable[..., Any] | None = None
    websocket: Callable[..., Any] | None = None
    on_dispatch: Callable[..., Any] | None = None
    module: str | None = None
    #: The module's ``@effect`` functions (an agent's ``effects=[...]`` add to them).
    effects: tuple[Effect, ...] = ()
    #: Set for a subagent's agent: the profile its children run (no hooks of its own;
    #: its instances are reached through their parents).
    profile: AgentProfile | None = None


class Registry:
    """Agents by name. Build with `discover(folder)` or `Registry({...})` in tests."""

    def __init__(self, agents: dict[str, RegisteredAgent] | None = None) -> None:
        self._agents = dict(agents or {})

    def add(self, name: str, definition: AgentDefinition, **hooks: Any) -> RegisteredAgent:
        validate_agent_name(name)
        entry = RegisteredAgent(name=name, definition=definition, **hooks)
        self._agents[name] = entry
        self.add_subagents(entry)
        return entry

    def add_subagents(self, entry: RegisteredAgent) -> None:
        """Register the agents an agent's children run: one per subagent profile (its name,
        ``_`` -> ``-``), recursively. A profile without a model runs on its parent's."""
        config = entry.definition.configure(AgentContext(id=PROBE_ID, agent=entry.name))
        check_handoffs(config)
        # A session handed to a profile runs that profile's subagents too.
        owners: list[AgentConfig | AgentProfile] = [config, *reachable(config)]
        profiles = [s.profile for o in owners for s in o.subagents] + [t.profile for o in owners for t in o.agent_tools]
        exposed = {t.profile.name: t.definition for o in owners for t in o.agent_tools if t.definition is not None}
        for profile in profiles:
            name = agent_name_of(profile.name)
            known = self._agents.get(name)
            if known is not None:
                if known.profile != profile:  # one name, one definition: never a silent mix-up
                    raise DefinitionError(
                        "subagents",
                        f"subagent {profile.name!r} of {entry.name!r} runs as agent {name!r}, "
                        "which another agent or profile already defines differently",
                    )
                continue
            model = profile.model or config.model
            definition = exposed.get(profile.name) or create_agent({"profile": profile, "model": model})
            child = RegisteredAgent(name=name, definition=definition, profile=profile)
            self._agents[name] = child
            self.add_subagents(child)

    def get(self, name: str) -> RegisteredAgent:
        try:
            return self._agents[name]
        except KeyError:
            raise AgentNotFound(f"no agent named {name!r}", details={"name": name}) from None

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __iter__(self) -> Iterator[RegisteredAgent]:
        return iter(self._agents.values())

    def names(self) -> list[str]:
        return sorted(self._agents)


def agent_name_for(module_file: str) -> str:
    return Path(module_file).stem.replace("_", "-")


def _entry_from_module(name: str, module: ModuleType) -> RegisteredAgent:
    definition = getattr(module, "agent", None)
    if not isinstance(definition, AgentDefinition):
        raise DefinitionError("agent", f"module {module.__name__} must define `agent = create_agent(...)`")
    return RegisteredAgent(
        name=name,
        definition=definition,
        route=getattr(module, "route", None),
        websocket=getattr(module, "websocket", None),
        on_dispatch=getattr(module, "on_dispatch", None),
        module=module.__name__,
        effects=tuple(v for v in vars(module).values() if isinstance(v, Effect)),
    )


def discover(folder: str | Path = "agents") -> Registry:
    """Import every ``*.py`` module (not starting with ``_``) of `folder` as an agent.

    `folder` is a path; if it is an importable package (has ``__init__.py`` and its
    parent is on ``sys.path``) its modules are imported by package name, otherwise
    each file is loaded on its own under a private module name.
    """
    path = Path(folder).resolve()
    if not path.is_dir():
        raise DefinitionError("agents", f"agents folder {str(folder)!r} does not exist")
    registry = Registry()
    package = path.name if (path / "__init__.py").exists() else None
    if package and str(path.parent) not in sys.path:
        sys.path.insert(0, str(path.parent))
    for file in sorted(path.glob("*.py")):
        if file.name.startswith("_"):
            continue
        name = agent_name_for(file.name)
        validate_agent_name(name)
        if package:
            module = importlib.import_module(f"{package}.{file.stem}")
        else:
            spec = importlib.util.spec_from_file_location(f"agent_runtime_agents.{file.stem}", file)
            assert spec and spec.loader
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        registry._agents[name] = _entry_from_module(name, module)
    for entry in list(registry):
        registry.add_subagents(entry)
    return registry
