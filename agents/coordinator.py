"""`coordinator`: delegates policy questions to a blocking subagent, `policy_researcher`,
and keeps notes with a resumable, non-blocking one, `note_keeper`.

The researcher runs as a child instance of each coordinator instance (its id is the
coordinator's plus ``~<ref>``): a Step Functions execution drives it while the
coordinator's submission waits, then the coordinator answers from the quote. "remember
..." goes to the note keeper (created once, then messaged): the coordinator answers at
once, and the keeper's summary arrives later as a report the coordinator reads next turn
("what do you remember?").

With ANTHROPIC_API_KEY set (or a key configured for the deployed stack) both use
anthropic models; otherwise offline models that delegate every question once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Awaitable, Callable

from agent_runtime import (
    FunctionModel,
    ModelRequest,
    Resumable,
    ToolCall,
    create_agent,
    define_agent_profile,
    subagent,
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


def _note_keeper_ref(request: ModelRequest) -> str | None:
    for message in request.messages:
        for part in message.parts:
            if isinstance(part, ToolResultPart) and part.name == "subagent_create" and not part.is_error:
                found = re.search(r"with ref (\w+)", part.content)
                if found:
                    return found.group(1)
    return None


def _offline_coordinator(request: ModelRequest) -> FunctionResult:
    answer = _result(request)
    if answer is not None:
        if answer.name == "task":
            return f"From the policy researcher: {answer.content}"
        return f"Passed to the note keeper: {answer.content}"
    question = last_user_text(request)
    if question.lower().startswith("remember"):
        ref = _note_keeper_ref(request)
        if ref:
            return ToolCall("subagent_message", {"ref": ref, "message": question})
        return ToolCall("subagent_create", {"agent": "note_keeper", "prompt": question})
    if "what do you remember" in question.lower():
        reports = [m.text for m in request.messages if m.synthetic and m.text and "note-keeper" in m.text]
        return reports[-1] if reports else "Nothing yet."
    return ToolCall("task", {"agent": "policy_researcher", "prompt": question})


def _offline_note_keeper(request: ModelRequest) -> FunctionResult:
    notes = [m.text for m in request.messages if m.role == "user" and not m.synthetic and m.text]
    return "Notes: " + "; ".join(n.removeprefix("remember").strip(" :,") for n in notes)


researcher = define_agent_profile(
    name="policy_researcher",
    description="Finds policy text and quotes it, with the section number.",
    instructions="Search the policy and return the exact quotation with its section number.",
    model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_researcher),
    tools=[search_policy],
)


note_keeper = define_agent_profile(
    name="note_keeper",
    description="Keeps the conversation's notes; send it anything worth remembering.",
    instructions="Keep a running list of what you are told to remember and answer with the whole list.",
    model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_note_keeper),
)


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


websocket = route

agent = create_agent(
    lambda ctx: dict(
        model="anthropic/claude-sonnet-4-6" if ONLINE else FunctionModel(_offline_coordinator),
        instructions=(
            "Answer policy questions. Delegate finding the policy text to policy_researcher. "
            "Send anything the user asks you to remember to your note_keeper (create it once, "
            "then message it by its ref)."
        ),
        subagents=[researcher, subagent(note_keeper, blocking=False, resumable=Resumable(max_instances=1))],
        max_turns=6,
    )
)
