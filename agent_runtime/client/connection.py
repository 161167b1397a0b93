"""The WebSocket `Connection`: an instance's events in offset order, each once.

How it keeps that promise (dropping duplicates, filling gaps over HTTP, reconnecting
after the last offset seen) is told in the package's docstring (`agent_runtime.client`).
It reads over HTTP through the `AsyncAgentClient` that opened it, which it knows only
as a type: `http` imports this module, never the other way round.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import ValidationError

from agent_runtime.client.calls import _fetch
from agent_runtime.client.errors import (
    AgentClientError,
    ConnectionLost,
    PayloadTooLarge,
    error_for,
    error_from_reply,
)
from agent_runtime.events import EVENT_ADAPTER, Event
from agent_runtime.protocol import DEFAULT_SESSION, WS_PROTOCOL_VERSION, Submission

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

    from agent_runtime.client.http import AsyncAgentClient

# Named for the package, not this module: one logger for the whole SDK.
log = logging.getLogger("agent_runtime.client")

#: API Gateway closes a WebSocket message over 128 KB, and a frame over 32 KB unless the
#: message is sent in fragments: prompts are sent in fragments of at most this many
#: characters (4 bytes each at most in UTF-8), and refused above `MAX_WS_MESSAGE_BYTES`.
WS_FRAGMENT_CHARS = 8000
MAX_WS_MESSAGE_BYTES = 128 * 1024
#: A subscribe replays at most this many events (`functions.websocket.REPLAY_MAX`); a
#: connection further behind reads the rest over HTTP.
WS_REPLAY_MAX = 5000
#: Close codes that say the server will not take this client back: no reconnect.
_FINAL_CLOSE_CODES = frozenset({1002, 1003, 1007, 1008, 1010})


def _websockets_connect() -> Any:
    try:
        from websockets.asyncio.client import connect
    except ImportError:
        raise ImportError(
            "streaming over WebSocket needs the websockets package: pip install 'agent-runtime[client]'"
        ) from None
    return connect


def _frame(kind: str, **fields: Any) -> dict[str, Any]:
    return {"v": WS_PROTOCOL_VERSION, "type": kind, **{k: v for k, v in fields.items() if v is not None}}


def _frame_error(frame: dict[str, Any]) -> AgentClientError:
    raw_error, raw_status = frame.get("error"), frame.get("status")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    status = raw_status if isinstance(raw_status, int) else 500
    details = error.get("details") if isinstance(error.get("details"), dict) else None
    return error_for(status, str(error.get("type", "error")), str(error.get("message", "")), details)


@dataclass
class _Pending:
    """A request frame waiting for its ``accepted`` (or ``error``) reply. Prompts are sent
    again after a reconnect (the request id makes that safe: the same submission comes
    back); an abort is not, as a second one could stop a newer submission."""

    data: str
    future: asyncio.Future[dict[str, Any]]
    resend: bool


_END = object()


class Connection:
    """An instance's events over WebSocket, in offset order, each once; see `connect`.

    Frames are read by a task of its own, so events wait in the connection (unbounded)
    until the caller iterates; `offset` is the last one the caller got.
    """

    def __init__(
        self,
        client: AsyncAgentClient,
        url: str,
        *,
        name: str,
        instance_id: str,
        session: str | None,
        after: int | None,
        reconnect_attempts: int,
        open_timeout: float,
    ) -> None:
        self._client = client
        self._url = url
        self.name = name
        self.instance_id = instance_id
        self.session = session
        self.reconnect_attempts = reconnect_attempts
        self.open_timeout = open_timeout
        #: The last offset received: what a reconnect subscribes after.
        self._seen = after
        self.offset = after
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._pending: dict[str, _Pending] = {}
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._ended = False
        #: Offsets of events of types this client does not know: skipped, not missing.
        self._unknown: set[int] = set()
        #: How many times the connection was reopened after a drop.
        self.reconnects = 0

    async def __aenter__(self) -> Connection:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> Connection:
        return self

    async def __anext__(self) -> Event:
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)
            raise StopAsyncIteration
        if isinstance(item, BaseException):
            raise item
        event: Event = item
        self.offset = event.offset
        return event

    @property
    def websocket(self) -> ClientConnection | None:
        """The socket in use now (it changes on reconnect)."""
        return self._ws

    async def open(self) -> None:
        self._ws = await self._establish()
        self._task = asyncio.get_running_loop().create_task(self._supervise())

    async def close(self) -> None:
        """Close the socket; iteration ends once the events already received are out."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
        if self._ws is not None:
            await self._ws.close()
        self._finish(ConnectionLost(None, "connection_closed", "the connection was closed"), end_only=True)

    async def prompt(
        self, message: str, *, session: str | None = None, request_id: str | None = None, timeout: float = 30.0  # noqa: ASYNC109
    ) -> Submission:
        """Admit a prompt over this socket; returns its submission once ``accepted``.

        The connection then gets the run's events (the socket subscribes first, so none
        pass it by). `request_id` is the prompt's idempotency key: the same id and message
        return the same submission, which is what makes the resend after a reconnect
        safe. A message over 128 KB in UTF-8 raises `PayloadTooLarge`: use HTTP for it.
        """
        frame = _frame(
            "prompt",
            request_id=request_id or uuid.uuid4().hex,
            message=message,
            session=session or self.session or DEFAULT_SESSION,
        )
        reply = await self._request(frame, resend=True, timeout=timeout)
        return Submission.model_validate(reply["submission"])

    async def abort(self, *, queued: bool = False, timeout: float = 30.0) -> list[str]:  # noqa: ASYNC109
        """Ask the running submission (and the queued ones) to stop; the ids asked.
        Raises `ConnectionLost` if the socket drops before the answer: it may have happened."""
        frame = _frame("abort", request_id=uuid.uuid4().hex, queued=queued or None)
        reply = await self._request(frame, resend=False, timeout=timeout)
        return [str(i) for i in reply.get("aborted", [])]

    async def _request(self, frame: dict[str, Any], *, resend: bool, timeout: float) -> dict[str, Any]:  # noqa: ASYNC109
        if self._task is None or self._task.done():
            raise ConnectionLost(None, "connection_closed", "the connection is not open")
        data = json.dumps(frame, separators=(",", ":"), ensure_ascii=False)
        if len(data.encode()) > MAX_WS_MESSAGE_BYTES:
            raise PayloadTooLarge(
                413, "payload_too_large", f"a WebSocket message is limited to {MAX_WS_MESSAGE_BYTES} bytes"
            )
        request_id = str(frame["request_id"])
        pending = _Pending(data, asyncio.get_running_loop().create_future(), resend)
        self._pending[request_id] = pending
        try:
            await self._send(data)
            return await asyncio.wait_for(pending.future, timeout)
        finally:
            if self._pending.get(request_id) is pending:
                del self._pending[request_id]

    async def _send(self, data: str) -> None:
        from websockets.exceptions import ConnectionClosed

        ws = self._ws
        if ws is None:
            return
        fragments = [data[i : i + WS_FRAGMENT_CHARS] for i in range(0, len(data), WS_FRAGMENT_CHARS)]
        # A socket that dropped is replaced by the supervisor, which sends pending prompts again.
        with contextlib.suppress(ConnectionClosed):
            await ws.send(fragments[0] if len(fragments) == 1 else fragments)

    # -- opening and reopening -----------------------------------------------------------

    async def _establish(self) -> ClientConnection:
        """Connect, subscribe after the last offset seen, read up to ``ready``, and hand
        out what arrived meanwhile in order. Raises the refusal's `AgentClientError`."""
        from websockets.exceptions import InvalidStatus

        connect = _websockets_connect()
        try:
            ws: ClientConnection = await connect(self._url, open_timeout=self.open_timeout)
        except InvalidStatus as exc:
            raise error_from_reply(exc.response.status_code, bytes(exc.response.body or b"")) from None
        try:
            async with asyncio.timeout(self.open_timeout):
                await ws.send(json.dumps(_frame("subscribe", after=self._seen, session=self.session)))
                arrived: dict[int, Event] = {}
                while True:
                    frame = json.loads(await ws.recv())
                    kind = frame.get("type")
                    if kind == "event":
                        event = await self._event_of(frame)
                        if event is not None:
                            arrived[event.offset] = event
                    elif kind == "ready":
                        break
                    elif kind == "error":
                        raise _frame_error(frame)
                    else:
                        self._on_frame(frame)
            ready = int(frame["offset"])
            if self._seen is None:
                self._seen = self.offset = ready  # "from now": the end of the log at subscribe
            # The replay stops after `WS_REPLAY_MAX` events: one that may have stopped short
            # is followed by reading the rest of the log over HTTP.
            capped = ready - self._seen >= WS_REPLAY_MAX
        except BaseException:
            await ws.close()
            raise
        for offset in sorted(arrived):
            await self._accept(arrived[offset])
        if capped:
            await self._fill(self._seen, None)
        return ws

    async def _accept(self, event: Event) -> None:
        """Hand `event` out unless it was already; first, the events it skipped.

        Offsets are consecutive within a log epoch, so a skipped offset is an event that
        was posted out of order (two writers: an admission and the worker), or not posted
        to this socket at all (a poster that had not seen this subscription yet, just
        after a subscribe). The log has it: it is read over HTTP. A skip that was another
        session's events (when subscribed to one session) or a new epoch costs one read.
        """
        seen = self._seen
        if seen is not None and event.offset <= seen:
            return  # sent twice around a subscribe, or replayed after a reconnect
        if seen is not None and any(o not in self._unknown for o in range(seen + 1, event.offset)):
            await self._fill(seen, event.offset)
        self._put(event)

    async def _fill(self, after: int, before: int | None) -> None:
        """Hand out the logged events after `after` (and below `before`), read over HTTP.
        Best effort: when the HTTP API cannot be read, the stream goes on without them."""
        try:
            while before is None or after < before - 1:
                limit = 1000 if before is None else min(1000, before - after - 1)
                page = await self._client.events(self.name, self.instance_id, after=after, limit=limit)
                for event in page.events:
                    if before is not None and event.offset >= before:
                        return
                    if self.session is None or event.session in (None, self.session):
                        self._put(event)
                if not page.events:
                    return
                after = page.last
        except (AgentClientError, httpx.HTTPError, ValidationError) as exc:
            log.warning("could not read the events after offset %d over HTTP: %s", after, exc)

    def _put(self, event: Event) -> None:
        if self._seen is None or event.offset > self._seen:
            self._seen = event.offset
            self._queue.put_nowait(event)

    async def _reopen(self) -> ClientConnection:
        delay = 0.1
        for attempt in range(1, self.reconnect_attempts + 1):
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, 5.0)
            try:
                return await self._establish()
            except AgentClientError as exc:
                if exc.status is not None and exc.status < 500 and exc.status != 429:
                    raise  # refused: the same request will be refused again
                log.info("reconnect %d failed: %s", attempt, exc)
            except (OSError, TimeoutError, ValueError) as exc:
                log.info("reconnect %d failed: %s", attempt, exc)
            except Exception as exc:  # websockets' handshake errors
                log.info("reconnect %d failed: %r", attempt, exc)
        raise ConnectionLost(None, "connection_lost", f"could not reconnect in {self.reconnect_attempts} attempts")

    async def _supervise(self) -> None:
        """Read frames; when the socket drops, reopen it and send pending prompts again."""
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                ws = self._ws
                assert ws is not None
                with contextlib.suppress(ConnectionClosed):
                    async for raw in ws:
                        await self._on_raw(raw)
                if self._closing:
                    return
                code = ws.close_code
                if code in _FINAL_CLOSE_CODES or self.reconnect_attempts <= 0:
                    raise ConnectionLost(None, "connection_closed", f"closed by the server ({code} {ws.close_reason})")
                for request_id, pending in list(self._pending.items()):
                    if not pending.resend and not pending.future.done():
                        pending.future.set_exception(
                            ConnectionLost(None, "connection_lost", f"the connection dropped before {request_id} was answered")
                        )
                log.info("connection dropped (%s); reconnecting after offset %s", code, self._seen)
                self._ws = await self._reopen()
                self.reconnects += 1
                for pending in list(self._pending.values()):
                    if pending.resend and not pending.future.done():
                        await self._send(pending.data)
        except Exception as exc:
            self._finish(exc)

    def _finish(self, exc: Exception, *, end_only: bool = False) -> None:
        """End the connection: fail pending requests, and end iteration (after raising
        `exc` once, unless `end_only`)."""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(exc)
        if not self._ended:
            self._ended = True
            if not end_only:
                self._queue.put_nowait(exc)
            self._queue.put_nowait(_END)

    # -- frames --------------------------------------------------------------------------

    async def _on_raw(self, raw: str | bytes) -> None:
        try:
            frame = json.loads(raw)
        except ValueError:
            log.warning("ignoring a frame that is not JSON")
            return
        if not isinstance(frame, dict):
            return
        if frame.get("type") == "event":
            event = await self._event_of(frame)
            if event is not None:
                await self._accept(event)
        else:
            self._on_frame(frame)

    def _on_frame(self, frame: dict[str, Any]) -> None:
        kind, request_id = frame.get("type"), frame.get("request_id")
        pending = self._pending.get(request_id) if isinstance(request_id, str) else None
        if kind == "accepted" and pending is not None and not pending.future.done():
            pending.future.set_result(frame)
        elif kind == "error" and pending is not None and not pending.future.done():
            pending.future.set_exception(_frame_error(frame))
        elif kind == "error":
            self._queue.put_nowait(_frame_error(frame))
        elif kind is None and "message" in frame:
            # API Gateway's report of a failed invocation; it names no request.
            log.warning("the server failed a request: %s", frame.get("message"))

    async def _event_of(self, frame: dict[str, Any]) -> Event | None:
        """The frame's event; one too large for a frame is fetched from its ``fetch`` path."""
        body = frame.get("event")
        if body is None:
            offset = int(frame["offset"])
            if self._seen is not None and offset <= self._seen:
                return None  # seen already: not worth a request
            page = await self._client._send(_fetch(str(frame["fetch"])))
            found = [e for e in page.events if e.offset == offset]
            if not found:
                log.warning("event %d is no longer kept", offset)
                return None
            return found[0]
        try:
            return EVENT_ADAPTER.validate_python(body)
        except ValidationError:
            # An event type newer than this client: skipped, and not taken for a gap.
            log.warning("skipping an event this client does not know: %s", body.get("type"))
            if isinstance(body.get("offset"), int):
                self._unknown.add(body["offset"])
            return None


__all__ = ["MAX_WS_MESSAGE_BYTES", "WS_FRAGMENT_CHARS", "WS_REPLAY_MAX", "Connection"]
