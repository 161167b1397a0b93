"""`asset-maker`: a two-sided agent. The Worker drafts a tagline and saves it to
/asset/tagline.md; the Reviewer approves it (ending the session with the file attached),
asks for a shorter one, or rejects the request. A prompt goes to the Worker.

Offline (no ANTHROPIC_API_KEY) both sides are small function models: the Worker drops a
word from its draft each time it is told to shorten it; the Reviewer approves a tagline of
at most 5 words. ``agent-runtime send asset-maker A-1 "a tagline for a coffee shop"``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

from agent_runtime import FunctionModel, ModelRequest, ToolCall, ToolContext, create_agent, tool
from agent_runtime.dual import LifecycleTool, Side
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult, last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse
from agent_runtime.settings import ENV_MODEL_SECRET_ARN

ONLINE = bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get(ENV_MODEL_SECRET_ARN))
FIRST_DRAFT = "Fresh coffee brewed with care for every neighbour"


@tool
async def save_tagline(text: str, ctx: ToolContext) -> str:
    """Save the tagline draft.

    Args:
        text: the tagline
    """
    assert ctx.files is not None
    await ctx.files.write("/asset/tagline.md", text + "\n", media_type="text/markdown")
    return f"saved /asset/tagline.md ({len(text.split())} words)"


def _results(request: ModelRequest) -> list[ToolResultPart]:
    return [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]


def _drafts(request: ModelRequest) -> list[str]:
    return [str(c.arguments.get("text", "")) for m in request.messages for c in m.tool_calls if c.name == "save_tagline"]


def _offline_worker(request: ModelRequest) -> FunctionResult:
    drafts = _drafts(request)
    if _results(request):
        return f"Draft ({len(drafts[-1].split())} words): {drafts[-1]}"
    words = (drafts[-1] if drafts else FIRST_DRAFT).split()
    return ToolCall("save_tagline", {"text": " ".join(words[:-1] if drafts else words)})


def _offline_reviewer(request: ModelRequest) -> FunctionResult:
    if _results(request):
        return "Shorter, please: at most 5 words."
    counted = re.search(r"Draft \((\d+) words\)", last_user_text(request))
    if counted and int(counted.group(1)) <= 5:
        return ToolCall("approve_tagline", {"summary": "Approved the tagline.", "files": ["/asset/tagline.md"]})
    return ToolCall("tagline_status", {"status": f"draft too long ({counted.group(1) if counted else '?'} words)"})


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


agent = create_agent(
    kind="dual_ai",
    max_session_turns=12,
    side_a=Side(
        label="Worker",
        instructions="Write the tagline asked for and save it with save_tagline, then say it is saved.",
        model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_worker),
        tools=[save_tagline],
        session_fail=LifecycleTool("give_up", message_property="reason"),
    ),
    side_b=Side(
        label="Reviewer",
        instructions="Review the saved tagline: approve one of at most 5 words, else ask for a shorter one.",
        model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_reviewer),
        session_stop=LifecycleTool("approve_tagline", message_property="summary", attachments_property="files"),
        session_status=LifecycleTool("tagline_status", message_property="status"),
    ),
)
