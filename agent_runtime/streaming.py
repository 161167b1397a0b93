"""From a running submission to its event log and its live watchers.

`EventStream` is what the turn loop emits through. It keeps events in a buffer and
coalesces deltas: consecutive text (or thinking) deltas of one turn become one event.
The buffer is flushed, as one stored batch (one DynamoDB write), when

- `flush_bytes` of delta text are waiting (default 4 KB, ~1,000 tokens);
- the oldest buffered event has waited `live_seconds` (0.2 s) while a WebSocket client
  watches the instance, or `quiet_seconds` (1 s) while nobody does (the stream learns
  whether anybody does from each publish; before its first, it asks once an event has
  waited `live_seconds`: a drain that finds nothing to run, or flushes sooner, never asks);
- the loop reaches a boundary that matters to a watcher: a tool starts or ends, the
  submission ends, an attempt fails.

So the writes follow the audience: a model writing 60 tokens a second costs about one
write a second when nobody watches and five when somebody does, never one per token.

After each flush the batch goes to `Broadcaster.publish`, which posts one ``event``
frame per event to every subscribed connection through the `Poster` (API Gateway's
management API), and forgets connections that are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agent_runtime import settings
from agent_runtime.events import EVENT_TEXT_MAX, AgentEnd, Event, TextDelta, ThinkingDelta, iso
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import Connections, EventLog, Poster, Subscription

log = logging.getLogger("agent_runtime")

PROTOCOL_VERSION = 1
#: API Gateway refuses WebSocket frames over 32 KB; an event frame larger than this
#: names the event's offset and the HTTP path to fetch it from instead.
MAX_FRAME_BYTES = 30 * 1024


def event_fields(
    instance: InstanceRef, now: float, session: str | None = None, submission_id: str | None = None
) -> dict[str, Any]:
    """The fields every event carries, but its offset (the log gives that)."""
    return {"at": iso(now), "agent": instance.agent, "id": instance.id, "session": session, "submission_id": submission_id}


def event_frame(event: Event) -> bytes:
    """The server's ``event`` frame for one event (or a reference to fetch it)."""
    body = event.model_dump(mode="json")
    frame = json.dumps({"v": PROTOCOL_VERSION, "type": "event", "event": body}, separators=(",", ":"))
    if len(frame) <= MAX_FRAME_BYTES:
        return frame.encode()
    fetch = f"/agents/{event.agent}/{event.id}/events?after={event.offset - 1}&limit=1"
    reference = {"v": PROTOCOL_VERSION, "type": "event", "event": None, "offset": event.offset, "fetch": fetch}
    return json.dumps(reference, separators=(",", ":")).encode()


def result_frame(event: AgentEnd) -> bytes:
    """The ``result`` frame that follows an ``agent_end`` event: the submission's answer."""
    frame = {
        "v": PROTOCOL_VERSION,
        "type": "result",
        "submission_id": event.submission_id,
        "session": event.session,
        "offset": event.offset,
        "outcome": event.outcome.value,
        "result": event.result,
        "error": event.error,
    }
    data = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    if len(data.encode()) > MAX_FRAME_BYTES:
        frame["result"] = None
        frame["fetch"] = f"/agents/{event.agent}/{event.id}/submissions/{event.submission_id}"
        data = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
    return data.encode()


def frames_for(event: Event) -> list[bytes]:
    frames = [event_frame(event)]
    if isinstance(event, AgentEnd):
        frames.append(result_frame(event))
    return frames


def wants(subscription: Subscription, event: Event) -> bool:
    return subscription.session is None or event.session is None or event.session == subscription.session


class Broadcaster:
    """Fan-out of stored events to the connections subscribed to an instance.

    The subscribers are read after the batch is stored, with a strongly consistent
    read, every time: a subscribe that the read misses happened after the batch was
    stored, so the subscribe's replay (which reads the log after subscribing) has it.
    Nothing falls between the two; at worst an event arrives twice.
    """

    def __init__(self, connections: Connections, poster: Poster) -> None:
        self.connections = connections
        self.poster = poster

    async def audience(self, instance: InstanceRef) -> list[Subscription]:
        return await self.connections.subscribers(instance)

    async def publish(self, instance: InstanceRef, events: list[Event]) -> int:
        """Post `events` to the instance's subscribers; returns how many there were."""
        if not events:
            return 0
        subscribers = await self.audience(instance)
        if not subscribers:
            return 0
        frames = [(event, frames_for(event)) for event in events]
        gone: list[str] = []
        for subscription in subscribers:
            try:
                for event, data in frames:
                    if wants(subscription, event) and not await self._post_all(subscription.connection_id, data):
                        gone.append(subscription.connection_id)
                        break
            except Exception:  # one broken connection must not stop the others or the run
                log.warning("could not post to a connection", extra={"connection_id": subscription.connection_id}, exc_info=True)
        for connection_id in gone:
            await self.connections.remove(connection_id)
        return len(subscribers) - len(gone)

    async def _post_all(self, connection_id: str, frames: list[bytes]) -> bool:
        for frame in frames:
            if not await self.poster.post(connection_id, frame):
                return False
        return True


