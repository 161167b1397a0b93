"""Agent and profile definitions: `create_agent(init)` and `define_agent_profile(...)`.

`init(ctx)` receives an `AgentContext` (`ctx.id`, `ctx.env`) and returns the agent's
configuration as a dict or an `AgentConfig`. A profile holds the same fields minus
the runtime ones (`durability`) and is used as a subagent or as the base of an agent
(``profile=...``; the agent's own fields override the profile's).

Mistakes raise `DefinitionError` at definition time, naming the field. A callable
`init` is probed once with ``AgentContext(id="definition-check")`` for that reason,
so it should be a pure function of its context (it runs again per instance).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import BaseModel

from agent_runtime.compaction import Compaction
from agent_runtime.definition_checks import FILE_TOOLS as FILE_TOOLS
from agent_runtime.definition_checks import (
    Instructions,
    _check_budget,
    _check_compaction,
    _check_file_tools,
    _check_handoffs,
    _check_hooks,
    _check_instructions,
    _check_max_turns,
    _check_model,
    _check_models,
    _check_result,
    _check_settings,
    _check_text,
    _check_tool_choice,
    _check_tool_name,
    _check_variables,
    _has_env,
    _kind,
    _subprompts,
    _unknown,
    project_models,
    project_models_key,
)
from agent_runtime.definition_checks import set_models as set_models
from agent_runtime.delegation import Resumable as Resumable
from agent_runtime.delegation import Subagent as Subagent
from agent_runtime.delegation import subagent as subagent
from agent_runtime.dual import Side, check_dual, dual_fields
from agent_runtime.effects import Effect, check_effects
from agent_runtime.errors import DefinitionError
from agent_runtime.hooks import Hooks
from agent_runtime.instructions import StructuredInstructions
from agent_runtime.models.base import Model, ModelSettings, ToolChoice
from agent_runtime.models.cost import Budget
from agent_runtime.models.fallback import FallbackModel
from agent_runtime.skills import Skill, check_skills
from agent_runtime.subprompts import Subprompt
from agent_runtime.tools import Tool, tool
from agent_runtime.variables import Declared
from agent_runtime.variables import render_instructions as render_env

RESERVED_TOOL_NAMES = frozenset({"task", "final_result", "subagent_create", "subagent_message", "load_skill"})
RESERVED_TOOL_PREFIXES = ("transfer_to_",)
PROBE_ID = "definition-check"
_PROFILE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,47}$")



@dataclass(frozen=True)
class AgentContext:
    """What `init(ctx)` and callable instructions see. Callable instructions also get the
    instance's plain `variables` and the session's `context` (`ctx.context`)."""

    id: str
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)  # read-only view: no copy per run
    agent: str | None = None
    variables: Mapping[str, str] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class Durability:
    """How hard the runtime tries: attempts per submission and its timeout in seconds."""

    retry: int = 10
    timeout: float = 3600.0

    def __post_init__(self) -> None:
        if not isinstance(self.retry, int) or not 1 <= self.retry <= 100:
            raise DefinitionError("durability.retry", "must be an int between 1 and 100")
        if not isinstance(self.timeout, int | float) or not 1 <= self.timeout <= 7 * 24 * 3600:
            raise DefinitionError("durability.timeout", "must be seconds between 1 and 604800")


@dataclass(frozen=True, kw_only=True)
class AgentProfile:
    """A reusable agent shape: a subagent, or the base of an agent."""

    name: str
    description: str
    instructions: Instructions | None = None
    model: str | Model | None = None
    tools: tuple[Tool, ...] = ()
    subagents: tuple[Subagent, ...] = ()
    result: type[BaseModel] | None = None
    tool_choice: ToolChoice = "auto"
    max_turns: int | None = None
    model_settings: ModelSettings | None = None
    variables: tuple[Declared, ...] = ()
    file_tools: tuple[str, ...] = ()
    #: What the model of an agent that may hand over to this one reads about it.
    handoff_description: str | None = None
    #: Profiles (or functions returning one, for cycles) this one may hand the session to.
    handoffs: tuple[HandoffTarget, ...] = ()
    agent_tools: tuple[AgentTool, ...] = ()
    subprompts: tuple[Subprompt, ...] = ()
    hooks: Hooks | None = None
    #: A two-sided profile (`agent_runtime.dual`), usable as a subagent.
    kind: Literal["agent", "dual_ai"] = "agent"
    side_a: Side | None = None
    side_b: Side | None = None
    max_session_turns: int | None = None

    def clone(self, **changes: Any) -> AgentProfile:
        """A copy with `changes` (validated like `define_agent_profile`); unspecified fields
        are inherited, handoffs shallow-copied."""
        return define_agent_profile(**{**_profile_fields(self), **changes})

    def as_tool(
        self,
        tool_name: str | None = None,
        tool_description: str | None = None,
        output_extractor: Callable[[Any], Any] | None = None,
    ) -> AgentTool:
        """This profile as a tool of another agent, which stays in control: each call runs
        the profile isolated (its own instance, a child of the caller's, seeing only the
        call's ``input``) and durably (a blocking child; its result journaled like any
        tool result). `output_extractor(outcome)` (``outcome.text``, ``outcome.data``: the
        validated result when the profile has a result schema) shapes what the caller's
        model reads; by default the answer's text (or its data as JSON)."""
        return AgentTool(
            profile=self,
            name=_check_tool_name(tool_name or snake_case_name(self.name), "tools"),
            description=tool_description or self.description,
            output_extractor=output_extractor,
        )


