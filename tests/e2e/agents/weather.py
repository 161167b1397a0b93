"""`weather`: looks the forecast up with its tool, then answers with it; reachable over
HTTP and WebSocket by anyone. Deterministic (a `FunctionModel`): the console's browser
test prompts it and watches the tool call and the streamed answer. The tool also schedules
`check_later` a day ahead, so the console's Effects panel has one to list and cancel."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent_runtime import (
    FunctionModel,
    ModelRequest,
    ToolCall,
    ToolContext,
    create_agent,
    effect,
    tool,
)
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult, last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse

DAY = 24 * 3600.0


@effect
async def check_later(ctx: Any, city: str) -> str:
    await ctx.session.prompt(city)
    return f"checked {city} again"


@tool
async def forecast(city: str, ctx: ToolContext) -> str:
    """Tomorrow's weather in a city.

    Args:
        city: the city's name
    """
    await ctx.schedule("check_later", {"city": city}, delay=DAY)
    return f"sunny in {city}"


def _model(request: ModelRequest) -> FunctionResult:
    results = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
    if results:
        return f"The forecast says {results[0].content}. Have a good day!"
    return ToolCall("forecast", {"city": last_user_text(request).strip() or "Paris"})


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


websocket = route

agent = create_agent(model=FunctionModel(_model), tools=[forecast], description="Tells tomorrow's weather.")
