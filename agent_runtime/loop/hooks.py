"""Running the agent's hooks (`agent_runtime.hooks`) for one attempt: each call awaited if
it is async, a raise turned into `HookError` naming the hook, a change to the session's
context marked for saving, and message filters kept from splitting a call from its result."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from agent_runtime.hooks import EndResult, HookContext, HookError, Hooks
from agent_runtime.ledger import Outcome
from agent_runtime.loop.session import SessionView
from agent_runtime.loop.steps import Finish
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart


class HookRunner:
    def __init__(self, hooks: Callable[[], Hooks | None], session: SessionView, context: Callable[[], HookContext]) -> None:
        self.hooks = hooks  # the session owner's
        self.session = session
        self.context = context

    def has(self, name: str) -> bool:
        hooks = self.hooks()
        return hooks is not None and getattr(hooks, name) is not None

    async def call(self, name: str, *args: Any) -> Any:
        """The hook's answer (None when it has none or returned None)."""
        hooks = self.hooks()
        hook = getattr(hooks, name, None) if hooks is not None else None
        if hook is None:
            return None
        ctx = self.context()
        ctx.context = await self.session.context()
        before = self.session.snapshot()
        try:
            value = hook(*args, ctx)
            if inspect.isawaitable(value):
                value = await value
        except Exception as exc:
            raise HookError(f"the {name} hook raised {type(exc).__name__}: {exc}", details={"hook": name}) from exc
        refused = self.session.note_context(before)
        if refused is not None:
            raise HookError(f"the {name} hook: {refused}", details={"hook": name})
        return value

    async def prepare_end(self, finish: Finish) -> Finish:
        """`prepare_end` on a completed ending: it may change the result."""
        if finish.outcome is not Outcome.completed or not self.has("prepare_end"):
            return finish
        result = EndResult(text=finish.text, data=finish.data)
        changed = await self.call("prepare_end", result)
        result = changed if isinstance(changed, EndResult) else result
        return Finish(Outcome.completed, text=result.text or "", data=result.data, closing=finish.closing)

    async def messages(self, messages: list[Message]) -> list[Message]:
        """What the model is sent: the history through both filters, pairs kept whole."""
        for name in ("prefilter_llm_history", "filter_messages"):
            if self.has(name):
                changed = await self.call(name, list(messages))
                if changed is not None:
                    if not isinstance(changed, list) or not all(isinstance(m, Message) for m in changed):
                        raise HookError(f"the {name} hook must return a list of messages", details={"hook": name})
                    messages = keep_pairs(changed)
        return messages


def keep_pairs(messages: list[Message]) -> list[Message]:
    """`messages` without tool calls whose results are gone or results whose calls are."""
    calls = {p.id for m in messages for p in m.parts if isinstance(p, ToolCallPart)}
    results = {p.call_id for m in messages for p in m.parts if isinstance(p, ToolResultPart)}
    paired = calls & results
    kept: list[Message] = []
    for message in messages:
        parts = [
            p
            for p in message.parts
            if not (isinstance(p, ToolCallPart) and p.id not in paired)
            and not (isinstance(p, ToolResultPart) and p.call_id not in paired)
        ]
        if parts:
            kept.append(message if len(parts) == len(message.parts) else message.model_copy(update={"parts": parts}))
    return kept


__all__ = ["HookRunner", "keep_pairs"]