#: A handoff target: a profile, or a function of no arguments returning one (resolved
#: when first needed, so two agents may hand over to each other).
HandoffTarget = Any


def _profile_fields(profile: AgentProfile) -> dict[str, Any]:
    fields = {f.name: getattr(profile, f.name) for f in dataclasses.fields(profile)}
    fields["tools"] = [*fields.pop("tools"), *fields.pop("agent_tools"), *fields.pop("subprompts")]
    fields["handoffs"] = list(fields["handoffs"])
    fields["subagents"] = list(fields["subagents"])
    return fields


@dataclass(frozen=True, kw_only=True)
class AgentTool:
    """A profile as a tool (`AgentProfile.as_tool`)."""

    profile: AgentProfile
    name: str
    description: str
    output_extractor: Callable[[Any], Any] | None = None
    #: Set for an agent exposed as a tool (``expose_as_tool=True``): its children run it.
    definition: AgentDefinition | None = None


def snake_case_name(name: str) -> str:
    from agent_runtime.children import snake_case

    return snake_case(name)




@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """A validated agent configuration for one instance."""

    model: str | Model
    instructions: Instructions | None = None
    tools: tuple[Tool, ...] = ()
    subagents: tuple[Subagent, ...] = ()
    result: type[BaseModel] | None = None
    tool_choice: ToolChoice = "auto"
    max_turns: int = 20
    durability: Durability = field(default_factory=Durability)
    name: str | None = None
    description: str | None = None
    model_settings: ModelSettings = field(default_factory=ModelSettings)
    #: Declared `Variable`s and `Secret`s: values are set per instance.
    variables: tuple[Declared, ...] = ()
    #: The built-in file tools offered (`file_tools=True`: all of `FILE_TOOLS`).
    file_tools: tuple[str, ...] = ()
    #: Who this agent may hand the session to (`transfer_to_<snake name>` tools).
    handoffs: tuple[HandoffTarget, ...] = ()
    handoff_description: str | None = None
    #: Profiles it calls as tools (`AgentProfile.as_tool`), given among `tools`.
    agent_tools: tuple[AgentTool, ...] = ()
    #: One-step prompts it calls as tools (`subprompt(...)`), given among `tools`.
    subprompts: tuple[Subprompt, ...] = ()
    #: Application code at fixed points of the step machine (`agent_runtime.hooks`).
    hooks: Hooks | None = None
    #: ``"dual_ai"``: two sides take turns (`agent_runtime.dual`).
    kind: Literal["agent", "dual_ai"] = "agent"
    side_a: Side | None = None
    side_b: Side | None = None
    max_session_turns: int | None = None
    #: Whether other agents may list this agent among their tools, and how it is described.
    expose_as_tool: bool = False
    tool_description: str | None = None
    #: Named models with fallbacks (``model="fast"``), and the most one submission may spend.
    models: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    budget: Budget | None = None
    #: Skills the model loads on demand (`agent_runtime.skills`).
    skills: tuple[Skill, ...] = ()
    #: Summarising older turns when a request nears the context window (None: never).
    compaction: Compaction | None = field(default_factory=Compaction)
    #: What a prompt to a busy instance does (`agent_runtime.service`): queue behind the
    #: work, be refused, interrupt it, or replace what is queued.
    concurrency: Concurrency = "queue"
    #: Functions the agent schedules to run later (`agent_runtime.effects`); module-level
    #: ``@effect`` functions of the agent's module are added by the runtime.
    effects: tuple[Effect, ...] = ()

    def effect_named(self, name: str) -> Effect | None:
        return next((e for e in self.effects if e.name == name), None)

    @property
    def model_name(self) -> str:
        return self.model if isinstance(self.model, str) else self.model.name

    @property
    def uses_variables(self) -> bool:
        """Whether rendering the instructions needs the instance's variables (and, for a
        callable, the session's context)."""
        return _has_env(self.instructions) or (callable(self.instructions) and not isinstance(self.instructions, StructuredInstructions))

    def render_instructions(self, ctx: AgentContext, values: Mapping[str, str] | None = None) -> str | None:
        """The system prompt; `values` (plain variables) fill the `env()` parts."""
        if self.instructions is None or isinstance(self.instructions, str):
            return self.instructions  # nothing to render, at every turn
        if isinstance(self.instructions, StructuredInstructions):
            from agent_runtime.handoffs import targets

            return self.instructions.render(targets(self.handoffs))
        if _has_env(self.instructions):
            assert isinstance(self.instructions, Sequence)
            return render_env(self.instructions, self.variables, values or {})
        return render_instructions(self.instructions, dataclasses.replace(ctx, variables=values or {}))

    def tool_named(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)


