"""The WebSocket API emulator over real sockets: events, @connections through boto3, limits."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities.parser.models import (
    APIGatewayWebSocketConnectEventModel,
    APIGatewayWebSocketDisconnectEventModel,
    APIGatewayWebSocketMessageEventModel,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from agent_runtime import settings
from agent_runtime.dev import LocalStack, run_dev
from agent_runtime.dev.apigw_websocket import WebSocketApiEmulator, WebSocketApiError
from tests.dev.handlers import PNG, websocket_events

HANDLER = "tests.dev.handlers:websocket"


def start(monkeypatch: pytest.MonkeyPatch, **options: Any) -> WebSocketApiEmulator:
    """Bind, give the handlers the management endpoint (as the stack does), then serve."""
    emulator = WebSocketApiEmulator(HANDLER, **options)
    emulator.bind()
    monkeypatch.setenv(settings.ENV_WEBSOCKET_ENDPOINT, emulator.callback_url)
    emulator.start()
    return emulator


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebSocketApiEmulator]:
    """Handlers in execution environments (child processes), as `agent-runtime dev` runs them."""
    emulator = start(monkeypatch)
    yield emulator
    emulator.stop()


@pytest.fixture
def threaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebSocketApiEmulator]:
    """Handlers in this process, so the test can read the events they saw."""
    websocket_events.clear()
    emulator = start(monkeypatch, isolation="thread", integration_timeout=1.0)
    yield emulator
    emulator.stop()
    websocket_events.clear()


def management(emulator: WebSocketApiEmulator) -> Any:
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=emulator.callback_url, region_name="us-east-1"
    )


async def whoami(client: ClientConnection) -> str:
    await client.send("event")
    event = json.loads(await client.recv())
    return str(event["requestContext"]["connectionId"])


async def closed_with(client: ClientConnection) -> int | None:
    """Wait for the server to close the connection; its close code."""
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            while True:
                await client.recv()
    return client.close_code


async def test_connect_message_and_disconnect_events(threaded: WebSocketApiEmulator) -> None:
    url = f"{threaded.url}?agent=support&id=t-1&token=abc&id=t-2"
    async with connect(url, additional_headers={"X-Custom": "1"}) as client:
        (opened,) = websocket_events.wait_for("$connect")
        APIGatewayWebSocketConnectEventModel.model_validate(opened)
        context = opened["requestContext"]
        assert (context["routeKey"], context["eventType"], context["messageDirection"]) == (
            "$connect",
            "CONNECT",
            "IN",
        )
        connection_id = context["connectionId"]
        assert re.fullmatch(r"[A-Za-z0-9]{15}=", connection_id)
        assert (context["domainName"], context["stage"], context["apiId"]) == (
            f"127.0.0.1:{threaded.port}",
            "local",
            "local",
        )
        assert context["identity"]["sourceIp"] == "127.0.0.1"
        assert context["identity"]["userAgent"].startswith("Python/")
        assert context["connectedAt"] <= context["requestTimeEpoch"] <= time.time() * 1000
        assert opened["queryStringParameters"] == {"agent": "support", "id": "t-2", "token": "abc"}
        assert opened["multiValueQueryStringParameters"]["id"] == ["t-1", "t-2"]
        headers = opened["headers"]
        assert headers["X-Custom"] == "1" and headers["Sec-WebSocket-Version"] == "13"
        assert headers["X-Forwarded-For"] == "127.0.0.1" and "Upgrade" not in headers
        assert opened["multiValueHeaders"]["X-Custom"] == ["1"]
        assert opened["isBase64Encoded"] is False

        await client.send("event")
        message = json.loads(await client.recv())
        APIGatewayWebSocketMessageEventModel.model_validate(message)
        assert message["body"] == "event" and message["isBase64Encoded"] is False
        assert message["requestContext"]["routeKey"] == "$default"
        assert message["requestContext"]["eventType"] == "MESSAGE"
        assert message["requestContext"]["connectionId"] == connection_id
        assert message["requestContext"]["connectedAt"] == context["connectedAt"]
        # What the handler returns is not sent: the next frame is the next reply.
        await client.send("echo:next")
        assert await client.recv() == "next"
        await client.close(4000, "bye")

    (closed,) = websocket_events.wait_for("$disconnect")
    APIGatewayWebSocketDisconnectEventModel.model_validate(closed)
    context = closed["requestContext"]
    assert context["connectionId"] == connection_id and context["eventType"] == "DISCONNECT"
    assert (context["disconnectStatusCode"], context["disconnectReason"]) == (4000, "bye")


async def test_the_handler_can_refuse_the_handshake(api: WebSocketApiEmulator) -> None:
    for status in (401, 403):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{api.url}?refuse={status}"):
                pass
        response = refused.value.response
        assert (response.status_code, response.body) == (status, f"refused {status}".encode())
    with pytest.raises(InvalidStatus) as failed:
        async with connect(f"{api.url}?raise=1"):
            pass
    assert failed.value.response.status_code == 500
    assert json.loads(failed.value.response.body) == {"message": "Internal server error"}
    async with connect(
        api.url, subprotocols=[Subprotocol("token.abc"), Subprotocol("x")]
    ) as client:
        assert client.subprotocol == "token.abc"  # as $connect answered
    with pytest.raises(InvalidStatus) as elsewhere:
        async with connect(api.url.replace("/local", "/other")):
            pass
    assert elsewhere.value.response.status_code == 403


async def test_messages_and_replies_through_the_management_api(api: WebSocketApiEmulator) -> None:
    async with connect(api.url, user_agent_header="tests") as client:
        await client.send("echo:hello")
        assert await client.recv() == "hello"
        await client.send("bytes")  # not UTF-8: a binary frame
        assert await client.recv() == PNG
        await client.send("get")
        described = json.loads(await client.recv())
        assert described["identity"] == {"SourceIp": "127.0.0.1", "UserAgent": "tests"}
        assert described["connected"] <= described["active"]

        connection_id = await whoami(client)
        assert api.connection_ids == [connection_id]
        outside = management(api)
        await asyncio.to_thread(
            outside.post_to_connection, ConnectionId=connection_id, Data=b"from outside"
        )
        assert await client.recv() == "from outside"
        found = await asyncio.to_thread(outside.get_connection, ConnectionId=connection_id)
        assert found["Identity"]["SourceIp"] == "127.0.0.1"


async def test_binary_frames_close_with_1003_unless_delivered(
    api: WebSocketApiEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with connect(api.url) as client:
        await client.send(PNG)
        assert await closed_with(client) == 1003
    delivering = start(monkeypatch, isolation="thread", binary_frames="deliver")
    try:
        async with connect(delivering.url) as client:
            await client.send(PNG)
            assert base64.b64decode(json.loads(await client.recv())["binary"]) == PNG
    finally:
        delivering.stop()


async def test_gone_connections(threaded: WebSocketApiEmulator) -> None:
    outside = management(threaded)
    for call in (
        lambda: outside.post_to_connection(ConnectionId="bm90LWFuLWlkLXg=", Data=b"x"),
        lambda: outside.get_connection(ConnectionId="bm90LWFuLWlkLXg="),
        lambda: outside.delete_connection(ConnectionId="bm90LWFuLWlkLXg="),
    ):
        with pytest.raises(outside.exceptions.GoneException):
            await asyncio.to_thread(call)
    async with connect(f"{threaded.url}?post_self=1") as client:
        connection_id = await whoami(client)
    # Posting during its own $connect: the connection is not established yet.
    (gone,) = websocket_events.wait_for("gone")
    assert "GoneException" in gone["error"]
    websocket_events.wait_for("$disconnect")
    with pytest.raises(outside.exceptions.GoneException):
        await asyncio.to_thread(outside.post_to_connection, ConnectionId=connection_id, Data=b"x")


async def test_delete_closes_the_connection(threaded: WebSocketApiEmulator) -> None:
    async with connect(threaded.url) as client:
        await client.send("close")  # the handler deletes its own connection
        assert await closed_with(client) == 1000
    (closed,) = websocket_events.wait_for("$disconnect")
    assert closed["requestContext"]["disconnectStatusCode"] == 1000
    assert closed["requestContext"]["disconnectReason"] == "Connection Closed Normally"
    async with connect(threaded.url) as client:
        connection_id = await whoami(client)
        await asyncio.to_thread(management(threaded).delete_connection, ConnectionId=connection_id)
        assert await closed_with(client) == 1000
    assert threaded.connection_ids == []


async def test_connections_are_independent(api: WebSocketApiEmulator) -> None:
    async with connect(api.url) as first, connect(api.url) as second:
        first_id, second_id = await whoami(first), await whoami(second)
        assert first_id != second_id
        await first.send(f"to:{second_id}:hi")
        assert await second.recv() == "hi"
        await first.send("echo:mine")
        assert await first.recv() == "mine"  # nothing of the other's came first
        await first.close()
        await second.send("echo:still here")
        assert await second.recv() == "still here"
        with pytest.raises(management(api).exceptions.GoneException):
            await asyncio.to_thread(
                management(api).post_to_connection, ConnectionId=first_id, Data=b"x"
            )


async def test_api_gateways_frame_and_message_limits(threaded: WebSocketApiEmulator) -> None:
    chunk = "x" * (32 * 1024)
    async with connect(threaded.url) as client:
        await client.send([chunk] * 4)  # 128 KB in 32 KB fragments: accepted
        assert await client.recv() == f"length {128 * 1024}"
        connection_id = await whoami(client)
        outside = management(threaded)
        await asyncio.to_thread(
            outside.post_to_connection, ConnectionId=connection_id, Data=b"y" * (128 * 1024)
        )
        assert len(await client.recv()) == 128 * 1024
        with pytest.raises(outside.exceptions.PayloadTooLargeException):
            await asyncio.to_thread(
                outside.post_to_connection,
                ConnectionId=connection_id,
                Data=b"y" * (128 * 1024 + 1),
            )
        await client.send([chunk] * 4 + ["x"])  # one byte over 128 KB
        assert await closed_with(client) == 1009
    async with connect(threaded.url) as client:
        await client.send(chunk + "x")  # one frame over 32 KB
        assert await closed_with(client) == 1009
    closes = websocket_events.wait_for("$disconnect", count=2)
    assert [e["requestContext"]["disconnectStatusCode"] for e in closes] == [1009, 1009]


async def test_idle_and_maximum_connection_time(monkeypatch: pytest.MonkeyPatch) -> None:
    websocket_events.clear()
    emulator = start(monkeypatch, isolation="thread", idle_timeout=0.4, max_connection_seconds=1.2)
    try:
        async with connect(emulator.url) as client:
            started = time.monotonic()
            assert await closed_with(client) == 1001
            assert 0.3 < time.monotonic() - started < 3.0
        async with connect(emulator.url) as client:
            started = time.monotonic()
            with pytest.raises(ConnectionClosed):
                while True:  # active, never idle for 0.4 s
                    await client.send("echo:ping")
                    await client.recv()
                    await asyncio.sleep(0.2)
            assert client.close_code == 1001
            assert 1.1 < time.monotonic() - started < 4.0
        closes = websocket_events.wait_for("$disconnect", count=2)
        assert {(e["requestContext"]["disconnectStatusCode"]) for e in closes} == {1001}
        assert closes[0]["requestContext"]["disconnectReason"] == "Going away"
    finally:
        emulator.stop()
        websocket_events.clear()


async def test_failed_invocations_are_reported_to_the_client(
    threaded: WebSocketApiEmulator,
) -> None:
    async with connect(threaded.url) as client:
        connection_id = await whoami(client)
        await client.send("boom")
        failed = json.loads(await client.recv())
        assert failed["message"] == "Internal server error"
        assert failed["connectionId"] == connection_id and failed["requestId"]
        await client.send("sleep:3")
        assert json.loads(await client.recv())["message"] == "Endpoint request timed out"
        await client.send("echo:after")
        assert await client.recv() == "after"


def test_a_taken_port_is_a_clear_error(threaded: WebSocketApiEmulator) -> None:
    with pytest.raises(WebSocketApiError, match=f"cannot listen on 127.0.0.1:{threaded.port} for the WebSocket API") as taken:
        WebSocketApiEmulator(HANDLER, port=threaded.port, isolation="thread").start()
    assert "agent-runtime dev --ws-port PORT picks another" in str(taken.value)


def test_dev_takes_a_websocket_port() -> None:
    from agent_runtime.cli import parser

    assert parser().parse_args(["dev", "--ws-port", "9911"]).ws_port == 9911
    assert parser().parse_args(["dev"]).ws_port is None


def test_the_stack_serves_websocket_and_run_dev_prints_it() -> None:
    out, stop = io.StringIO(), threading.Event()
    before = os.environ.get(settings.ENV_WEBSOCKET_ENDPOINT)
    running = threading.Thread(
        target=run_dev,
        args=(0, "agents", None),
        kwargs={
            "http_handler": "tests.dev.handlers:echo",
            "worker_handler": "tests.dev.handlers:ok_worker",
            "websocket_handler": HANDLER,
            "pollers": 1,
            "out": out,
            "stop": stop,
        },
    )
    running.start()
    try:
        deadline = time.monotonic() + 30
        while "websocket:" not in out.getvalue() and time.monotonic() < deadline:
            time.sleep(0.05)
        lines = out.getvalue().splitlines()
        assert re.fullmatch(r"ready: http://127\.0\.0\.1:\d+", lines[1])
        ws_url = re.fullmatch(r"websocket: (ws://127\.0\.0\.1:\d+/local)", lines[2])
        assert ws_url is not None
        endpoint = os.environ[settings.ENV_WEBSOCKET_ENDPOINT]  # run_dev's stack set it
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/local", endpoint)

        async def talk() -> str:
            async with connect(ws_url.group(1)) as client:
                await client.send("echo:through the stack")
                return str(await client.recv())

        assert asyncio.run(talk()) == "through the stack"
    finally:
        stop.set()
        running.join(30)
    assert os.environ.get(settings.ENV_WEBSOCKET_ENDPOINT) == before


def test_the_websocket_api_is_on_when_its_handler_module_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert LocalStack(port=0).websocket_handler is None
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "websocket.py").write_text("def handler(event, context): ...\n")
    assert LocalStack(port=0).websocket_handler == "functions.websocket:handler"
    assert LocalStack(port=0, websocket_handler=None).websocket_handler is None
