"""`ticker`: streams timestamped tokens at a steady pace, for delta-latency figures.

A message ``TOKENS RATE`` (e.g. ``150 50``) makes the model write TOKENS tokens at RATE
tokens a second; each token is ``<time.time() when it was emitted> `` so whoever receives
it can tell how long it took to arrive. The worker runs in another process; the wall
clock is shared.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from agent_runtime import ModelRequest, create_agent
from agent_runtime.messages import Message, TextPart, Usage
from agent_runtime.models.base import Model, ModelEvent, ModelResponse, ResponseDone, TextDelta
from agent_runtime.models.test import last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse


class Ticker(Model):
    name = "test/ticker"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        tokens, rate = (int(x) for x in last_user_text(request).split())
        written: list[str] = []
        start = time.monotonic()
        for n in range(tokens):
            await asyncio.sleep(max(0.0, start + n / rate - time.monotonic()))
            token = f"{time.time():.6f} "
            written.append(token)
            yield TextDelta(text=token)
        message = Message(role="assistant", parts=[TextPart(text="".join(written))])
        yield ResponseDone(response=ModelResponse(message=message, usage=Usage(output_tokens=tokens, requests=1)))


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


async def websocket(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(model=Ticker())
