"""Two-sided agents (Standard Agents' ``dual_ai``): two sides take turns in one session.

    agent = create_agent(lambda ctx: dict(
        kind="dual_ai", max_session_turns=40,
        side_a=Side(label="Worker", instructions="Make the asset.", model="...", stop_on_response=True,
                    session_fail=LifecycleTool("fail_asset", message_property="summary")),
        side_b=Side(label="Reviewer", instructions="Review it.", model="...",
                    session_stop=LifecycleTool("approve_asset", message_property="summary",
                                               attachments_property="attachments"),
                    session_status=LifecycleTool("asset_status", message_property="status")),
    ))

A prompt goes to side A. A side's **turn** is one or more model steps (with its own tools)
and ends when it answers with text (``stop_on_response``, the default), when it calls its
``stop_tool`` (the turn's output is that call's ``stop_tool_response_property`` argument,
else the tool's result), or after ``max_steps`` steps. Then the other side speaks. Each
side sees the other's turns as user messages (prefixed with the speaker's label), never
the other's tool calls. The **session** ends when a side calls ``session_stop`` (completed;
the result's text is the mapped message, its data ``{"message", "attachments"}``: what a
parent receives when the agent runs as a subagent), ``session_fail`` (failed, with the
message), or after ``max_session_turns`` side turns in one submission (failed,
``max_session_turns``). ``session_status`` sets the session's status (a ``session_status``
event; `SessionState.status`) and the turn goes on. Lifecycle tools are a name or
`LifecycleTool(name, message_property=, attachments_property=)`.

The speaking side and its step count are the session's state: journaled with each turn,
so a new attempt resumes with the side that was speaking.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agent_runtime.errors import DefinitionError
from agent_runtime.messages import Message, TextPart

SideName = Literal["a", "b"]
_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")


@dataclass(frozen=True)
class LifecycleTool:
    name: str
    message_property: str = "message"
    attachments_property: str | None = None
    description: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DefinitionError("side", f"a lifecycle tool name must match {_NAME.pattern}, got {self.name!r}")

    @property
    def parameters(self) -> dict[str, Any]:
        properties: dict[str, Any] = {self.message_property: {"type": "string", "minLength": 1}}
        if self.attachments_property:
            properties[self.attachments_property] = {"type": "array", "items": {"type": "string"}, "description": "File paths."}
        return {"type": "object", "properties": properties, "required": [self.message_property], "additionalProperties": False}


Lifecycle = Literal["session_stop", "session_fail", "session_status"]
_DESCRIPTIONS = {
    "session_stop": "End the session: the work is done and approved.",
    "session_fail": "End the session as failed: the work cannot be done.",
    "session_status": "Report the session's status (it goes on).",
}


@dataclass(frozen=True, kw_only=True)
class Side:
    label: str
    instructions: Any = None
    prompt: Any = None
    model: Any = None
    tools: Sequence[Any] = ()
    tool_choice: str = "auto"
    stop_on_response: bool = True
    stop_tool: str | None = None
    stop_tool_response_property: str | None = None
    max_steps: int = 10
    session_stop: str | LifecycleTool | None = None
    session_fail: str | LifecycleTool | None = None
    session_status: str | LifecycleTool | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.strip():
            raise DefinitionError("side", "a side needs a label")
        if self.instructions is not None and self.prompt is not None:
            raise DefinitionError("side", f"{self.label}: give instructions or prompt, not both")
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or not 1 <= self.max_steps <= 100:
            raise DefinitionError("side", f"{self.label}: max_steps must be an int between 1 and 100")
        for kind in ("session_stop", "session_fail", "session_status"):
            value = getattr(self, kind)
            if isinstance(value, str):
                object.__setattr__(self, kind, LifecycleTool(value))
            elif value is not None and not isinstance(value, LifecycleTool):
                raise DefinitionError("side", f"{self.label}: {kind} must be a name or LifecycleTool(...)")

    def lifecycle(self) -> list[tuple[Lifecycle, LifecycleTool]]:
        found: list[tuple[Lifecycle, LifecycleTool]] = []
        for kind in ("session_stop", "session_fail", "session_status"):
            tool = getattr(self, kind)
            if tool is not None:
                found.append((kind, tool))  # type: ignore[arg-type]
        return found

    @staticmethod
    def description(kind: Lifecycle, tool: LifecycleTool) -> str:
        return tool.description or _DESCRIPTIONS[kind]


def check_dual(merged: dict[str, Any]) -> None:
    """`DefinitionError` unless a ``dual_ai`` definition is complete and consistent."""
    a, b, turns = merged.get("side_a"), merged.get("side_b"), merged.get("max_session_turns")
    if not isinstance(a, Side) or not isinstance(b, Side):
        raise DefinitionError("side_b" if isinstance(a, Side) else "side_a", 'kind="dual_ai" needs side_a=Side(...) and side_b=Side(...)')
    if not isinstance(turns, int) or isinstance(turns, bool) or not 1 <= turns <= 1000:
        raise DefinitionError("max_session_turns", 'kind="dual_ai" needs max_session_turns between 1 and 1000')
    from agent_runtime.definition import _check_tools

    names = {t.name for s in (a, b) for _, t in s.lifecycle()}
    for side in (a, b):
        tools = _check_tools(list(side.tools), "tools")
        clash = names & {t.name for t in tools}
        if clash:
            raise DefinitionError("side", f"{side.label}: lifecycle tool(s) {sorted(clash)} clash with its tools")
        if side.stop_tool is not None and side.stop_tool not in {t.name for t in tools}:
            raise DefinitionError("side", f"{side.label}: stop_tool {side.stop_tool!r} is not one of its tools")
        if side.model is None and merged.get("model") is None:
            raise DefinitionError("model", f"{side.label}: a side needs a model (its own, or the agent's)")


def dual_fields(kind: Any, side_a: Any, side_b: Any, turns: Any, model: Any) -> dict[str, Any]:
    """A profile's two-sided fields, checked (its model may come from its parent)."""
    if kind == "agent" and side_a is None and side_b is None and turns is None:
        return {}
    if kind != "dual_ai":
        raise DefinitionError("kind", 'sides need kind="dual_ai"')
    fields = {"kind": kind, "side_a": side_a, "side_b": side_b, "max_session_turns": turns}
    check_dual({**fields, "model": model or "test/echo"})  # a profile's model may come from its parent
    return fields


