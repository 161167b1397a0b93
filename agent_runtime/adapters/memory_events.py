"""In-memory event log, connection registry and poster: the reference semantics of
`EventLog`, `Connections` and `Poster`. The DynamoDB/API Gateway adapters must match."""

from __future__ import annotations

import bisect
import itertools
import threading
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace

from agent_runtime.events import Event, with_offset
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import EventPage, Subscription
from agent_runtime.settings import EVENT_TTL_SECONDS


def epoch_base(now: float) -> int:
    """First offset of a new log epoch: above any offset an earlier epoch handed out
    (an epoch would need more than one event per millisecond to outrun it)."""
    return int(now * 1000)


@dataclass(frozen=True)
class _Batch:
    first: int
    events: list[Event]
    expires_at: float

    @property
    def last(self) -> int:
        return self.first + len(self.events) - 1


class MemoryEventLog:
    def __init__(self, *, ttl_seconds: float = EVENT_TTL_SECONDS) -> None:
        self.ttl_seconds = ttl_seconds
        self._lock = threading.Lock()
        self._batches: dict[str, list[_Batch]] = defaultdict(list)

    async def append(self, instance: InstanceRef, events: Sequence[Event], *, now: float) -> list[Event]:
        if not events:
            return []
        with self._lock:
            batches = self._batches[instance.key]
            live = self._first_live(batches, now)
            if live < len(batches):
                first = batches[-1].last + 1
            else:
                first = max(batches[-1].last + 1 if batches else 0, epoch_base(now))
            del batches[:live]  # batches expire in the order they were written
            stored = [with_offset(e, first + n) for n, e in enumerate(events)]
            batches.append(_Batch(first, stored, now + self.ttl_seconds))
            return list(stored)

    @staticmethod
    def _first_live(batches: list[_Batch], now: float) -> int:
        """The index of the first batch not expired at `now` (they expire in order)."""
        return bisect.bisect_right(batches, now, key=lambda b: b.expires_at)

    async def read(self, instance: InstanceRef, *, after: int, limit: int, now: float) -> EventPage:
        with self._lock:
            found: list[Event] = []
            batches = self._batches.get(instance.key, [])
            # Offsets increase with the batches: start at the first one past `after`.
            start = max(self._first_live(batches, now), bisect.bisect_right(batches, after, key=lambda b: b.last))
            for batch in itertools.islice(batches, start, None):
                if batch.expires_at <= now or batch.last <= after:
                    continue
                found.extend(e for e in batch.events if e.offset > after)
                if len(found) >= limit:
                    break
        found = found[:limit]
        return EventPage(found, found[-1].offset if found else after)


    async def end(self, instance: InstanceRef, *, now: float) -> int:
        with self._lock:
            batches = self._batches.get(instance.key, [])
            return batches[-1].last if batches and batches[-1].expires_at > now else 0


class MemoryConnections:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[str, Subscription] = {}

    async def add(self, subscription: Subscription, *, now: float) -> None:
        with self._lock:
            self._by_id[subscription.connection_id] = subscription

    async def subscribe(self, connection_id: str, *, session: str | None, now: float) -> Subscription | None:
        with self._lock:
            current = self._by_id.get(connection_id)
            if current is None:
                return None
            updated = replace(current, session=session, subscribed=True)
            self._by_id[connection_id] = updated
            return updated

    async def get(self, connection_id: str) -> Subscription | None:
        with self._lock:
            return self._by_id.get(connection_id)

    async def remove(self, connection_id: str) -> None:
        with self._lock:
            self._by_id.pop(connection_id, None)

    async def subscribers(self, instance: InstanceRef) -> list[Subscription]:
        with self._lock:
            return [s for s in self._by_id.values() if s.instance == instance and s.subscribed]


class MemoryPoster:
    """Collects what would be sent; `gone` lists connections that no longer exist."""

    def __init__(self) -> None:
        self.sent: dict[str, list[bytes]] = defaultdict(list)
        self.gone: set[str] = set()

    async def post(self, connection_id: str, data: bytes) -> bool:
        if connection_id in self.gone:
            return False
        self.sent[connection_id].append(data)
        return True