_AGENT_FIELDS = {f.name for f in dataclasses.fields(AgentConfig)} | {"profile"}
_PROFILE_FIELDS = {f.name for f in dataclasses.fields(AgentProfile)}




def render_instructions(instructions: Instructions | None, ctx: AgentContext) -> str | None:
    if instructions is None:
        return None
    if isinstance(instructions, str):
        return instructions
    if isinstance(instructions, StructuredInstructions):
        return instructions.render()
    if callable(instructions):
        return instructions(ctx)
    return "\n".join(p for p in instructions if isinstance(p, str))
















def _check_tools(value: Any, field_name: str) -> tuple[Tool, ...]:
    """The application's own tools of a ``tools`` list (agents as tools are kept apart)."""
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DefinitionError(field_name, "expected a list of tools")
    tools: list[Tool] = []
    seen: set[str] = {t.name for t in value if isinstance(t, AgentTool | Subprompt)}
    for item in value:
        if isinstance(item, AgentTool | Subprompt):
            continue
        t = item if isinstance(item, Tool) else tool(item) if callable(item) else None
        if t is None:
            raise DefinitionError(field_name, f"{item!r} is not a tool (decorate it with @tool)")
        if t.name in RESERVED_TOOL_NAMES or t.name.startswith(RESERVED_TOOL_PREFIXES):
            raise DefinitionError(field_name, f"tool name {t.name!r} is reserved by the runtime")
        if t.name in seen:
            raise DefinitionError(field_name, f"duplicate tool name {t.name!r}")
        seen.add(t.name)
        tools.append(t)
    return tuple(tools)