def side_of(config: Any, name: SideName) -> Side:
    side: Side = config.side_a if name == "a" else config.side_b
    return side


def side_config(root: Any, name: SideName) -> Any:
    """The configuration side `name` of the two-sided `root` speaks with."""
    from agent_runtime.definition import build_config

    side = side_of(root, name)
    config = build_config(
        {
            "model": side.model or root.model,
            "instructions": side.instructions if side.instructions is not None else side.prompt,
            "tools": list(side.tools),
            "tool_choice": side.tool_choice,
            "name": side.label,
        }
    )
    return dataclasses.replace(
        config, durability=root.durability, variables=root.variables, max_turns=root.max_turns, hooks=root.hooks
    )


def view(history: Sequence[Message], speaker: SideName, labels: dict[SideName, str]) -> list[Message]:
    """The conversation as side `speaker` sees it: its own messages as they are, the
    other side's answers as user messages labelled with their speaker, nothing of the
    other side's tool calls; consecutive user messages joined into one."""
    seen: list[Message] = []
    for message in history:
        if message.side is None or message.side == speaker:
            seen.append(message)
            continue
        text = message.text
        if message.role == "assistant" and text:
            seen.append(Message.user(f"[{labels[message.side]}] {text}"))
    merged: list[Message] = []
    for message in seen:
        if merged and merged[-1].role == "user" and message.role == "user" and not _results(merged[-1]) and not _results(message):
            merged[-1] = merged[-1].model_copy(update={"parts": [*merged[-1].parts, *message.parts]})
        else:
            merged.append(message)
    return merged


def _results(message: Message) -> bool:
    return any(p.type == "tool_result" for p in message.parts)


def turn_output(text: str, side: SideName) -> Message:
    """A side's turn output written as its answer (a stop tool's, say)."""
    return Message(role="assistant", parts=[TextPart(text=text)], synthetic=True, side=side)


__all__ = ["LifecycleTool", "Side", "check_dual", "dual_fields", "side_config", "side_of", "turn_output", "view"]
