"""`timed-echo`: the echo agent, with the wall-clock time its model was called in the answer.

The answer is ``<time.time() when stream was called> echo: <message>``, so a client can tell
how long after its POST the model request happened without any side channel: the worker
runs in another process.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from agent_runtime import FunctionModel, ModelRequest, create_agent
from agent_runtime.models.test import last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse


def stamped_echo(request: ModelRequest) -> str:
    return f"{time.time():.6f} echo: {last_user_text(request)}"


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(lambda ctx: dict(model=FunctionModel(stamped_echo), instructions=f"Echo for {ctx.id}."))
