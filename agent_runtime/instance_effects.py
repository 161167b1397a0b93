"""An instance's effects as the service offers them: listed and cancelled over HTTP, and
fired when their timer delivers (the dispatch function, `functions.dispatch_events`).

Firing is where an effect becomes work, once: the record moves ``scheduled`` ->
``fired`` (a cancelled one is dropped here, whatever the timer thinks), then the
``effect`` submission is admitted under the receipt ``effect:<id>``, so a timer that
delivers twice, or a delivery retried after a crash between the two writes, finds the
first submission again. Its id is kept on the record last.
"""

from __future__ import annotations

import logging

from agent_runtime.effects import (
    EffectNotFound,
    EffectNotPending,
    EffectRecord,
    Status,
    validate_effect_id,
)
from agent_runtime.ledger import Admission, Draft, input_hash
from agent_runtime.loop.effects_view import cancel_effect
from agent_runtime.parts import Parts

log = logging.getLogger("agent_runtime")


class InstanceEffects(Parts):
    async def list_effects(
        self, agent: str, instance_id: str, *, status: Status | None = None
    ) -> list[EffectRecord]:
        """The instance's effects, soonest due first: scheduled ones, and those fired or
        cancelled in the last 30 days."""
        return await self.stores.effects.list(self.instance(agent, instance_id), status=status)

    async def cancel_effect(self, agent: str, instance_id: str, effect_id: str) -> EffectRecord:
        """`EffectNotFound` (404) for an unknown id, `EffectNotPending` (409) once fired."""
        return await cancel_effect(self.stores, self.instance(agent, instance_id), effect_id, now=self.clock())

    async def fire_effect(self, agent: str, instance_id: str, effect_id: str) -> Admission | None:
        """Admit the effect's submission (once, however often this is called); None when
        it was cancelled."""
        instance = self.instance(agent, instance_id)
        validate_effect_id(effect_id)
        try:
            record = await self.stores.effects.transition(
                instance, effect_id, source=("scheduled", "fired"), target="fired", now=self.clock()
            )
        except EffectNotPending:
            log.info("cancelled effect not run", extra={"instance": instance.key, "effect_id": effect_id})
            return None
        except EffectNotFound:
            raise EffectNotFound(f"{instance} has no effect {effect_id}") from None
        payload = {"effect": record.name, "args": record.args, "effect_id": record.id}
        admission = await self.admit(
            instance,
            Draft(
                kind="effect",
                session=record.session,
                payload=payload,
                receipt_key=f"effect:{record.id}",
                receipt_hash=input_hash("effect", record.session, payload),
            ),
        )
        if record.submission_id is None:
            await self.stores.effects.transition(
                instance,
                effect_id,
                source=("fired",),
                target="fired",
                now=self.clock(),
                submission_id=admission.record.id,
            )
        return admission


__all__ = ["InstanceEffects"]
