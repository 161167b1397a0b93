"""The field checks of agent and profile definitions (`agent_runtime.definition`): each
takes the value given for one field and returns it validated, or raises `DefinitionError`
naming the field."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar, get_args

from pydantic import BaseModel

from agent_runtime.errors import DefinitionError
from agent_runtime.hooks import Hooks
from agent_runtime.instructions import StructuredInstructions
from agent_runtime.models.base import Model, ModelSettings, ToolChoice, resolve_model
from agent_runtime.subprompts import Subprompt
from agent_runtime.tools import TOOL_NAME
from agent_runtime.variables import Declared, EnvRef, check_instructions, check_variables

#: A str, a list of str and `env("NAME")` parts (joined by newlines), structured
#: `instructions(purpose=..., routine=...)`, or a callable of the context.
Instructions = str | Sequence[str | EnvRef] | StructuredInstructions | Callable[[Any], str]
T = TypeVar("T")

#: The built-in file tools `file_tools=True` offers (a list picks some).
FILE_TOOLS = ("read_file", "write_file", "list_files", "grep_files", "find_files")


def _has_env(instructions: Instructions | None) -> bool:
    return not isinstance(instructions, str) and isinstance(instructions, Sequence) and any(
        isinstance(p, EnvRef) for p in instructions
    )


def _check_model(value: Any, field_name: str) -> str | Model:
    if isinstance(value, Model):
        return value
    if not isinstance(value, str):
        raise DefinitionError(field_name, f"expected a 'provider/model' string, got {type(value).__name__}")
    resolve_model(value, field=field_name)  # resolving is cheap: providers connect lazily
    return value


def _check_instructions(value: Any, field_name: str) -> Instructions | None:
    if value is None or isinstance(value, str | StructuredInstructions) or callable(value):
        return value  # type: ignore[no-any-return]
    if isinstance(value, Sequence) and all(isinstance(v, str | EnvRef) for v in value):
        return tuple(value)
    raise DefinitionError(field_name, "expected a str, a list of str and env(...), or a callable of the context")


def _check_file_tools(value: Any, field_name: str) -> tuple[str, ...]:
    if value is None or value is False:
        return ()
    if value is True:
        return FILE_TOOLS
    if isinstance(value, Sequence) and not isinstance(value, str) and all(v in FILE_TOOLS for v in value):
        return tuple(dict.fromkeys(value))
    raise DefinitionError(field_name, f"expected True or a list of {', '.join(FILE_TOOLS)}")


def _check_variables(value: Any, instructions: Any) -> tuple[Declared, ...]:
    declared = check_variables(value, "variables")
    if _has_env(instructions):
        check_instructions(instructions, declared)
    return declared


def _check_result(value: Any, field_name: str) -> type[BaseModel] | None:
    if value is None or (isinstance(value, type) and issubclass(value, BaseModel)):
        return value
    raise DefinitionError(field_name, "expected a pydantic model class")


def _check_tool_choice(value: Any, field_name: str) -> ToolChoice:
    if value not in get_args(ToolChoice):
        raise DefinitionError(field_name, f"expected one of {', '.join(get_args(ToolChoice))}, got {value!r}")
    return value  # type: ignore[no-any-return]


def _check_max_turns(value: Any, field_name: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 1000:
        raise DefinitionError(field_name, "expected an int between 1 and 1000")
    return value


def _check_settings(value: Any, field_name: str) -> ModelSettings | None:
    if value is None or isinstance(value, ModelSettings):
        return value
    if isinstance(value, Mapping):
        try:
            return ModelSettings(**value)
        except Exception as exc:
            raise DefinitionError(field_name, str(exc)) from exc
    raise DefinitionError(field_name, "expected ModelSettings or a dict")


def _check_text(value: Any, field_name: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise DefinitionError(field_name, "expected a str")


def _unknown(fields: Mapping[str, Any], known: set[str], where: str) -> None:
    for key in fields:
        if key not in known:
            raise DefinitionError(key, f"unknown {where} field (known: {', '.join(sorted(known))})")


def _check_tool_name(name: str, field_name: str) -> str:
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise DefinitionError(field_name, f"tool name must match {TOOL_NAME.pattern}, got {name!r}")
    return name


def _check_hooks(value: Any) -> Hooks | None:
    if value is None or isinstance(value, Hooks):
        return value
    raise DefinitionError("hooks", "expected Hooks(...)")


def _kind(value: Any, kind: type[T]) -> tuple[T, ...]:
    if value is None or isinstance(value, str) or not isinstance(value, Sequence):
        return ()
    found = tuple(t for t in value if isinstance(t, kind))
    names = [getattr(t, "name", "") for t in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DefinitionError("tools", f"duplicate tool name(s): {', '.join(duplicates)}")
    return found


def _subprompts(value: Any) -> tuple[Subprompt, ...]:
    return _kind(value, Subprompt)


def _check_handoffs(value: Any, field_name: str) -> tuple[Any, ...]:
    from agent_runtime.definition import AgentProfile

    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DefinitionError(field_name, "expected a list of profiles (or functions returning one)")
    for item in value:
        if not isinstance(item, AgentProfile) and not (callable(item) and not isinstance(item, type)):
            raise DefinitionError(field_name, f"{item!r} is not a profile from define_agent_profile(...) or a function returning one")
    named = [p.name for p in value if isinstance(p, AgentProfile)]
    duplicates = sorted({n for n in named if named.count(n) > 1})
    if duplicates:
        raise DefinitionError(field_name, f"duplicate handoff name(s): {', '.join(duplicates)}")
    return tuple(value)


def _check_models(value: Any) -> dict[str, tuple[str, ...]]:
    """``models={"fast": ["anthropic/...", "bedrock/..."]}``: names for ordered fallback lists."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise DefinitionError("models", 'expected {"name": ["provider/model", ...]}')
    named: dict[str, tuple[str, ...]] = {}
    for name, entries in value.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise DefinitionError("models", f"a model name has no '/': got {name!r}")
        if isinstance(entries, str) or not isinstance(entries, Sequence) or not entries:
            raise DefinitionError("models", f"{name}: expected a non-empty list of 'provider/model' strings")
        named[name] = tuple(str(_check_model(e, f"models.{name}")) for e in entries if isinstance(e, str))
        if len(named[name]) != len(entries):
            raise DefinitionError("models", f"{name}: entries are 'provider/model' strings")
    return named


