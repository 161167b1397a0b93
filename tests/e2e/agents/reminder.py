"""`reminder`: a dispatch ``{"text", "delay"}`` schedules the `nudge` effect; when it runs,
it prompts the instance's session, and the echo model answers in its history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from agent_runtime import create_agent, effect
from agent_runtime.routing import RouteRequest, RouteResponse


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


@effect
async def nudge(ctx: Any, text: str) -> str:
    await ctx.session.prompt(f"nudge: {text}")
    return f"nudged: {text}"


async def on_dispatch(ctx: Any) -> str:
    effect_id: str = await ctx.schedule("nudge", {"text": ctx.input["text"]}, delay=ctx.input["delay"])
    return effect_id


agent = create_agent(model="test/echo")
