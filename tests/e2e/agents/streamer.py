"""`streamer`: answers with the words of your message, one at a time; reachable over
WebSocket with ``?token=let-me-in`` and over HTTP by anyone.

Each word comes `WORD_PAUSE` seconds after the last, longer than the runtime waits before
it flushes a delta to a watched instance, so a watcher gets about one ``text_delta`` per
word. A message starting with ``big`` is answered at once with a word of `BIG_WORD_CHARS`
characters, whose event is too large for a WebSocket frame (clients fetch it over HTTP).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

from agent_runtime import create_agent
from agent_runtime.messages import Message
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
)
from agent_runtime.models.test import last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse

TOKEN = "let-me-in"
WORD_PAUSE = 0.25
BIG_WORD_CHARS = 40_000


class WordByWord(Model):
    """Replies ``said: <the message>``, streaming it word by word."""

    name = "test/word-by-word"

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        text = last_user_text(request)
        if text.startswith("big"):
            reply, pause = f"said: {'x' * BIG_WORD_CHARS} {text}", 0.0
        else:
            reply, pause = f"said: {text}", WORD_PAUSE
        for word in re.findall(r"\S+\s*", reply):
            yield TextDelta(text=word)
            await asyncio.sleep(pause)
        yield ResponseDone(response=ModelResponse(message=Message.assistant(reply), stop_reason="end_turn", model=self.name))


async def websocket(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    if req.query.get("token") != TOKEN:
        return req.json({"error": {"type": "unauthorized", "message": "a valid token is required"}}, status=401)
    return await call_next()


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


model = WordByWord()
agent = create_agent(lambda ctx: dict(model=model, max_turns=2))