#: Named models of the whole project (`set_models`, ``AGENT_RUNTIME_MODELS``); an agent's
#: own ``models=`` add to them and win on a shared name.
ENV_MODELS = "AGENT_RUNTIME_MODELS"
_PROJECT_MODELS: dict[str, tuple[str, ...]] = {}


def set_models(models: Mapping[str, Sequence[str]]) -> None:
    """Name fallback lists for every agent of the project (call it where every agent
    module sees it first, e.g. ``agents/__init__.py``): ``model="fast"`` then works in
    any agent. Checked at once: a mistake raises `DefinitionError`."""
    _PROJECT_MODELS.update(_check_models(models))


def project_models_key() -> tuple[Any, ...]:
    """What `project_models` depends on, to know when a configuration built with it is stale."""
    return (os.environ.get(ENV_MODELS), tuple(sorted(_PROJECT_MODELS.items())))


def project_models() -> dict[str, tuple[str, ...]]:
    """`set_models`'s names, then ``AGENT_RUNTIME_MODELS`` (JSON) over them."""
    raw = os.environ.get(ENV_MODELS)
    if not raw:
        return dict(_PROJECT_MODELS)
    try:
        from_env = json.loads(raw)
    except ValueError:
        from_env = None
    if not isinstance(from_env, dict):
        raise DefinitionError(ENV_MODELS, 'expected a JSON object {"name": ["provider/model", ...]}')
    return {**_PROJECT_MODELS, **_check_models(from_env)}


def _check_budget(value: Any) -> Any:
    from agent_runtime.models.cost import Budget

    if value is None or isinstance(value, Budget):
        return value
    raise DefinitionError("budget", "expected Budget(max_usd=..., max_tokens=...)")


def _check_compaction(value: Any) -> Any:
    from agent_runtime.compaction import Compaction

    if value is None or isinstance(value, Compaction):
        return value
    raise DefinitionError("compaction", "expected Compaction(...) or None")
