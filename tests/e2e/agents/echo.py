"""`echo`: answers "echo: <your message>"; exposed over HTTP by its `route` hook."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from agent_runtime import create_agent
from agent_runtime.routing import RouteRequest, RouteResponse


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(lambda ctx: dict(model="test/echo", instructions=f"Echo for {ctx.id}."))