Concurrency = Literal["queue", "reject", "interrupt", "latest"]


def _check_concurrency(value: Any) -> Concurrency:
    if value not in get_args(Concurrency):
        raise DefinitionError("concurrency", f'expected "queue", "reject", "interrupt" or "latest", got {value!r}')
    return value  # type: ignore[no-any-return]


def _exposed(tools: Any) -> Any:
    """Agent definitions among `tools` as agent tools (they must be ``expose_as_tool=True``)."""
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        return tools
    return [t.as_tool() if isinstance(t, AgentDefinition) else t for t in tools]


def _agent_tools(value: Any) -> tuple[AgentTool, ...]:
    return _kind(value, AgentTool)






def _check_subagents(value: Any, field_name: str) -> tuple[Subagent, ...]:
    if value is None:
        return ()
    if not isinstance(value, Sequence) or not all(isinstance(v, AgentProfile | Subagent) for v in value):
        raise DefinitionError(field_name, "expected a list of profiles from define_agent_profile(...) or subagent(...)")
    subagents = tuple(v if isinstance(v, Subagent) else Subagent(profile=v) for v in value)
    names = [s.name for s in subagents]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise DefinitionError(field_name, f"duplicate subagent name(s): {', '.join(sorted(duplicates))}")
    return subagents










def _check_durability(value: Any, field_name: str) -> Durability:
    if value is None:
        return Durability()
    if isinstance(value, Durability):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"retry", "timeout"}
        if unknown:
            raise DefinitionError(f"{field_name}.{sorted(unknown)[0]}", "unknown durability field (known: retry, timeout)")
        return Durability(**value)
    raise DefinitionError(field_name, "expected {'retry': int, 'timeout': seconds}")






def define_agent_profile(
    *,
    name: str,
    description: str,
    instructions: Instructions | None = None,
    model: str | Model | None = None,
    tools: Sequence[Tool | Callable[..., Any]] | None = None,
    subagents: Sequence[AgentProfile | Subagent] | None = None,
    result: type[BaseModel] | None = None,
    tool_choice: ToolChoice = "auto",
    max_turns: int | None = None,
    model_settings: ModelSettings | Mapping[str, Any] | None = None,
    variables: Sequence[Declared] | None = None,
    file_tools: bool | Sequence[str] = False,
    handoff_description: str | None = None,
    handoffs: Sequence[HandoffTarget] | None = None,
    hooks: Hooks | None = None,
    kind: Literal["agent", "dual_ai"] = "agent",
    side_a: Side | None = None,
    side_b: Side | None = None,
    max_session_turns: int | None = None,
) -> AgentProfile:
    """Define a profile: a subagent, or a base that agents override field by field."""
    if not isinstance(name, str) or not _PROFILE_NAME.match(name):
        raise DefinitionError("name", f"profile name must match {_PROFILE_NAME.pattern}, got {name!r}")
    if not isinstance(description, str) or not description.strip():
        raise DefinitionError("description", "a profile needs a non-empty description (the model reads it)")
    return AgentProfile(
        name=name,
        description=description,
        instructions=_check_instructions(instructions, "instructions"),
        model=None if model is None else _check_model(model, "model"),
        tools=_check_tools(tools, "tools"),
        subagents=_check_subagents(subagents, "subagents"),
        result=_check_result(result, "result"),
        tool_choice=_check_tool_choice(tool_choice, "tool_choice"),
        max_turns=_check_max_turns(max_turns, "max_turns"),
        model_settings=_check_settings(model_settings, "model_settings"),
        variables=_check_variables(variables, instructions),
        file_tools=_check_file_tools(file_tools, "file_tools"),
        handoff_description=_check_text(handoff_description, "handoff_description"),
        handoffs=_check_handoffs(handoffs, "handoffs"),
        agent_tools=_agent_tools(tools),
        subprompts=_subprompts(tools),
        hooks=_check_hooks(hooks),
        **dual_fields(kind, side_a, side_b, max_session_turns, model),
    )


