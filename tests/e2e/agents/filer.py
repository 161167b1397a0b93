"""`filer`: its tool reads the first attachment's bytes and answers with their sha256, and
calls a pretend CRM with a secret token (which must never come back out)."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable

from agent_runtime import (
    FunctionModel,
    ModelRequest,
    Secret,
    ToolCall,
    ToolContext,
    create_agent,
    tool,
)
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult
from agent_runtime.routing import RouteRequest, RouteResponse

#: Every request the model was sent in this process (the worker's), for a test to read back.
REQUESTS: list[str] = []


@tool
async def fingerprint(path: str, ctx: ToolContext) -> str:
    """The sha256 of an attached file, after checking in with the CRM.

    Args:
        path: the file's path
    """
    assert ctx.files is not None
    data = await ctx.files.read(path)
    token = await ctx.secret("CRM_TOKEN")
    await ctx.emit("crm", {"authorized_with": token})
    return f"sha256={hashlib.sha256(data).hexdigest()} token={token}"


def _model(request: ModelRequest) -> FunctionResult:
    REQUESTS.append(request.model_dump_json())
    results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
    if results:
        return results[0].content
    files = request.messages[-1].files
    if not files:
        return "attach a file"
    return ToolCall("fingerprint", {"path": files[0].path})


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(model=FunctionModel(_model), tools=[fingerprint], variables=[Secret("CRM_TOKEN")])
