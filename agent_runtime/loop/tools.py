"""Running the application's own tools: their context, deadline and error handling.

A tool's failure goes back to the model as an error result, never into the ledger:
invalid arguments, `ToolFailure`, a timeout at the submission's deadline, or any bug.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError

from agent_runtime import events as ev
from agent_runtime.definition import AgentConfig
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.tools import ToolContext, ToolFailure, format_validation_error


async def run_tool(config: AgentConfig, call: ToolCallPart, context: ToolContext, *, seconds: float | None) -> ToolResultPart:
    """Run the agent's tool `call.name`, at most `seconds`; every failure becomes an error result."""
    tool = config.tool_named(call.name)
    if tool is None:
        known = ", ".join(t.name for t in config.tools) or "none"
        return error_result(call, f"unknown tool {call.name!r} (available: {known})")
    try:
        async with asyncio.timeout(seconds):
            content = await tool.call(call.arguments, context)
    except ValidationError as exc:
        return error_result(call, format_validation_error(exc))
    except ToolFailure as exc:
        return error_result(call, str(exc))
    except TimeoutError:
        return error_result(call, "the tool did not finish before the submission's deadline")
    except Exception as exc:  # a tool's bug goes back to the model, not into the ledger
        return error_result(call, f"{type(exc).__name__}: {exc}")
    return ToolResultPart(call_id=call.id, name=call.name, content=content)


def interrupted(call: ToolCallPart, content: str) -> ToolResultPart:
    return ToolResultPart(call_id=call.id, name=call.name, content=content, is_error=True, status="interrupted")


def error_result(call: ToolCallPart, message: str) -> ToolResultPart:
    return ToolResultPart(call_id=call.id, name=call.name, content=message, is_error=True, status="error")


def results_message(results: list[ToolResultPart]) -> Message:
    return Message(role="user", parts=list(results))


def tool_start_fields(turn: int, call: ToolCallPart) -> dict[str, Any]:
    truncated = len(json.dumps(call.arguments)) > ev.EVENT_TEXT_MAX
    return dict(turn=turn, call_id=call.id, name=call.name, arguments={} if truncated else call.arguments, truncated=truncated)


def tool_call_fields(turn: int, part: ToolResultPart) -> dict[str, Any]:
    content, truncated = ev.clip(part.content)
    return dict(
        turn=turn,
        call_id=part.call_id,
        name=part.name,
        status=part.status,
        result=None if part.is_error else content,
        error=content if part.is_error else None,
        truncated=truncated,
    )
