"""A two-sided agent's lifecycle tools (`agent_runtime.dual`): ``session_stop`` ends the
submission completed with the mapped message (and attachment paths) as its result,
``session_fail`` ends it failed, ``session_status`` sets the session's status. What a
call asks is derived from its arguments alone, so a call recorded before a crash asks
the same again (`replayed`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agent_runtime.dual import Lifecycle, LifecycleTool, Side
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec


class LifecycleCall:
    silent = False

    def __init__(self, kind: Lifecycle, tool: LifecycleTool) -> None:
        self.kind = kind
        self.tool = tool
        self.spec = ToolSpec(name=tool.name, description=Side.description(kind, tool), parameters=tool.parameters)

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        problem = self._problem(call.arguments)
        if problem is None:
            for path in self._attachments(call.arguments):
                if await ctx.stores.files.stat(ctx.record.ref, path) is None:
                    problem = f"no file {path} to attach"
                    break
        if problem is not None:
            return Handled(error_result(call, problem))
        return self.replayed(call, ToolResultPart(call_id=call.id, name=call.name, content=self._said()))

    def replayed(self, call: ToolCallPart, part: ToolResultPart) -> Handled:
        if part.is_error:
            return Handled(part)
        message = str(call.arguments.get(self.tool.message_property, ""))
        if self.kind == "session_stop":
            data = {"message": message, "attachments": self._attachments(call.arguments)}
            return Handled(part, data=data, text=message)
        if self.kind == "session_fail":
            return Handled(part, fail=message)
        return Handled(part, status=message)

    def _said(self) -> str:
        return {"session_stop": "The session is done.", "session_fail": "The session failed.", "session_status": "Status set."}[self.kind]

    def _problem(self, arguments: dict[str, Any]) -> str | None:
        message = arguments.get(self.tool.message_property)
        if not isinstance(message, str) or not message.strip():
            return f"{self.tool.name} needs {self.tool.message_property!r}: a non-empty string"
        paths = arguments.get(self.tool.attachments_property) if self.tool.attachments_property else None
        if paths is not None and (not isinstance(paths, list) or not all(isinstance(p, str) for p in paths)):
            return f"{self.tool.name}: {self.tool.attachments_property!r} must be a list of file paths"
        return None

    def _attachments(self, arguments: dict[str, Any]) -> list[str]:
        if not self.tool.attachments_property:
            return []
        paths = arguments.get(self.tool.attachments_property) or []
        return [p for p in paths if isinstance(p, str)]


class LifecycleFamily(PlainFamily):
    def __init__(self, side: Side) -> None:
        self.calls = [LifecycleCall(kind, tool) for kind, tool in side.lifecycle()]

    def builtins(self) -> Sequence[Builtin]:
        return self.calls
