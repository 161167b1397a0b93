"""`support-assistant`: a support agent with order lookup, ticket notes, the ticket's files
(attach a screenshot or a PDF to a prompt; the file tools read and write notes), a
per-ticket variable, `CUSTOMER_TIER`, rendered into its instructions, and follow-ups: the
`remind_me` tool schedules the `follow_up` effect, which later asks the model to check on
the ticket in the same session (``GET /agents/support-assistant/{id}/effects`` lists them).

Uses `anthropic/claude-haiku-4-5` when ANTHROPIC_API_KEY is set (or a key is
configured for the deployed stack), and the offline `test/echo` model otherwise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from agent_runtime import (
    RouteRequest,
    ToolContext,
    ToolFailure,
    Variable,
    create_agent,
    effect,
    env,
    tool,
)
from agent_runtime.routing import RouteResponse
from agent_runtime.settings import ENV_MODEL_SECRET_ARN

if TYPE_CHECKING:
    from agent_runtime.loop.dispatch import DispatchContext

ORDERS = {
    "A-100": {"status": "shipped", "carrier": "UPS", "eta": "2 days"},
    "A-101": {"status": "processing", "carrier": None, "eta": "5 days"},
}

MODEL = (
    "anthropic/claude-haiku-4-5"
    if os.environ.get("ANTHROPIC_API_KEY") or os.environ.get(ENV_MODEL_SECRET_ARN)
    else "test/echo"
)
logging.getLogger("agent_runtime").warning(
    "support-assistant uses %s%s",
    MODEL,
    "" if MODEL.startswith("anthropic/") else " (set ANTHROPIC_API_KEY to use anthropic/claude-haiku-4-5)",
)


@tool
def lookup_order(order_id: str) -> dict[str, object]:
    """Fetch one order by id.

    Args:
        order_id: the order number, like A-100
    """
    order = ORDERS.get(order_id)
    if order is None:
        raise ToolFailure(f"no order {order_id}")
    return {"order_id": order_id, **order}


@tool
async def add_ticket_note(note: str, ctx: ToolContext) -> str:
    """Add a note to this ticket's record, kept with the instance.

    Args:
        note: what to remember about the ticket
    """
    notes = await ctx.kv.get("notes") or []
    await ctx.kv.put("notes", [*notes, note])
    return f"noted ({len(notes) + 1} notes on this ticket)"


@effect
async def follow_up(ctx: DispatchContext, reason: str) -> str:
    """Ask the model to check on the ticket, in the session that scheduled it."""
    await ctx.session.prompt(f"Follow-up due: {reason}. Check the ticket's notes and say what is next.")
    return f"follow-up queued: {reason}"


@tool
async def remind_me(reason: str, hours: float, ctx: ToolContext) -> str:
    """Come back to this ticket later (for example to check that a refund arrived).

    Args:
        reason: what to check
        hours: when, in hours from now (at most 8760)
    """
    effect_id = await ctx.schedule("follow_up", {"reason": reason}, delay=hours * 3600)
    return f"follow-up {effect_id} scheduled in {hours:g} hours"


async def route(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    token = os.environ.get("SUPPORT_ASSISTANT_TOKEN")
    if token and req.headers.get("authorization") != f"Bearer {token}":
        return req.json({"error": {"type": "unauthorized", "message": "a bearer token is required"}}, status=401)
    return await call_next()


async def websocket(req: RouteRequest, call_next: Callable[[], Awaitable[RouteResponse]]) -> RouteResponse:
    """Browsers cannot set headers on a WebSocket: the token comes as ``?token=``."""
    token = os.environ.get("SUPPORT_ASSISTANT_TOKEN")
    if token and req.query.get("token") != token and req.headers.get("authorization") != f"Bearer {token}":
        return req.json({"error": {"type": "unauthorized", "message": "a token is required"}}, status=401)
    return await call_next()


agent = create_agent(
    lambda ctx: dict(
        model=MODEL,
        instructions=[
            f"You are the support assistant for ticket {ctx.id}. Look orders up before answering "
            "questions about them, and note anything the next agent should know. Files the "
            "customer attached are in /attachments/; keep longer notes in /notes/.",
            "The customer's tier:",
            env("CUSTOMER_TIER"),
        ],
        variables=[Variable("CUSTOMER_TIER", default="standard", description="standard, gold or platinum")],
        file_tools=True,
        skills="skills",  # load_skill: the refund policy, when a refund comes up
        tools=[lookup_order, add_ticket_note, remind_me],
        max_turns=8,
    )
)
