"""What one `session.task(...)` call changes in its child's configuration.

``session.task(prompt, agent=..., result=Quote, tools=[lookup])`` runs the child with
`Quote` as its result schema and `lookup` among its tools, for that call only. The
child may run in another process (another Lambda), so these travel in its submission's
payload by name, as the module and qualified name they are defined under, and the
child's worker finds the same objects there: they must be defined at module level (an
agent module, or any importable module), never inside a function.

    {"result": {"module": "agents.coordinator", "name": "Quote"},
     "tools": [{"module": "agents.coordinator", "name": "lookup"}], "tools_mode": "extend"}

``tools_mode="extend"`` (the default) adds the tools to the profile's own (a tool of the
same name replaces the profile's); ``"replace"`` gives the child only these.
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from agent_runtime.definition import AgentConfig
from agent_runtime.errors import DefinitionError, UserError
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.tools import Tool

ToolsMode = Literal["extend", "replace"]


def overrides_for(
    result: type[BaseModel] | None, tools: Sequence[Tool] | None, tools_mode: ToolsMode
) -> dict[str, Any]:
    """The payload entry for one call; `UserError` for what a child could not find again."""
    overrides: dict[str, Any] = {}
    if result is not None:
        if not (isinstance(result, type) and issubclass(result, BaseModel)):
            raise UserError("session.task(result=...) takes a pydantic model class")
        overrides["result"] = _ref(result, result.__module__, result.__qualname__, "result")
    if tools is not None:
        if tools_mode not in ("extend", "replace"):
            raise UserError('session.task(tools_mode=...) is "extend" or "replace"')
        if not all(isinstance(t, Tool) for t in tools):
            raise UserError("session.task(tools=...) takes a list of @tool functions")
        overrides["tools"] = [
            _ref(t, t.function.__module__, t.function.__qualname__, "tools") for t in tools
        ]
        overrides["tools_mode"] = tools_mode
    return overrides


def _ref(obj: Any, module: str, name: str, what: str) -> dict[str, str]:
    ref = {"module": module, "name": name}
    try:
        found = resolve(ref, what)
    except DefinitionError:
        found = None
    if found is not obj:
        label = getattr(obj, "name", None) or getattr(obj, "__name__", repr(obj))
        raise UserError(
            f"session.task({what}=...): {label!r} must be defined at module level, where the child's "
            "worker (which may run in another process) finds it by module and name"
        )
    return ref


def resolve(ref: dict[str, str], what: str) -> Any:
    """The object a reference names; `DefinitionError` when it is gone."""
    module_name, name = ref.get("module", ""), ref.get("name", "")
    try:
        module = sys.modules.get(module_name) or importlib.import_module(module_name)
    except ImportError:
        raise DefinitionError(
            what, f"module {module_name!r} named by a task's {what} cannot be imported"
        ) from None
    found: Any = module
    for part in name.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise DefinitionError(
                what, f"{module_name}.{name}, named by a task's {what}, does not exist"
            )
    return found


def with_overrides(config: AgentConfig, record: SubmissionRecord) -> AgentConfig:
    """`config` as this child submission runs it (unchanged for any other submission)."""
    payload = record.payload
    if record.kind != "task" or not isinstance(payload, dict) or not payload.get("overrides"):
        return config
    overrides: dict[str, Any] = payload["overrides"]
    changes: dict[str, Any] = {}
    if "result" in overrides:
        result = resolve(overrides["result"], "result")
        if not (isinstance(result, type) and issubclass(result, BaseModel)):
            raise DefinitionError(
                "result", f"{overrides['result']['name']} is not a pydantic model"
            )
        changes["result"] = result
    if "tools" in overrides:
        extra = [resolve(ref, "tools") for ref in overrides["tools"]]
        if not all(isinstance(t, Tool) for t in extra):
            raise DefinitionError("tools", "a task's tools must be @tool functions")
        names = {t.name for t in extra}
        kept = (
            []
            if overrides.get("tools_mode") == "replace"
            else [t for t in config.tools if t.name not in names]
        )
        changes["tools"] = (*kept, *extra)
    return dataclasses.replace(config, **changes)


__all__ = ["ToolsMode", "overrides_for", "resolve", "with_overrides"]