def build_config(raw: Mapping[str, Any] | AgentConfig) -> AgentConfig:
    """Validate what `init` returned into an `AgentConfig` (profile fields first)."""
    if isinstance(raw, AgentConfig):
        return raw
    if not isinstance(raw, Mapping):
        raise DefinitionError("init", f"must return a dict or AgentConfig, got {type(raw).__name__}")
    _unknown(raw, _AGENT_FIELDS, "agent")
    merged: dict[str, Any] = {}
    profile = raw.get("profile")
    if profile is not None:
        if not isinstance(profile, AgentProfile):
            raise DefinitionError("profile", "expected a profile from define_agent_profile(...)")
        merged = {k: getattr(profile, k) for k in _PROFILE_FIELDS if getattr(profile, k) not in (None, ())}
    merged.update({k: v for k, v in raw.items() if k != "profile"})
    if "tools" in raw:
        raw = {**raw, "tools": _exposed(raw["tools"])}
        merged["tools"] = raw["tools"]
    kind = merged.get("kind", "agent")
    if kind not in ("agent", "dual_ai"):
        raise DefinitionError("kind", f'expected "agent" or "dual_ai", got {kind!r}')
    if kind == "dual_ai":
        check_dual(merged)
        merged["model"] = merged.get("model") or merged["side_a"].model or merged["side_b"].model
    if merged.get("model") is None:
        raise DefinitionError("model", "an agent needs a model, e.g. 'anthropic/claude-haiku-4-5' or 'test/echo'")
    if merged.get("tool_choice") == "required" and not merged.get("tools") and merged.get("result") is None:
        raise DefinitionError("tool_choice", "'required' needs at least one tool or a result schema")
    max_turns = _check_max_turns(merged.get("max_turns"), "max_turns")
    file_tools = _check_file_tools(merged.get("file_tools"), "file_tools")
    tools = _check_tools(merged.get("tools"), "tools")
    # Agents as tools come in `tools`; a profile's stay unless the agent gives its own tools.
    agent_tools = _agent_tools(raw.get("tools")) if "tools" in raw else tuple(merged.get("agent_tools") or ())
    subprompts = _subprompts(raw.get("tools")) if "tools" in raw else tuple(merged.get("subprompts") or ())
    clash = sorted({t.name for t in tools} & set(file_tools))
    if clash:
        raise DefinitionError("tools", f"{', '.join(clash)}: the built-in file tools of file_tools=... have these names")
    models = {**project_models(), **_check_models(merged.get("models"))}
    model = merged["model"]
    if isinstance(model, str) and model in models:
        model = FallbackModel(model, models[model])
    return AgentConfig(
        model=_check_model(model, "model"),
        models=models,
        budget=_check_budget(merged.get("budget")),
        skills=check_skills(merged.get("skills")),
        compaction=_check_compaction(merged.get("compaction", Compaction())),
        concurrency=_check_concurrency(merged.get("concurrency", "queue")),
        effects=check_effects(merged.get("effects")),
        instructions=_check_instructions(merged.get("instructions"), "instructions"),
        tools=tools,
        subagents=_check_subagents(merged.get("subagents"), "subagents"),
        result=_check_result(merged.get("result"), "result"),
        tool_choice=_check_tool_choice(merged.get("tool_choice", "auto"), "tool_choice"),
        max_turns=20 if max_turns is None else max_turns,
        durability=_check_durability(merged.get("durability"), "durability"),
        name=_check_text(merged.get("name"), "name"),
        description=_check_text(merged.get("description"), "description"),
        model_settings=_check_settings(merged.get("model_settings"), "model_settings") or ModelSettings(),
        variables=_check_variables(merged.get("variables"), merged.get("instructions")),
        file_tools=file_tools,
        handoffs=_check_handoffs(merged.get("handoffs"), "handoffs"),
        handoff_description=_check_text(merged.get("handoff_description"), "handoff_description"),
        agent_tools=agent_tools,
        subprompts=subprompts,
        hooks=_check_hooks(merged.get("hooks")),
        kind=kind,
        side_a=merged.get("side_a") if kind == "dual_ai" else None,
        side_b=merged.get("side_b") if kind == "dual_ai" else None,
        max_session_turns=merged.get("max_session_turns") if kind == "dual_ai" else None,
        expose_as_tool=bool(merged.get("expose_as_tool", False)),
        tool_description=_check_text(merged.get("tool_description"), "tool_description"),
    )


