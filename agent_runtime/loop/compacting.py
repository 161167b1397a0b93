"""The compaction step of a turn (`agent_runtime.compaction`): before a model request that
would pass the threshold, summarise the older messages and write the summary item."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from agent_runtime import compaction as cp
from agent_runtime import events as ev
from agent_runtime.definition import AgentConfig
from agent_runtime.messages import Message, Usage
from agent_runtime.models.base import Model, ModelRequest


async def compact_if_needed(
    history: Sequence[Message],
    config: AgentConfig,
    model: Model,
    *,
    system: str | None,
    tools: Sequence[Any],
    models: Callable[[Any], Model] | None,
    emit: Callable[..., Awaitable[None]],
    write: Callable[[list[Message]], Awaitable[None]],
    account: Callable[[str, Usage], None],
) -> list[Message]:
    """Summarise and write a summary item when the request would pass the threshold.
    Returns what the request sends of the history (`compaction.view`), with the summary
    when one was written: the view is taken once for both."""
    seen = cp.view(history)
    policy = config.compaction
    if policy is None:
        return seen
    estimate = cp.estimate_tokens(seen, system, tools)
    if estimate <= policy.threshold * policy.window(model.name):
        return seen
    covers = cp.split_point(history, policy.keep_recent)
    already = max((m.compacts or 0 for m in history if m.compacts is not None), default=0)
    if covers <= already:
        return seen  # nothing new to summarise: the request goes as it is
    await emit(ev.CompactionStart, flush=True, covers=covers, estimated_tokens=estimate)
    summariser = model if policy.model is None else (models(policy.model) if models else model)
    request = ModelRequest(
        system=cp.SUMMARY_INSTRUCTIONS, messages=[Message.user(cp.transcript(cp.view(history[:covers])))]
    )
    response = await summariser.request(request)
    account(summariser.served_by(response), response.usage)
    text = response.message.text.strip() or "(nothing to keep)"
    await write([cp.summary_message(text, covers)])
    await emit(ev.CompactionEnd, flush=True, covers=covers, summary_chars=len(text))
    return cp.view(history)


__all__ = ["compact_if_needed"]
