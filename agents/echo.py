"""`echo`: answers "echo: <your message>". Needs no credentials; exposed over HTTP and
WebSocket (every request is let through: put your own checks in these hooks)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent_runtime import RouteRequest, create_agent
from agent_runtime.routing import RouteResponse


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


async def websocket(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(lambda ctx: dict(model="test/echo", instructions=f"Echo for {ctx.id}."))
