"""`front-desk`: a triage agent that hands billing questions to `BillingAgent`, which owns
the conversation from then on and hands it back when the customer is done with billing.

Offline (no ANTHROPIC_API_KEY) both run on small function models: triage hands over any
message that mentions a charge, refund or invoice; billing answers from the notes it keeps
in the session's context and hands back on "thanks". Try it with ``agent-runtime chat
front-desk C-1``: "I was charged twice", then "and my invoice?", then "thanks".
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from agent_runtime import (
    FunctionModel,
    ModelRequest,
    ToolCall,
    ToolContext,
    create_agent,
    define_agent_profile,
    instructions,
    tool,
)
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.test import FunctionResult, last_user_text
from agent_runtime.routing import RouteRequest, RouteResponse
from agent_runtime.settings import ENV_MODEL_SECRET_ARN

ONLINE = bool(os.environ.get("ANTHROPIC_API_KEY") or os.environ.get(ENV_MODEL_SECRET_ARN))
BILLING_WORDS = ("charge", "refund", "invoice", "bill")


@tool
async def note_issue(issue: str, ctx: ToolContext) -> str:
    """Note the customer's billing issue for this conversation.

    Args:
        issue: the issue in a few words
    """
    ctx.context.setdefault("issues", []).append(issue)
    return f"noted ({len(ctx.context['issues'])} issue(s) so far)"


def _result(request: ModelRequest) -> ToolResultPart | None:
    parts = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
    return parts[0] if parts else None


def _offline_triage(request: ModelRequest) -> FunctionResult:
    done = _result(request)
    if done is not None and done.name == "transfer_to_triage_agent":
        return "Welcome back to the front desk. Anything else?"
    if any(word in last_user_text(request).lower() for word in BILLING_WORDS):
        return ToolCall("transfer_to_billing_agent", {})
    return "Front desk here: I route billing questions to our billing team. How can I help?"


def _offline_billing(request: ModelRequest) -> FunctionResult:
    done = _result(request)
    text = last_user_text(request)
    if done is not None and done.name == "note_issue":
        return f"Billing here: I have noted it ({done.content}). Anything else on billing?"
    if text.lower().startswith("thanks"):
        return ToolCall("transfer_to_triage_agent", {})
    return ToolCall("note_issue", {"issue": text[:80]})


billing = define_agent_profile(
    name="BillingAgent",
    description="Billing specialist.",
    handoff_description="Handles charges, refunds and invoices.",
    instructions=instructions.supervisor_subagent(
        purpose=["You resolve billing questions: charges, refunds, invoices."],
        routine=["Note each issue with note_issue.", "Hand back to the front desk when the customer is done."],
    ),
    model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_billing),
    tools=[note_issue],
    handoffs=[lambda: triage],
)

triage = define_agent_profile(
    name="TriageAgent",
    description="The front desk.",
    instructions=instructions.swarm(
        purpose=["You greet customers and route them."],
        routine=["Hand billing questions to the billing agent at once.", "Answer anything else briefly."],
    ),
    model="anthropic/claude-haiku-4-5" if ONLINE else FunctionModel(_offline_triage),
    handoffs=[billing],
)


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    return await call_next()


websocket = route

agent = create_agent(profile=triage, max_turns=8)
