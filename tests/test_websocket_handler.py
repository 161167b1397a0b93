"""The WebSocket Lambda with API Gateway WebSocket events, on the memory and moto backends.

Frames the handler posts are collected by a `MemoryPoster`; the local stack's tests
(`tests/e2e`) drive the same handler through a real WebSocket server.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any, cast

import pytest
from moto import mock_aws

from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.adapters.memory_events import MemoryPoster
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.registry import Registry
from agent_runtime.routing import RouteRequest, RouteResponse
from agent_runtime.streaming import Broadcaster
from agent_runtime.testing.backends import Backend, memory_backend, moto_backend
from agent_runtime.testing.lambda_events import LambdaContext
from functions import websocket


async def token_only(req: RouteRequest, call_next: Any) -> RouteResponse:
    if req.query.get("token") != "letmein":
        return req.json({"error": "Unauthorized"}, status=401)
    return await call_next()


async def open_door(req: RouteRequest, call_next: Any) -> RouteResponse:
    return await call_next()


def registry() -> Registry:
    agents = Registry()
    agents.add("echo", create_agent(model="test/echo"), websocket=open_door)
    agents.add("guarded", create_agent(model="test/echo"), websocket=token_only)
    agents.add("http-only", create_agent(model="test/echo"))
    return agents


class Socket:
    def __init__(self, backend: Backend, poster: MemoryPoster) -> None:
        self.backend = backend
        self.poster = poster
        self.runtime = backend.runtime(registry(), broadcaster=Broadcaster(backend.connections, poster))
        websocket.set_services(websocket.Services(self.runtime, backend.connections, poster))

    def event(self, route: str, connection_id: str, **extra: Any) -> dict[str, Any]:
        return {
            "requestContext": {
                "routeKey": route,
                "eventType": {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE"),
                "connectionId": connection_id,
                "domainName": "abc.execute-api.us-east-1.amazonaws.com",
                "stage": "live",
                "requestId": str(uuid.uuid4()),
            },
            "isBase64Encoded": False,
            **extra,
        }

    def call(self, event: dict[str, Any]) -> dict[str, Any]:
        return websocket.handler(event, cast(Any, LambdaContext(function_name="websocket")))

    def connect(self, connection_id: str, **query: str) -> dict[str, Any]:
        return self.call(self.event("$connect", connection_id, queryStringParameters=query, headers={"Origin": "x"}))

    def send(self, connection_id: str, frame: Any, *, binary: bool = False) -> None:
        if binary:
            body = base64.b64encode(b"\x00\x01").decode()
            self.call(self.event("$default", connection_id, body=body, isBase64Encoded=True))
        else:
            body = frame if isinstance(frame, str) else json.dumps(frame)
            self.call(self.event("$default", connection_id, body=body))

    def frames(self, connection_id: str) -> list[dict[str, Any]]:
        return [json.loads(f) for f in self.poster.sent.get(connection_id, [])]

    def drain(self, agent: str, instance_id: str) -> None:
        run(self.runtime.drain(InstanceRef(agent, instance_id), deadline=self.runtime.clock() + 60))


@pytest.fixture(params=["memory", "moto"])
def socket(request: pytest.FixtureRequest) -> Iterator[Socket]:
    if request.param == "memory":
        yield Socket(memory_backend(), MemoryPoster())
    else:
        with mock_aws():
            yield Socket(moto_backend(), MemoryPoster())
    websocket.set_services(None)


def test_connect_runs_the_hook_and_refuses_what_it_refuses(socket: Socket) -> None:
    assert socket.connect("c1", agent="echo", id="one")["statusCode"] == 200
    assert run(socket.backend.connections.get("c1")) is not None
    refused = socket.connect("c2", agent="guarded", id="one")
    assert refused["statusCode"] == 401 and run(socket.backend.connections.get("c2")) is None
    assert socket.connect("c3", agent="guarded", id="one", token="letmein")["statusCode"] == 200
    for query, status in (({"agent": "http-only", "id": "x"}, 404), ({"agent": "nope", "id": "x"}, 404), ({"agent": "echo"}, 400), ({"agent": "Bad Name", "id": "x"}, 400)):
        reply = socket.connect("c4", **query)
        assert reply["statusCode"] == status, query
        assert "error" in json.loads(reply["body"])


def test_a_prompt_is_accepted_then_streamed_with_its_result(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="one")
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r1", "message": "hello there"})
    accepted = socket.frames("c1")
    assert [f["type"] for f in accepted] == ["event", "accepted"]  # submission_queued, then the reply
    assert accepted[1]["request_id"] == "r1" and accepted[1]["submission"]["status"] == "queued"
    submission_id = accepted[1]["submission"]["id"]
    socket.drain("echo", "one")
    frames = socket.frames("c1")
    events = [f["event"] for f in frames if f["type"] == "event"]
    offsets = [e["offset"] for e in events]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert "".join(e["text"] for e in events if e["type"] == "text_delta") == "echo: hello there"
    result = next(f for f in frames if f["type"] == "result")
    assert result["submission_id"] == submission_id and result["outcome"] == "completed"
    assert result["result"]["text"] == "echo: hello there"
    # The same request id is the same submission.
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r1", "message": "hello there"})
    assert socket.frames("c1")[-1]["submission"]["id"] == submission_id


def test_subscribe_replays_exactly_what_came_after_the_offset(socket: Socket) -> None:
    socket.connect("writer", agent="echo", id="one")
    for n in range(3):
        socket.send("writer", {"v": 1, "type": "prompt", "request_id": f"r{n}", "message": f"m{n}"})
        socket.drain("echo", "one")
    everything = [f["event"] for f in socket.frames("writer") if f["type"] == "event"]
    middle = everything[len(everything) // 2]["offset"]
    socket.connect("reader", agent="echo", id="one")
    socket.send("reader", {"v": 1, "type": "subscribe", "after": middle})
    frames = socket.frames("reader")
    replayed = [f["event"]["offset"] for f in frames if f["type"] == "event"]
    assert replayed == [e["offset"] for e in everything if e["offset"] > middle]
    assert frames[-1] == {"v": 1, "type": "ready", "offset": everything[-1]["offset"]}
    # Subscribed now: the next run streams to it live.
    socket.send("writer", {"v": 1, "type": "prompt", "request_id": "r9", "message": "live"})
    socket.drain("echo", "one")
    live = [f["event"] for f in socket.frames("reader")[len(frames) :] if f["type"] == "event"]
    assert live[0]["offset"] == everything[-1]["offset"] + 1
    assert "".join(e["text"] for e in live if e["type"] == "text_delta") == "echo: live"


def test_subscribe_without_an_offset_starts_at_the_end(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="one")
    socket.send("c1", {"v": 1, "type": "subscribe"})
    assert socket.frames("c1") == [{"v": 1, "type": "ready", "offset": 0}]


def test_bad_frames_get_errors_and_the_connection_stays(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="one")
    socket.send("c1", "not json")
    socket.send("c1", {"v": 2, "type": "ping"})
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r1"})
    socket.send("c1", {"v": 1, "type": "shout"})
    socket.send("c1", [1, 2])
    socket.send("c1", None, binary=True)
    socket.send("c1", {"v": 1, "type": "ping", "request_id": "p"})
    frames = socket.frames("c1")
    assert [f["type"] for f in frames] == ["error"] * 6 + ["pong"]
    assert all(f["status"] == 400 and f["error"]["type"] for f in frames[:6])
    assert frames[2]["request_id"] == "r1"
    assert "binary" in frames[5]["error"]["message"]
    assert frames[-1] == {"v": 1, "type": "pong", "request_id": "p"}


def test_abort_and_disconnect(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="one")
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r1", "message": "a"})
    socket.send("c1", {"v": 1, "type": "abort", "queued": True, "request_id": "x"})
    reply = socket.frames("c1")[-1]
    assert reply["type"] == "accepted" and reply["request_id"] == "x" and len(reply["aborted"]) == 1
    socket.call(socket.event("$disconnect", "c1"))
    assert run(socket.backend.connections.get("c1")) is None
    socket.send("c1", {"v": 1, "type": "ping"})  # a late frame from a gone connection: answered, harmlessly
    assert socket.frames("c1")[-1]["type"] == "error"


def test_a_gone_connection_is_forgotten_when_posting_fails(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="one")
    socket.connect("c2", agent="echo", id="one")
    socket.send("c1", {"v": 1, "type": "subscribe"})
    socket.send("c2", {"v": 1, "type": "subscribe"})
    socket.poster.gone.add("c1")
    socket.send("c2", {"v": 1, "type": "prompt", "request_id": "r", "message": "x"})
    socket.drain("echo", "one")
    assert run(socket.backend.connections.get("c1")) is None
    assert any(f["type"] == "result" for f in socket.frames("c2"))


def test_a_prompt_frame_attaches_files_by_path(socket: Socket) -> None:
    socket.connect("c1", agent="echo", id="files")
    run(socket.runtime.put_file("echo", "files", "/attachments/a.png", b"\x89PNG\r\n\x1a\nxyz", "image/png"))
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r1", "message": "see", "attachments": ["/attachments/a.png"]})
    socket.send("c1", {"v": 1, "type": "prompt", "request_id": "r2", "message": "see", "attachments": ["/attachments/b.png"]})
    frames = socket.frames("c1")
    accepted = [f for f in frames if f["type"] == "accepted"]
    assert [f["request_id"] for f in accepted] == ["r1"]
    error = frames[-1]
    assert error["type"] == "error" and error["status"] == 404 and error["error"]["type"] == "file_not_found"
    socket.drain("echo", "files")
    history = run(socket.runtime.history("echo", "files", "default")).messages
    assert [p.type for p in history[0].message.parts] == ["text", "file"]
