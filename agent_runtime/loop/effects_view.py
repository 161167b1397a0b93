"""`ctx.schedule`, `ctx.scheduled_effects` and `ctx.cancel_effect` for one attempt.

An effect's id comes from where it was scheduled (`effect_id_for`): the submission, the
scope (a tool call's id, ``dispatch`` for a handler run, ``hook-<turn>`` for hooks) and
how many effects that scope scheduled before it in this attempt. A tool or handler run
again after a crash therefore schedules the same effects again, and both writes are
idempotent: the record is kept once (`EffectStore.add`), the timer armed once
(`Timers.arm`). The record is written before the timer is armed, so a timer never fires
an effect the store does not know. A tool that is not idempotent and dies between the two
writes is not run again (its call is ``interrupted``): its effect stays listed as
scheduled without a timer, and cancelling it is the way to clear it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from agent_runtime.definition import AgentConfig
from agent_runtime.effects import (
    MAX_SCHEDULED,
    EffectNotPending,
    EffectRecord,
    checked_args,
    due_time,
    effect_id_for,
    validate_effect_id,
)
from agent_runtime.errors import InvalidInput, UserError
from agent_runtime.ids import InstanceRef, validate_session
from agent_runtime.ports import Stores


class EffectsUnavailable(UserError):
    type = "effects_unavailable"


class EffectsView:
    def __init__(
        self,
        stores: Stores,
        config: AgentConfig,
        instance: InstanceRef,
        *,
        submission_id: str,
        session: str,
        clock: Callable[[], float],
    ) -> None:
        self._stores = stores
        self._config = config
        self._instance = instance
        self._submission_id = submission_id
        self._session = session
        self._clock = clock
        self._counts: dict[str, int] = {}

    async def schedule(
        self,
        scope: str,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        delay: float | None = None,
        at: datetime | None = None,
        session: str | None = None,
    ) -> str:
        effect = self._config.effect_named(name)
        if effect is None:
            known = ", ".join(e.name for e in self._config.effects) or "none"
            raise InvalidInput(f"unknown effect {name!r} (this agent's effects: {known})", details={"field": "name"})
        timers = self._stores.timers
        if timers is None:
            raise EffectsUnavailable("this runtime has no timers for effects (no schedule group is configured)")
        now = self._clock()
        due = due_time(now, delay=delay, at=at)
        stored_args = checked_args(effect, args)
        target_session = validate_session(session) if session is not None else self._session
        n = self._counts.get(scope, 0)
        self._counts[scope] = n + 1
        record = EffectRecord(
            id=effect_id_for(self._instance, self._submission_id, scope, n),
            name=name,
            args=stored_args,
            session=target_session,
            due_at=due,
            created_at=now,
            scheduled_by=self._submission_id,
        )
        pending = await self._stores.effects.list(self._instance, status="scheduled")
        if len(pending) >= MAX_SCHEDULED and all(p.id != record.id for p in pending):
            raise InvalidInput(f"an instance has at most {MAX_SCHEDULED} effects scheduled at once")
        kept = await self._stores.effects.add(self._instance, record)
        if kept.status == "scheduled":
            await timers.arm(self._instance, kept)
        return kept.id

    async def scheduled(self, name: str | None = None) -> list[EffectRecord]:
        found = await self._stores.effects.list(self._instance, status="scheduled")
        return [r for r in found if name is None or r.name == name]

    async def cancel(self, effect_id: str) -> EffectRecord:
        """Cancel a scheduled effect: `EffectNotFound`, or `EffectNotPending` once fired."""
        return await cancel_effect(self._stores, self._instance, effect_id, now=self._clock())


async def cancel_effect(stores: Stores, instance: InstanceRef, effect_id: str, *, now: float) -> EffectRecord:
    """The one place an effect is cancelled (from tools and from the HTTP API): the record
    first (so a timer firing now finds it cancelled), then the timer."""
    validate_effect_id(effect_id)
    try:
        record = await stores.effects.transition(
            instance, effect_id, source=("scheduled",), target="cancelled", now=now
        )
    except EffectNotPending as exc:
        status = exc.details.get("status")
        raise EffectNotPending(
            f"effect {effect_id} cannot be cancelled: it {'already fired' if status == 'fired' else 'was cancelled'}",
            details={"status": status},
        ) from None
    if stores.timers is not None:
        await stores.timers.disarm(effect_id)
    return record


__all__ = ["EffectsUnavailable", "EffectsView", "cancel_effect"]
