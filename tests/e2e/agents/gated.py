"""`gated`: a submission that stays running until the test lets it go.

A message ``gate:<path>`` makes the model call `wait_for_gate(path)`, which touches
``<path>.started`` and then blocks until the file `path` exists; after the tool's result the
model answers ``passed: <the tool's result>``. Any other message is answered at once with
``quick: <text>``.

The tool is the checkpoint that makes an abort observable: a worker learns of an abort only
when its next fenced write (the tool's result) is refused.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from agent_runtime import FunctionModel, ModelRequest, ToolCall, ToolFailure, create_agent, tool
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult, last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse

PREFIX = "gate:"
#: A gate the test forgets to open must not hold the worker for ever.
GATE_TIMEOUT = 30.0


@tool
def wait_for_gate(path: str) -> str:
    """Block until a file exists.

    Args:
        path: the file to wait for
    """
    gate = Path(path)
    Path(f"{path}.started").touch()
    deadline = time.monotonic() + GATE_TIMEOUT
    while not gate.exists():
        if time.monotonic() > deadline:
            raise ToolFailure(f"{path} did not appear within {GATE_TIMEOUT:g} s")
        time.sleep(0.02)  # a plain function: the runtime runs it on a worker thread
    return "opened"


def reply(request: ModelRequest) -> FunctionResult:
    last = request.messages[-1]
    results = [p for p in last.parts if isinstance(p, ToolResultPart)]
    if results:
        return f"passed: {results[0].content}"
    text = last_user_text(request)
    if text.startswith(PREFIX):
        return ToolCall("wait_for_gate", {"path": text.removeprefix(PREFIX)})
    return f"quick: {text}"


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


model = FunctionModel(reply)
agent = create_agent(lambda ctx: dict(model=model, tools=[wait_for_gate], max_turns=4))
