"""`coordinator`: delegates policy questions to a blocking subagent, `policy_researcher`.

The researcher runs as a child instance of each coordinator instance (its id is the
coordinator's plus ``~<ref>``): a Step Functions execution drives it while the
coordinator's submission waits, then the coordinator answers from the quote.

With ANTHROPIC_API_KEY set (or a key configured for the deployed stack) both use
anthropic models; otherwise offline models that delegate every question once.
"""

from __future__ import annotations

import os
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
from agent_runtime.settings import ENV_MODEL_SECRET_ARN

ONLINE = bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get(ENV_MODEL_SECRET_ARN))

POLICY = {
    "refunds": "4.2 Refunds: purchases may be refunded within 30 days with a receipt.",
    "shipping": "2.1 Shipping: orders ship within 2 business days.",
}


@tool
def search_policy(topic: str) -> str:
    """Find the policy section on a topic.

    Args:
        topic: one word, like refunds or shipping
    """
    return POLICY.get(topic.lower(), f"no policy section on {topic!r}")


def _result(request: ModelRequest) -> ToolResultPart | None:
    parts = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
    return parts[0] if parts else None


def _offline_researcher(request: ModelRequest) -> FunctionResult:
    found = _result(request)
    if found is not None:
        return f"Quote: {found.content}"
    question = last_user_text(request).lower()
    topic = next((t for t in POLICY if t in question), "refunds")
    return ToolCall("search_policy", {"topic": topic})


def _offline_coordinator(request: ModelRequest) -> FunctionResult:
    answer = _result(request)
    if answer is not None:
        return f"From the policy researcher: {answer.content}"
    return ToolCall("task", {"agent": "policy_researcher", "prompt": last_user_text(request)})


researcher = define_agent_profile(
    name="policy_researcher",
    description="Finds policy text and quotes it, with the section number.",
    instructions="Search the policy and return the exact quotation with its section number.",
    model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_researcher),
    tools=[search_policy],
)


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


websocket = route

agent = create_agent(
    lambda ctx: dict(
        model="anthropic/claude-sonnet-4-6" if ONLINE else FunctionModel(_offline_coordinator),
        instructions="Answer policy questions. Delegate finding the policy text to policy_researcher.",
        subagents=[researcher],
        max_turns=6,
    )
)
