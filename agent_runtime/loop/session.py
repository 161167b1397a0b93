"""The session's state for one attempt (`SessionState`: owner, side, context, status).

Read from the `Sessions` store when first needed (at the start for an agent with handoffs
or two sides, whose owner or side decides what runs; otherwise when a tool first reaches
for `ctx.context`), then kept in the journal, which every checkpoint writes: a new attempt
resumes with the state the last one had, never re-reading a store that is behind it.
What the submission changed is stored (fenced) just before it settles.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from agent_runtime.ledger import Fence, Journal, SessionState
from agent_runtime.ports import Stores


class SessionView:
    def __init__(self, stores: Stores, fence: Fence, journal: Journal) -> None:
        self.stores = stores
        self.fence = fence
        self.journal = journal

    async def state(self) -> SessionState:
        if self.journal.session_state is None:
            self.journal.session_state = await self.stores.sessions.get(self.fence.instance, self.fence.session)
        return self.journal.session_state

    @property
    def loaded(self) -> SessionState | None:
        return self.journal.session_state

    def changed(self) -> None:
        self.journal.session_changed = True

    async def context(self) -> dict[str, Any]:
        """The session's context variables, for a tool to read and change in place."""
        return (await self.state()).context

    def snapshot(self) -> Any:
        return copy.deepcopy(self.loaded.context) if self.loaded is not None else None

    def note_context(self, before: Any) -> str | None:
        """Mark the state changed if the context differs from `before` (a `snapshot`). A
        context that is no longer JSON is put back as it was; the reason is returned."""
        state = self.loaded
        if state is None or state.context == before:
            return None
        try:
            json.dumps(state.context, allow_nan=False)
        except (TypeError, ValueError) as exc:
            state.context.clear()
            state.context.update(before or {})
            return f"ctx.context must hold JSON values only ({exc}); the change was undone"
        self.changed()
        return None

    async def save(self, *, now: float) -> None:
        if self.journal.session_changed and self.journal.session_state is not None:
            await self.stores.sessions.put(self.fence, self.journal.session_state, now=now)


__all__ = ["SessionView"]