Init = Callable[[AgentContext], Mapping[str, Any] | AgentConfig]


@dataclass(frozen=True)
class AgentDefinition:
    """What `create_agent` returns: the module attribute `agent` of an agent module."""

    init: Init
    kind: Literal["agent"] = "agent"
    #: A dict or keyword fields, not a function of the context: the configuration is the
    #: same for every instance, so it is built once (again if the project's models change).
    static: bool = False
    _built: dict[tuple[Any, ...], AgentConfig] = field(default_factory=dict, compare=False, repr=False)

    def configure(self, ctx: AgentContext) -> AgentConfig:
        if self.static:
            key = project_models_key()
            built = self._built.get(key)
            if built is None:
                self._built.clear()
                built = self._built[key] = build_config(self.init(ctx))
            return built
        try:
            raw = self.init(ctx)
        except DefinitionError:
            raise
        except Exception as exc:
            raise DefinitionError("init", f"raised {type(exc).__name__}: {exc}") from exc
        return build_config(raw)

    def as_tool(self, tool_name: str | None = None, output_extractor: Callable[[Any], Any] | None = None) -> AgentTool:
        """This agent as a tool of another (it must be defined with ``expose_as_tool=True``
        and a ``tool_description``): each call runs it as an isolated, durable child."""
        config = self.configure(AgentContext(id=PROBE_ID))
        if not config.expose_as_tool or not config.tool_description:
            raise DefinitionError("tools", "an agent used as a tool needs expose_as_tool=True and a tool_description")
        name = _check_tool_name(tool_name or snake_case_name(config.name or "agent_tool"), "tools")
        profile = AgentProfile(name=name, description=config.tool_description, model=config.model)
        return AgentTool(
            profile=profile, name=name, description=config.tool_description, output_extractor=output_extractor, definition=self
        )

    def clone(self, **changes: Any) -> AgentDefinition:
        """A copy whose configuration is this one's with `changes` (checked now, like
        `create_agent`); unspecified fields are inherited, handoffs shallow-copied."""
        base = self.init

        def init(ctx: AgentContext) -> dict[str, Any]:
            raw = base(ctx)
            fields = _config_fields(raw) if isinstance(raw, AgentConfig) else dict(raw)
            return {**fields, **changes}

        return create_agent(init)


def _config_fields(config: AgentConfig) -> dict[str, Any]:
    fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    fields["tools"] = [*fields.pop("tools"), *fields.pop("agent_tools"), *fields.pop("subprompts")]
    return fields


def create_agent(init: Init | Mapping[str, Any] | None = None, /, **fields: Any) -> AgentDefinition:
    """Define an agent: ``create_agent(lambda ctx: dict(model=..., ...))``.

    A static configuration may be given as a dict or as keyword arguments.
    """
    if init is None:
        static = dict(fields)
        definition = AgentDefinition(lambda _ctx: static, static=True)
    elif fields:
        raise DefinitionError("init", "give either init or keyword fields, not both")
    elif isinstance(init, Mapping):
        static = dict(init)
        definition = AgentDefinition(lambda _ctx: static, static=True)
    elif callable(init):
        definition = AgentDefinition(init)
    else:
        raise DefinitionError("init", "expected a callable of the context, a dict, or keyword fields")
    definition.configure(AgentContext(id=PROBE_ID))
    return definition