class EventStream:
    """The coalescing buffer between one instance's run and its event log.

    Use as ``async with stream:`` so a timer flushes on time while the model streams;
    leaving the block flushes what is left.
    """

    def __init__(
        self,
        instance: InstanceRef,
        log: EventLog,
        *,
        clock: Callable[[], float],
        broadcaster: Broadcaster | None = None,
        live_seconds: float = settings.EVENT_FLUSH_LIVE_SECONDS,
        quiet_seconds: float = settings.EVENT_FLUSH_QUIET_SECONDS,
        flush_bytes: int = settings.EVENT_FLUSH_BYTES,
    ) -> None:
        self.instance = instance
        self.log = log
        self.clock = clock
        self.broadcaster = broadcaster
        self.live_seconds = live_seconds
        self.quiet_seconds = quiet_seconds
        self.flush_bytes = flush_bytes
        self._buffer: list[Event] = []
        self._delta_bytes = 0
        self._oldest: float | None = None
        #: Whether a WebSocket client watches; None until a publish (or the timer) asks.
        self._watched: bool | None = None if broadcaster is not None else False
        self._lock = asyncio.Lock()
        self._timer: asyncio.Task[None] | None = None
        #: Stored batches written (one DynamoDB write each); the benchmarks read it.
        self.writes = 0

    async def __aenter__(self) -> EventStream:
        self._timer = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None
        await self.flush()

    def fields(self, session: str | None = None, submission_id: str | None = None) -> dict[str, Any]:
        """The fields every event of this stream carries."""
        return event_fields(self.instance, self.clock(), session, submission_id)

    @property
    def interval(self) -> float:
        """How long the oldest buffered event may wait (the shorter one until it is known
        whether anybody watches)."""
        if self._watched is None:
            return min(self.live_seconds, self.quiet_seconds)
        return self.live_seconds if self._watched else self.quiet_seconds

    async def emit(self, event: Event, *, flush: bool = False) -> None:
        if isinstance(event, TextDelta | ThinkingDelta):
            self._add_delta(event)
        else:
            self._buffer.append(event)
        if self._oldest is None:
            self._oldest = time.monotonic()
        if flush or self._delta_bytes >= self.flush_bytes:
            await self.flush()

    def _add_delta(self, event: TextDelta | ThinkingDelta) -> None:
        self._delta_bytes += len(event.text.encode())
        last = self._buffer[-1] if self._buffer else None
        if (
            type(last) is type(event)
            and isinstance(last, TextDelta | ThinkingDelta)
            and last.turn == event.turn
            and last.submission_id == event.submission_id
            and len(last.text) + len(event.text) <= EVENT_TEXT_MAX
        ):
            self._buffer[-1] = last.model_copy(update={"text": last.text + event.text})
            return
        # A single delta larger than an event may hold is cut into several.
        for start in range(0, max(1, len(event.text)), EVENT_TEXT_MAX):
            self._buffer.append(event.model_copy(update={"text": event.text[start : start + EVENT_TEXT_MAX]}))

    async def flush(self) -> None:
        async with self._lock:
            if not self._buffer:
                return
            batch, self._buffer = self._buffer, []
            delta_bytes, self._delta_bytes = self._delta_bytes, 0
            oldest, self._oldest = self._oldest, None
            try:
                stored = await self.log.append(self.instance, batch, now=self.clock())
            except BaseException:
                # Nothing was stored: keep the batch in front of what came meanwhile.
                self._buffer = batch + self._buffer
                self._delta_bytes += delta_bytes
                self._oldest = oldest
                raise
            self.writes += 1
            if self.broadcaster is not None:
                self._watched = bool(await self.broadcaster.publish(self.instance, stored))

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(min(self.interval, 0.05))
            oldest = self._oldest
            if oldest is None or time.monotonic() - oldest < self.interval:
                continue
            if self._watched is None and self.broadcaster is not None:
                try:
                    self._watched = bool(await self.broadcaster.audience(self.instance))
                except Exception:  # flushed on the quiet interval until a publish knows better
                    log.warning("could not read the instance's watchers", exc_info=True)
                    self._watched = False
                if time.monotonic() - oldest < self.interval:
                    continue
            try:
                await self.flush()
            except Exception:  # the next flush (or the final one) tries again
                log.warning("event flush failed", exc_info=True)


__all__ = ["PROTOCOL_VERSION", "Broadcaster", "EventStream", "event_fields", "event_frame", "frames_for", "result_frame", "wants"]
