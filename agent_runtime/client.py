"""The Python SDK: talk to deployed (or local) agents over HTTP, and stream over WebSocket.

    with AgentClient("https://abc.execute-api.eu-west-1.amazonaws.com", token="...") as client:
        reply = client.prompt("support-assistant", "T-42", "Where is my order?")
        print(reply.result.text if reply.result else reply.submission.status)

    async with AsyncAgentClient(url, ws_url=ws_url) as client:
        async with client.connect("support-assistant", "T-42") as conn:
            submission = await conn.prompt("Where is my order?")
            async for event in conn:
                if event.type == "text_delta":
                    print(event.text, end="")
                if event.type == "agent_end" and event.submission_id == submission.id:
                    break

`AgentClient` (httpx.Client) and `AsyncAgentClient` (httpx.AsyncClient) have the same
methods and return the wire models of `agent_runtime.protocol` (`PromptResponse`,
`Submission`, `DispatchReceipt`, `HistoryPage`, `EventsPage`, `AbortResponse`). Both build
each request from the same description (`_Call`), so they cannot drift apart. A `token` is
sent as ``Authorization: Bearer <token>`` over HTTP and as the ``token`` query parameter over
WebSocket, where browsers cannot set headers and agents' ``websocket`` hooks look for it.

The WebSocket API is a separate endpoint (another host on AWS, another port locally), so
its URL is never derived from `base_url`: pass `ws_url`, or set ``AGENT_RUNTIME_WS_URL``
(the stack's ``WebSocketUrl`` output, or what ``agent-runtime dev`` prints). `connect`
needs the optional dependency ``websockets``: ``pip install 'agent-runtime[client]'``.

A `Connection` hands out an instance's events in offset order, each once. It subscribes
with `after` (None: from now), drops any event at or below the last offset it has seen (the
server may send one twice around a subscribe), reads over HTTP the events too large for a
frame and those it finds skipped (offsets are consecutive, so a skip is an event posted out
of order or not posted to this socket), and when the connection drops it reconnects with
backoff and subscribes again after the last offset seen, so the caller sees neither a gap
nor a duplicate. The HTTP reads need the agent's ``route`` hook, as every HTTP route does.

Errors: every reply outside 2xx raises an `AgentClientError` carrying the reply's status and
``{"error": {"type", "message", "details"?}}``; its class comes from the type, else the status.
Network failures stay httpx's (`httpx.TransportError`) on HTTP.

    AgentRuntimeError
    └── AgentClientError        status, type, message, details
        ├── InvalidRequest      400: invalid_json, invalid_request
        │   └── PayloadTooLarge 413
        ├── Unauthorized        401, 403: refused by the agent's route or websocket hook
        ├── NotFound            404: agent_not_found, submission_not_found
        ├── Conflict            409: an idempotency key or dispatch id reused with other input
        ├── RateLimited         429
        ├── ServerError         5xx
        └── ConnectionLost      no status: the WebSocket dropped and could not be reopened
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar
from urllib.parse import quote, urlencode

import httpx
from pydantic import ValidationError

from agent_runtime.errors import AgentRuntimeError
from agent_runtime.events import EVENT_ADAPTER, Event
from agent_runtime.protocol import (
    DEFAULT_SESSION,
    MAX_WAIT_SECONDS,
    WS_PROTOCOL_VERSION,
    AbortResponse,
    DispatchReceipt,
    EventsPage,
    HistoryMessage,
    HistoryPage,
    PromptResponse,
    Submission,
)

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

log = logging.getLogger("agent_runtime.client")

ENV_WS_URL = "AGENT_RUNTIME_WS_URL"
#: API Gateway gives an integration 30 s: a request waiting 25 s is answered by then.
DEFAULT_TIMEOUT = httpx.Timeout(35.0, connect=5.0)
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

T = TypeVar("T")


# --- errors ----------------------------------------------------------------------------


class AgentClientError(AgentRuntimeError):
    """A reply outside 2xx (or a WebSocket ``error`` frame): `status` (None when no reply
    came), the error's `type` and `message`, and its `details`."""

    def __init__(self, status: int | None, type: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.type = type

    def __str__(self) -> str:
        return f"{self.status or '-'} {self.type}: {self.message}"


class InvalidRequest(AgentClientError):
    """The request was refused as given (400): fix it, do not retry it."""


class PayloadTooLarge(InvalidRequest):
    """Over a documented size limit (413)."""


class Unauthorized(AgentClientError):
    """The agent's hook refused the credentials (401 or 403)."""


class NotFound(AgentClientError):
    """No such agent (or one not exposed on this surface), or no such submission (404)."""


class Conflict(AgentClientError):
    """An idempotency key or dispatch id was used before with other input (409)."""


class RateLimited(AgentClientError):
    """Throttled (429): retry later."""


class ServerError(AgentClientError):
    """The server failed (5xx): the request may or may not have taken effect."""


class ConnectionLost(AgentClientError):
    """The WebSocket connection dropped and could not be reopened (or was closed)."""


_BY_TYPE: dict[str, type[AgentClientError]] = {
    "invalid_json": InvalidRequest,
    "invalid_request": InvalidRequest,
    "payload_too_large": PayloadTooLarge,
    "not_found": NotFound,
    "agent_not_found": NotFound,
    "submission_not_found": NotFound,
    "conflict": Conflict,
}
_BY_STATUS: dict[int, type[AgentClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    429: RateLimited,
}


def error_for(status: int, type: str, message: str, details: dict[str, Any] | None = None) -> AgentClientError:
    """The `AgentClientError` subclass for an error: by its type first, then by status."""
    cls = _BY_TYPE.get(type) or _BY_STATUS.get(status) or (ServerError if status >= 500 else AgentClientError)
    return cls(status, type, message, details)


def error_from_reply(status: int, body: bytes | str) -> AgentClientError:
    """An error from a reply's status and body. The runtime's own errors have the
    ``{"error": {...}}`` shape; a hook's or API Gateway's may be ``{"error": "text"}``,
    ``{"message": "text"}`` or not JSON at all: the type then comes from the status."""
    fallback = httpx.codes.get_reason_phrase(status).lower().replace(" ", "_") or f"http_{status}"
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return error_for(status, fallback, text[:500] or fallback)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        details = error.get("details") if isinstance(error.get("details"), dict) else None
        return error_for(status, error["type"], str(error.get("message", "")), details)
    if isinstance(error, str):
        return error_for(status, fallback, error)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return error_for(status, fallback, data["message"])
    return error_for(status, fallback, json.dumps(data)[:500])


# --- requests, described once for both clients -------------------------------------------------


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _instance(name: str, instance_id: str, *rest: str) -> str:
    return _path("agents", name, instance_id, *rest)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One HTTP request and how to read its reply: `parse` gets the JSON body of a reply
    whose status is in `ok`; any other status raises."""

    method: str
    path: str
    parse: Callable[[Any], T]
    ok: tuple[int, ...] = (200,)
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds the server may hold the request (long polls): the read timeout covers it.
    holds: float = 0.0

    def result(self, response: httpx.Response) -> T:
        if response.status_code not in self.ok:
            raise error_from_reply(response.status_code, response.content)
        return self.parse(response.json())

    def timeout(self, default: httpx.Timeout) -> httpx.Timeout:
        if default.read is not None and self.holds + 5 > default.read:
            return httpx.Timeout(default.connect, read=self.holds + 10, write=default.write, pool=default.pool)
        return default


def _prompt(
    name: str, instance_id: str, message: str, session: str, wait: float, idempotency_key: str | None
) -> _Call[PromptResponse]:
    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else {}
    body = {"message": message, "session": session, "wait": wait}
    return _Call(
        "POST", _instance(name, instance_id), PromptResponse.model_validate, ok=(200, 202), body=body, headers=headers, holds=wait
    )


def _submission(name: str, instance_id: str, submission_id: str) -> _Call[Submission]:
    return _Call("GET", _instance(name, instance_id, "submissions", submission_id), Submission.model_validate)


def _dispatch(name: str, instance_id: str, input: Any, session: str, dispatch_id: str | None) -> _Call[DispatchReceipt]:
    body: dict[str, Any] = {"input": input, "session": session}
    if dispatch_id is not None:
        body["dispatch_id"] = dispatch_id
    return _Call("POST", _instance(name, instance_id, "dispatch"), DispatchReceipt.model_validate, ok=(202,), body=body)


def _history(name: str, instance_id: str, session: str, limit: int, cursor: str | None) -> _Call[HistoryPage]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor is not None else {})}
    path = _instance(name, instance_id, "sessions", session, "messages")
    return _Call("GET", path, HistoryPage.model_validate, params=params)


def _events(name: str, instance_id: str, after: int, limit: int, wait: float) -> _Call[EventsPage]:
    params = {"after": str(after), "limit": str(limit), "wait": repr(float(wait))}
    return _Call("GET", _instance(name, instance_id, "events"), EventsPage.model_validate, params=params, holds=wait)


def _fetch(path: str) -> _Call[EventsPage]:
    """A ``fetch`` reference of an event frame: an events path relative to the HTTP API."""
    return _Call("GET", path, EventsPage.model_validate)


def _abort(name: str, instance_id: str, queued: bool) -> _Call[AbortResponse]:
    params = {"queued": "true"} if queued else None
    return _Call("POST", _instance(name, instance_id, "abort"), AbortResponse.model_validate, params=params)


def _headers(token: str | None) -> dict[str, str]:
    headers = {"user-agent": "agent-runtime-client/1", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _next_delay(delay: float) -> float:
    return min(delay * 1.5, 2.0)


# --- the synchronous client -----------------------------------------------------------------


class AgentClient:
    """A blocking client of the HTTP API. ``with AgentClient(url, token) as client: ...``

    `timeout` applies to every request; one that the server may hold (a prompt's `wait`,
    an events long poll) gets a read timeout covering it. `transport` replaces the network
    (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ws_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or os.environ.get(ENV_WS_URL) or None
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(token), timeout=self._timeout, transport=transport)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        response = self._http.request(
            call.method, call.path, params=call.params, json=call.body, headers=call.headers, timeout=call.timeout(self._timeout)
        )
        return call.result(response)

    def prompt(
        self,
        name: str,
        id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        wait: float = MAX_WAIT_SECONDS,
        idempotency_key: str | None = None,
    ) -> PromptResponse:
        """Prompt an instance and wait up to `wait` seconds (at most 25) for the answer.

        Settled in time: ``submission.status == "settled"``, with `result` when the
        outcome is ``completed`` (else ``submission.error``). Otherwise only `submission`:
        follow it with `wait`. The same `idempotency_key` and message return the first
        submission, so a retry after a network failure is safe.
        """
        return self._send(_prompt(name, id, message, session, wait, idempotency_key))

    def dispatch(
        self, name: str, id: str, input: Any, *, session: str = DEFAULT_SESSION, dispatch_id: str | None = None
    ) -> DispatchReceipt:
        """Queue any JSON `input` for the instance without waiting. The same `dispatch_id`
        and input return the first receipt; other input with it raises `Conflict`."""
        return self._send(_dispatch(name, id, input, session, dispatch_id))

    def submission(self, name: str, id: str, submission_id: str) -> Submission:
        return self._send(_submission(name, id, submission_id))

    def wait(self, name: str, id: str, submission_id: str, timeout: float = 60.0, *, poll: float = 0.2) -> Submission:
        """Poll the submission until it settles or `timeout` seconds pass; returns the
        latest read either way (check ``status``)."""
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            submission = self.submission(name, id, submission_id)
            left = deadline - time.monotonic()
            if submission.status == "settled" or left <= 0:
                return submission
            time.sleep(min(delay, left))
            delay = _next_delay(delay)

    def history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        """One page of a session's messages, oldest first; pass `next_cursor` on."""
        return self._send(_history(name, id, session, limit, cursor))

    def iter_history(self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100) -> Iterator[HistoryMessage]:
        """Every message of a session, oldest first, reading `limit` per request."""
        cursor: str | None = None
        while True:
            page = self.history(name, id, session, limit=limit, cursor=cursor)
            yield from page.messages
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def events(self, name: str, id: str, *, after: int = 0, limit: int = 100, wait: float = 0) -> EventsPage:
        """The instance's events after offset `after`; with `wait`, the server holds the
        request up to that many seconds for one to land. Pass `last` as the next `after`."""
        return self._send(_events(name, id, after, limit, wait))

    def abort(self, name: str, id: str, *, queued: bool = False) -> AbortResponse:
        """Ask the running submission to stop (and the queued ones, with `queued`)."""
        return self._send(_abort(name, id, queued))


# --- the asynchronous client ----------------------------------------------------------------


class AsyncAgentClient:
    """`AgentClient` for asyncio, plus `connect` for the WebSocket surface."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ws_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or os.environ.get(ENV_WS_URL) or None
        self.token = token
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(token), timeout=self._timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        response = await self._http.request(
            call.method, call.path, params=call.params, json=call.body, headers=call.headers, timeout=call.timeout(self._timeout)
        )
        return call.result(response)

    async def prompt(
        self,
        name: str,
        id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        wait: float = MAX_WAIT_SECONDS,
        idempotency_key: str | None = None,
    ) -> PromptResponse:
        """See `AgentClient.prompt`."""
        return await self._send(_prompt(name, id, message, session, wait, idempotency_key))

    async def dispatch(
        self, name: str, id: str, input: Any, *, session: str = DEFAULT_SESSION, dispatch_id: str | None = None
    ) -> DispatchReceipt:
        """See `AgentClient.dispatch`."""
        return await self._send(_dispatch(name, id, input, session, dispatch_id))

    async def submission(self, name: str, id: str, submission_id: str) -> Submission:
        return await self._send(_submission(name, id, submission_id))

    async def wait(self, name: str, id: str, submission_id: str, timeout: float = 60.0, *, poll: float = 0.2) -> Submission:  # noqa: ASYNC109
        """See `AgentClient.wait`."""
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            submission = await self.submission(name, id, submission_id)
            left = deadline - time.monotonic()
            if submission.status == "settled" or left <= 0:
                return submission
            await asyncio.sleep(min(delay, left))
            delay = _next_delay(delay)

    async def history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        """See `AgentClient.history`."""
        return await self._send(_history(name, id, session, limit, cursor))

    async def iter_history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100
    ) -> AsyncIterator[HistoryMessage]:
        """See `AgentClient.iter_history`."""
        cursor: str | None = None
        while True:
            page = await self.history(name, id, session, limit=limit, cursor=cursor)
            for message in page.messages:
                yield message
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def events(self, name: str, id: str, *, after: int = 0, limit: int = 100, wait: float = 0) -> EventsPage:
        """See `AgentClient.events`."""
        return await self._send(_events(name, id, after, limit, wait))

    async def abort(self, name: str, id: str, *, queued: bool = False) -> AbortResponse:
        """See `AgentClient.abort`."""
        return await self._send(_abort(name, id, queued))

    def connect(
        self,
        name: str,
        id: str,
        *,
        session: str | None = None,
        after: int | None = None,
        reconnect_attempts: int = 10,
        open_timeout: float = 10.0,
    ) -> Connection:
        """A live connection to one instance: ``async with client.connect(...) as conn``.

        It yields the instance's events (only `session`'s and instance-wide ones, when
        given) after offset `after`, or from now when None. A dropped connection is
        reopened up to `reconnect_attempts` times in a row, with backoff; the first
        opening is not retried, so a refusal (`Unauthorized`, `NotFound`) or an
        unreachable server shows at once.
        """
        url = self.ws_url
        if not url:
            raise ValueError(f"no WebSocket URL: pass ws_url= or set {ENV_WS_URL} (the stack's WebSocketUrl output)")
        query = {"agent": name, "id": id, **({"token": self.token} if self.token is not None else {})}
        full = f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"
        return Connection(
            self,
            full,
            name=name,
            instance_id=id,
            session=session,
            after=after,
            reconnect_attempts=reconnect_attempts,
            open_timeout=open_timeout,
        )


# --- the WebSocket connection ---------------------------------------------------------------


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


__all__ = [
    "DEFAULT_TIMEOUT",
    "ENV_WS_URL",
    "AgentClient",
    "AgentClientError",
    "AsyncAgentClient",
    "Conflict",
    "Connection",
    "ConnectionLost",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "error_for",
    "error_from_reply",
]
