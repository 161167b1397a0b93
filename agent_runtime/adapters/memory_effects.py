"""Effects in memory: the reference semantics of `agent_runtime.effects.EffectStore`, and
`MemoryTimers`, timers a test (or an in-process runtime) fires by asking what is due."""

from __future__ import annotations

import threading

from agent_runtime.effects import MAX_SCHEDULED, EffectNotFound, EffectRecord, Status, transitioned
from agent_runtime.ids import InstanceRef


class MemoryEffects:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._effects: dict[InstanceRef, dict[str, EffectRecord]] = {}

    async def add(self, instance: InstanceRef, record: EffectRecord) -> EffectRecord:
        with self._lock:
            mine = self._effects.setdefault(instance, {})
            return mine.setdefault(record.id, record)

    async def get(self, instance: InstanceRef, effect_id: str) -> EffectRecord | None:
        with self._lock:
            return self._effects.get(instance, {}).get(effect_id)

    async def list(
        self, instance: InstanceRef, *, status: Status | None = None, limit: int = MAX_SCHEDULED
    ) -> list[EffectRecord]:
        with self._lock:
            found = [r for r in self._effects.get(instance, {}).values() if status is None or r.status == status]
        return sorted(found, key=lambda r: (r.due_at, r.id))[:limit]

    async def transition(
        self,
        instance: InstanceRef,
        effect_id: str,
        *,
        source: tuple[Status, ...],
        target: Status,
        now: float,
        submission_id: str | None = None,
    ) -> EffectRecord:
        with self._lock:
            record = self._effects.get(instance, {}).get(effect_id)
            if record is None:
                raise EffectNotFound(f"no effect {effect_id} on {instance}")
            updated = transitioned(record, source, target, now=now, submission_id=submission_id)
            self._effects[instance][effect_id] = updated
            return updated


class MemoryTimers:
    """Armed timers by effect id; `due(now)` hands over (and forgets) the ones due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.armed: dict[str, tuple[InstanceRef, float]] = {}

    async def arm(self, instance: InstanceRef, record: EffectRecord) -> None:
        with self._lock:
            self.armed.setdefault(record.id, (instance, record.due_at))

    async def disarm(self, effect_id: str) -> None:
        with self._lock:
            self.armed.pop(effect_id, None)

    def due(self, now: float) -> list[tuple[InstanceRef, str]]:
        with self._lock:
            ready = sorted((due, eid, ref) for eid, (ref, due) in self.armed.items() if due <= now)
            for _, eid, _ in ready:
                del self.armed[eid]
        return [(ref, eid) for _, eid, ref in ready]


__all__ = ["MemoryEffects", "MemoryTimers"]
