"""The SDK against the real HTTP handler, and its WebSocket connection against a scripted server.

HTTP: `httpx.MockTransport` turns each request into an API Gateway payload 2.0 event and
calls `functions.http_api.handler` with it, on the memory backend, so the clients are
checked against the routes, models and error mapping they will meet, with no socket. A
worker beside the API drains each woken instance on the handler's event loop (as in
`tests/http/`): submissions settle while the handler runs, during a prompt's
`wait` or the polls of `wait()`.

WebSocket: a small server on loopback plays the server side of the protocol from a list of
events, with the awkward parts on purpose: around a subscribe it sends a live event before
the replay (a duplicate), it can send an event as a ``fetch`` reference or leave one out,
and a test can cut the socket. The local stack's WebSocket surface is covered in
``tests/e2e``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import httpx
import pytest
from websockets.asyncio.server import ServerConnection, serve

from agent_runtime import cli
from agent_runtime import client as sdk
from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.client import AgentClient, AsyncAgentClient
from agent_runtime.definition import create_agent
from agent_runtime.dev.apigw_events import is_text_content
from agent_runtime.events import SubmissionQueued, TextDelta
from agent_runtime.registry import Registry
from agent_runtime.routing import RouteRequest, RouteResponse
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import memory_backend
from agent_runtime.testing.events import http_event
from agent_runtime.testing.lambda_events import LambdaContext
from functions import http_api
from tests.http.harness import BackgroundWorker

BASE_URL = "https://api.example.test"


async def passes(req: RouteRequest, call_next: Any) -> RouteResponse:
    response: RouteResponse = await call_next()
    return response


async def bearer_only(req: RouteRequest, call_next: Any) -> RouteResponse:
    if req.headers.get("authorization") != "Bearer s3cret":
        return req.json({"error": "Unauthorized"}, status=401)
    response: RouteResponse = await call_next()
    return response


def registry() -> Registry:
    agents = Registry()
    agents.add("echo", create_agent(model="test/echo"), route=passes)
    agents.add("guarded", create_agent(model="test/echo"), route=bearer_only)
    return agents


def event_body(request: httpx.Request) -> str | bytes | None:
    """The body as API Gateway hands it over: text for textual media types, else bytes
    (which the event carries base64-encoded)."""
    if not request.content:
        return None
    if is_text_content(request.headers.get("content-type")):
        with contextlib.suppress(UnicodeDecodeError):
            return request.content.decode()
    return request.content


@dataclass
class Api:
    """The HTTP handler as an httpx transport; `requests` keeps what reached it. A request
    to another host (a presigned S3 URL) goes to `elsewhere` and is kept in `external`."""

    worker: BackgroundWorker
    requests: list[httpx.Request] = field(default_factory=list)
    # The handler runs its coroutines on one event loop, which one thread at a time may drive.
    lock: threading.Lock = field(default_factory=threading.Lock)
    elsewhere: Callable[[httpx.Request], httpx.Response] | None = None
    external: list[httpx.Request] = field(default_factory=list)

    def forward(self, request: httpx.Request) -> httpx.Response:
        if request.url.host != httpx.URL(BASE_URL).host:
            assert self.elsewhere is not None, f"no server for {request.url}"
            self.external.append(request)
            return self.elsewhere(request)
        self.requests.append(request)
        path = request.url.raw_path.decode()
        headers = {k: v for k, v in request.headers.items() if k not in ("content-length", "host")}
        body = event_body(request)
        with self.lock:
            reply = http_api.handler(http_event(request.method, path, body, headers), cast(Any, LambdaContext()))
        content = base64.b64decode(reply["body"]) if reply.get("isBase64Encoded") else reply["body"].encode()
        return httpx.Response(reply["statusCode"], headers=reply.get("headers") or {}, content=content)

    async def forward_async(self, request: httpx.Request) -> httpx.Response:
        # Off the test's loop: the handler drives its own loop with run_until_complete.
        return await asyncio.to_thread(self.forward, request)

    def client(self, token: str | None = None) -> AgentClient:
        return AgentClient(BASE_URL, token, transport=httpx.MockTransport(self.forward))

    def async_client(self, token: str | None = None, **options: Any) -> AsyncAgentClient:
        return AsyncAgentClient(BASE_URL, token, transport=httpx.MockTransport(self.forward_async), **options)


@pytest.fixture
def api() -> Iterator[Api]:
    backend = memory_backend()
    worker = BackgroundWorker(backend.wakeups)
    worker.runtime = Runtime(registry=registry(), stores=backend.stores, wakeups=worker, events=backend.events)
    http_api.set_runtime(worker.runtime)
    try:
        yield Api(worker)
    finally:
        worker.paused = False
        run(worker.join())
        http_api.set_runtime(None)


# --- HTTP, synchronous ------------------------------------------------------------------------


def test_prompt_returns_the_typed_result(api: Api) -> None:
    with api.client() as client:
        reply = client.prompt("echo", "c-1", "hello", session="s1")

    assert reply.result is not None and reply.result.text == "echo: hello"
    assert reply.submission.status == "settled" and reply.submission.outcome == "completed"
    assert reply.submission.session == "s1"
    sent = json.loads(api.requests[0].content)
    assert sent == {"message": "hello", "session": "s1", "wait": 25.0}
    assert api.requests[0].url.path == "/agents/echo/c-1"


def test_a_prompt_not_settled_in_time_is_followed_with_wait(api: Api) -> None:
    api.worker.paused = True
    with api.client() as client:
        reply = client.prompt("echo", "c-2", "later", wait=0)
        assert reply.result is None and reply.submission.status == "queued"
        assert client.wait("echo", "c-2", reply.submission.id, timeout=0.2).status == "queued"

        api.worker.paused = False
        client.prompt("echo", "c-2", "wakes the worker", wait=0)
        settled = client.wait("echo", "c-2", reply.submission.id, timeout=10)

    assert settled.status == "settled" and settled.result is not None
    assert settled.result.text == "echo: later"


def test_an_idempotency_key_replays_and_conflicts_on_other_input(api: Api) -> None:
    with api.client() as client:
        first = client.prompt("echo", "c-3", "once", idempotency_key="k-1")
        again = client.prompt("echo", "c-3", "once", idempotency_key="k-1")
        with pytest.raises(sdk.Conflict) as caught:
            client.prompt("echo", "c-3", "other", idempotency_key="k-1")

    assert again.submission.id == first.submission.id
    assert api.requests[0].headers["idempotency-key"] == "k-1"
    error = caught.value
    assert error.status == 409 and error.type == "conflict" and error.message
    assert isinstance(error, sdk.AgentClientError)


def test_dispatch_returns_a_receipt_and_maps_409(api: Api) -> None:
    with api.client() as client:
        receipt = client.dispatch("echo", "c-4", {"order": 7}, session="events", dispatch_id="evt-1")
        assert client.dispatch("echo", "c-4", {"order": 7}, session="events", dispatch_id="evt-1") == receipt
        with pytest.raises(sdk.Conflict):
            client.dispatch("echo", "c-4", {"order": 8}, session="events", dispatch_id="evt-1")
        settled = client.wait("echo", "c-4", receipt.submission_id, timeout=10)

    assert receipt.dispatch_id == "evt-1"
    assert settled.kind == "dispatch" and settled.session == "events" and settled.outcome == "completed"


def test_errors_map_by_type_and_status(api: Api) -> None:
    with api.client() as client:
        with pytest.raises(sdk.NotFound) as unknown_agent:
            client.prompt("nobody", "c-5", "hi")
        with pytest.raises(sdk.NotFound) as unknown_submission:
            client.submission("echo", "c-5", "s-missing")
        with pytest.raises(sdk.InvalidRequest) as bad:
            client.history("echo", "c-5", limit=0)

    assert unknown_agent.value.type == "agent_not_found" and unknown_agent.value.status == 404
    assert unknown_submission.value.type == "submission_not_found"
    assert bad.value.status == 400 and bad.value.type == "invalid_request"
    assert bad.value.details["errors"][0]["loc"] == ["query", "limit"]


def test_the_token_is_a_bearer_header(api: Api) -> None:
    with api.client() as anonymous, pytest.raises(sdk.Unauthorized) as refused:
        anonymous.prompt("guarded", "c-6", "hi")
    assert refused.value.status == 401 and refused.value.type == "unauthorized"
    assert refused.value.message == "Unauthorized"

    with api.client("s3cret") as client:
        reply = client.prompt("guarded", "c-6", "hi")
    assert reply.result is not None and reply.result.text == "echo: hi"
    assert api.requests[-1].headers["authorization"] == "Bearer s3cret"


def test_history_iterates_every_page(api: Api) -> None:
    with api.client() as client:
        for text in ("one", "two", "three"):
            client.prompt("echo", "c-7", text, session="s")
        first = client.history("echo", "c-7", "s", limit=4)
        before = len(api.requests)
        messages = list(client.iter_history("echo", "c-7", "s", limit=2))

    assert len(first.messages) == 4 and first.next_cursor is not None
    assert [f"{m.role}:{m.parts[0].text}" for m in messages] == [  # type: ignore[union-attr]
        "user:one", "assistant:echo: one", "user:two", "assistant:echo: two", "user:three", "assistant:echo: three",
    ]
    assert len(api.requests) - before == 3  # pages of 2, the last one says so
    assert api.requests[-1].url.params["cursor"] == messages[3].cursor


def test_events_page_by_offset(api: Api) -> None:
    with api.client() as client:
        client.prompt("echo", "c-8", "hi")
        page = client.events("echo", "c-8", limit=3)
        rest = client.events("echo", "c-8", after=page.last, limit=1000)
        empty = client.events("echo", "c-8", after=rest.last)

    assert isinstance(page.events[0], SubmissionQueued) and page.last == page.events[-1].offset
    everything = page.events + rest.events
    assert [e.offset for e in everything] == list(range(everything[0].offset, everything[0].offset + len(everything)))
    assert "".join(e.text for e in everything if isinstance(e, TextDelta)) == "echo: hi"
    assert empty.events == [] and empty.last == rest.last


def test_abort_returns_the_submissions_asked_to_stop(api: Api) -> None:
    api.worker.paused = True
    with api.client() as client:
        ids = [client.prompt("echo", "c-9", m, wait=0).submission.id for m in ("a", "b")]
        assert client.abort("echo", "c-9").aborted == []
        aborted = client.abort("echo", "c-9", queued=True).aborted

    assert api.requests[-1].url.params["queued"] == "true"
    assert [s.id for s in aborted] == ids
    assert all(s.outcome == "aborted" for s in aborted)


# --- HTTP, asynchronous -----------------------------------------------------------------------


async def test_the_async_client_has_the_same_methods(api: Api) -> None:
    async with api.async_client("s3cret") as client:
        reply = await client.prompt("guarded", "a-1", "hello", idempotency_key="k")
        receipt = await client.dispatch("echo", "a-1", ["x"])
        settled = await client.wait("echo", "a-1", receipt.submission_id, timeout=10)
        messages = [m async for m in client.iter_history("guarded", "a-1", limit=1)]
        page = await client.events("guarded", "a-1")
        aborted = await client.abort("echo", "a-1", queued=True)
        with pytest.raises(sdk.NotFound):
            await client.submission("echo", "a-1", "s-missing")

    assert reply.result is not None and reply.result.text == "echo: hello"
    assert settled.outcome == "completed"
    assert [m.role for m in messages] == ["user", "assistant"]
    assert page.events and aborted.aborted == []
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in api.requests)


# --- errors from other sources ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "body", "cls", "type_", "message"),
    [
        (502, b'{"message": "Internal Server Error"}', sdk.ServerError, "bad_gateway", "Internal Server Error"),
        (429, b'{"message": "Too Many Requests"}', sdk.RateLimited, "too_many_requests", "Too Many Requests"),
        (403, b"Forbidden", sdk.Unauthorized, "forbidden", "Forbidden"),
        (413, b'{"error": {"type": "payload_too_large", "message": "big"}}', sdk.PayloadTooLarge, "payload_too_large", "big"),
        (418, b"", sdk.AgentClientError, "i'm_a_teapot", "i'm_a_teapot"),
    ],
)
def test_replies_that_are_not_the_runtimes_still_map(
    status: int, body: bytes, cls: type[sdk.AgentClientError], type_: str, message: str
) -> None:
    error = sdk.error_from_reply(status, body)
    assert type(error) is cls
    assert (error.status, error.type, error.message) == (status, type_, message)


def test_connect_needs_a_websocket_url_and_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cli.ENV_WS_URL == sdk.ENV_WS_URL
    monkeypatch.delenv(sdk.ENV_WS_URL, raising=False)
    with pytest.raises(ValueError, match=sdk.ENV_WS_URL):
        AsyncAgentClient(BASE_URL).connect("echo", "x")
    monkeypatch.setitem(sys.modules, "websockets.asyncio.client", None)
    with pytest.raises(ImportError, match=r"pip install 'agent-runtime\[client\]'"):
        sdk._websockets_connect()


# --- WebSocket, against a scripted server -----------------------------------------------------


def event(offset: int, text: str = "x", session: str = "default") -> dict[str, Any]:
    return TextDelta(
        offset=offset, at="2026-11-21T05:14:00.000Z", agent="echo", id="w", session=session,
        submission_id="s-1", turn=1, text=text,
    ).model_dump(mode="json")


@dataclass
class ScriptedServer:
    """The server side of the protocol over a list of events (offsets from 1).

    On ``subscribe`` it first sends the newest event live (so the replay then repeats it,
    as happens when an event is stored while a subscribe replays), then the events after
    ``after`` (events whose offset is in `by_reference` as ``fetch`` frames), then ``ready``.
    ``prompt`` appends the prompt's events and answers ``accepted``, once per request id.
    """

    log: list[dict[str, Any]] = field(default_factory=list)
    by_reference: set[int] = field(default_factory=set)
    #: Offsets stored but never posted live (a poster that missed a new subscription).
    not_posted: set[int] = field(default_factory=set)
    sockets: list[ServerConnection] = field(default_factory=list)
    subscribes: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[str] = field(default_factory=list)
    query: list[str] = field(default_factory=list)
    #: The HTTP reads the client made (``after`` of each).
    reads: list[int] = field(default_factory=list)

    def frame(self, data: dict[str, Any]) -> str:
        if data["offset"] in self.by_reference:
            fetch = f"/agents/echo/w/events?after={data['offset'] - 1}&limit=1"
            return json.dumps({"v": 1, "type": "event", "event": None, "offset": data["offset"], "fetch": fetch})
        return json.dumps({"v": 1, "type": "event", "event": data})

    async def add(self, *texts: str) -> None:
        for text in texts:
            self.log.append(event(len(self.log) + 1, text))
            if self.log[-1]["offset"] in self.not_posted:
                continue
            for ws in self.sockets:
                with contextlib.suppress(Exception):
                    await ws.send(self.frame(self.log[-1]))

    async def handle(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.query.append(ws.request.path)
        self.sockets.append(ws)
        try:
            async for raw in ws:
                frame = json.loads(raw)
                if frame["type"] == "subscribe":
                    self.subscribes.append(frame)
                    after = frame.get("after")
                    if after is None:
                        await ws.send(json.dumps({"v": 1, "type": "ready", "offset": len(self.log)}))
                        continue
                    if self.log:
                        await ws.send(self.frame(self.log[-1]))
                    for data in self.log[after:]:
                        await ws.send(self.frame(data))
                    await ws.send(json.dumps({"v": 1, "type": "ready", "offset": len(self.log)}))
                elif frame["type"] == "prompt":
                    self.prompts.append(frame["request_id"])
                    submission = {
                        "id": f"s-{frame['request_id']}", "kind": "direct", "session": frame["session"], "sequence": 0,
                        "status": "queued", "outcome": None, "result": None, "error": None,
                        "accepted_at": "2026-11-21T05:14:00.000Z", "started_at": None, "settled_at": None, "attempts": 0,
                    }
                    await ws.send(json.dumps({"v": 1, "type": "accepted", "request_id": frame["request_id"], "submission": submission}))
                    await self.add(f"answer to {frame['message']}")
                else:
                    await ws.send(json.dumps({"v": 1, "type": "error", "status": 400, "request_id": frame.get("request_id"),
                                              "error": {"type": "invalid_request", "message": "no"}}))
        finally:
            self.sockets.remove(ws)

    def events_page(self, request: httpx.Request) -> httpx.Response:
        after, limit = int(request.url.params["after"]), int(request.url.params.get("limit", "100"))
        self.reads.append(after)
        page = self.log[after : after + limit]
        return httpx.Response(200, json={"events": page, "last": page[-1]["offset"] if page else after})


@contextlib.asynccontextmanager
async def scripted(server: ScriptedServer, token: str | None = None) -> AsyncIterator[AsyncAgentClient]:
    async with serve(server.handle, "127.0.0.1", 0) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        transport = httpx.MockTransport(server.events_page)
        async with AsyncAgentClient(BASE_URL, token, ws_url=f"ws://127.0.0.1:{port}/local", transport=transport) as client:
            yield client


async def take(conn: sdk.Connection, n: int) -> list[TextDelta]:
    async with asyncio.timeout(5):
        return [cast(TextDelta, await anext(conn)) for _ in range(n)]


async def test_events_come_once_in_order_and_large_ones_are_fetched() -> None:
    server = ScriptedServer(by_reference={2})
    await server.add("a", "b", "c")
    async with scripted(server, token="t0k") as client, client.connect("echo", "w", after=1) as conn:
        assert [e.text for e in await take(conn, 2)] == ["b", "c"]
        await server.add("d")
        assert [(e.offset, e.text) for e in await take(conn, 1)] == [(4, "d")]
        assert conn.offset == 4

    assert server.query == ["/local?agent=echo&id=w&token=t0k"]
    assert server.subscribes == [{"v": 1, "type": "subscribe", "after": 1}]


async def test_from_now_skips_what_came_before() -> None:
    server = ScriptedServer()
    await server.add("old")
    async with scripted(server) as client, client.connect("echo", "w", session="default") as conn:
        submission = await conn.prompt("hi", request_id="r-1")
        assert submission.id == "s-r-1"
        assert [e.text for e in await take(conn, 1)] == ["answer to hi"]
    assert server.subscribes == [{"v": 1, "type": "subscribe", "session": "default"}]


async def test_a_dropped_connection_resumes_after_the_last_offset_seen() -> None:
    server = ScriptedServer()
    await server.add("a", "b")
    async with scripted(server) as client, client.connect("echo", "w", after=0) as conn:
        assert [e.text for e in await take(conn, 2)] == ["a", "b"]
        first = conn.websocket
        assert first is not None
        first.transport.abort()  # the network goes, with no close handshake
        await server.add("c", "d")  # nobody is connected to see these
        assert [(e.offset, e.text) for e in await take(conn, 2)] == [(3, "c"), (4, "d")]
        assert conn.reconnects == 1 and conn.websocket is not first
        await server.add("e")
        assert [e.text for e in await take(conn, 1)] == ["e"]

    assert [s.get("after") for s in server.subscribes] == [0, 2]


async def test_error_frames_fail_the_request_they_answer() -> None:
    server = ScriptedServer()
    async with scripted(server) as client, client.connect("echo", "w") as conn:
        with pytest.raises(sdk.InvalidRequest) as caught:
            await conn.abort()
        assert caught.value.status == 400 and caught.value.message == "no"
        with pytest.raises(sdk.PayloadTooLarge):
            await conn.prompt("x" * (sdk.MAX_WS_MESSAGE_BYTES + 1))
    with pytest.raises(StopAsyncIteration):
        await anext(conn)


async def test_a_skipped_offset_is_read_over_http() -> None:
    server = ScriptedServer(not_posted={3})
    await server.add("a")
    async with scripted(server) as client, client.connect("echo", "w", after=0) as conn:
        await server.add("b", "c", "d")
        assert [(e.offset, e.text) for e in await take(conn, 4)] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert server.reads == [2]


async def test_an_event_of_a_type_this_client_does_not_know_is_skipped() -> None:
    server = ScriptedServer()
    async with scripted(server) as client, client.connect("echo", "w", after=0) as conn:
        await server.add("a")
        server.log.append({**event(2), "type": "from_the_future"})
        await server.sockets[0].send(server.frame(server.log[-1]))
        await server.add("c")
        assert [(e.offset, e.text) for e in await take(conn, 2)] == [(1, "a"), (3, "c")]
    assert server.reads == []
