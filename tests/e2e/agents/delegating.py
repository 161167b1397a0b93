"""`delegating`: every prompt goes to a blocking child, `slow_researcher`, whose tool
takes `SLOW_SECONDS`, long enough to see the parent waiting; the parent then answers
``parent: <the child's answer>``."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from agent_runtime import (
    FunctionModel,
    ModelRequest,
    ToolCall,
    create_agent,
    define_agent_profile,
    tool,
)
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult, last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse

SLOW_SECONDS = 1.5


@tool
def slow_lookup(question: str) -> str:
    """Look something up, slowly.

    Args:
        question: what to look up
    """
    time.sleep(SLOW_SECONDS)
    return f"looked up {question!r}"


def _result(request: ModelRequest) -> ToolResultPart | None:
    parts = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
    return parts[0] if parts else None


def _child(request: ModelRequest) -> FunctionResult:
    found = _result(request)
    return f"child: {found.content}" if found else ToolCall("slow_lookup", {"question": last_user_text(request)})


def _parent(request: ModelRequest) -> FunctionResult:
    answer = _result(request)
    if answer is not None:
        return f"parent: {answer.content}"
    return ToolCall("task", {"agent": "slow_researcher", "prompt": last_user_text(request)})


slow_researcher = define_agent_profile(
    name="slow_researcher", description="Looks things up, slowly.", model=FunctionModel(_child), tools=[slow_lookup]
)


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(model=FunctionModel(_parent), subagents=[slow_researcher])
