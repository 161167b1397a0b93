"""Subprompts (Standard Agents): one model step on another prompt, used as a tool.

    polish = subprompt(name="polish_email", tool_description="Rewrite an email politely.",
                       instructions="Rewrite politely.", model="openai/gpt-4.1-mini",
                       init_user_message_property="text")
    agent = create_agent(model=..., tools=[polish])

A call makes one model request with no tools (or, with `result`, one forced
`final_result` call): the subprompt's `instructions` as the system prompt; the calling
session's conversation first when `include_chat` (its past tool calls and results too
when `include_past_tools`); then a user message made of the call's
`init_user_message_property` argument (the whole arguments as JSON when none is named)
and the files its `init_attachments_property` argument names. The answer's text (or
the result as JSON) is the tool's result, recorded like any tool result.

The call's arguments follow `required_schema` (a JSON schema object), by default one
string property per named property. A named property missing from the schema is a
`DefinitionError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from agent_runtime.errors import DefinitionError
from agent_runtime.models.base import Model, resolve_model
from agent_runtime.tools import TOOL_NAME


@dataclass(frozen=True, kw_only=True)
class Subprompt:
    name: str
    tool_description: str
    instructions: str
    model: str | Model | None = None
    include_chat: bool = False
    include_past_tools: bool = False
    init_user_message_property: str | None = None
    init_attachments_property: str | None = None
    result: type[BaseModel] | None = None
    required_schema: dict[str, Any] | None = None

    @property
    def parameters(self) -> dict[str, Any]:
        if self.required_schema is not None:
            return self.required_schema
        properties: dict[str, Any] = {}
        message = self.init_user_message_property or "input"
        properties[message] = {"type": "string", "minLength": 1, "description": "The message to work on."}
        if self.init_attachments_property:
            properties[self.init_attachments_property] = {
                "type": "array",
                "items": {"type": "string"},
                "description": "Paths of files to show.",
            }
        return {"type": "object", "properties": properties, "required": [message], "additionalProperties": False}


def subprompt(
    *,
    name: str,
    tool_description: str,
    instructions: str,
    model: str | Model | None = None,
    include_chat: bool = False,
    include_past_tools: bool = False,
    init_user_message_property: str | None = None,
    init_attachments_property: str | None = None,
    result: type[BaseModel] | None = None,
    required_schema: dict[str, Any] | None = None,
) -> Subprompt:
    """A subprompt to put among an agent's ``tools``."""
    where = "tools"
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise DefinitionError(where, f"subprompt name must match {TOOL_NAME.pattern}, got {name!r}")
    if not isinstance(tool_description, str) or not tool_description.strip():
        raise DefinitionError(where, f"subprompt {name}: tool_description is required (the model reads it)")
    if not isinstance(instructions, str) or not instructions.strip():
        raise DefinitionError(where, f"subprompt {name}: instructions are required")
    if isinstance(model, str):
        resolve_model(model, field=where)
    if result is not None and not (isinstance(result, type) and issubclass(result, BaseModel)):
        raise DefinitionError(where, f"subprompt {name}: result must be a pydantic model class")
    if required_schema is not None:
        if not isinstance(required_schema, dict) or required_schema.get("type") != "object":
            raise DefinitionError(where, f"subprompt {name}: required_schema must be a JSON schema of type object")
        properties = required_schema.get("properties") or {}
        for what, prop in (
            ("init_user_message_property", init_user_message_property),
            ("init_attachments_property", init_attachments_property),
        ):
            if prop is not None and prop not in properties:
                raise DefinitionError(where, f"subprompt {name}: {what} {prop!r} is not in its required_schema")
    return Subprompt(
        name=name,
        tool_description=tool_description,
        instructions=instructions,
        model=model,
        include_chat=bool(include_chat),
        include_past_tools=bool(include_past_tools),
        init_user_message_property=init_user_message_property,
        init_attachments_property=init_attachments_property,
        result=result,
        required_schema=required_schema,
    )


__all__ = ["Subprompt", "subprompt"]
