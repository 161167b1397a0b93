"""The WebSocket surface end to end: the SDK's `Connection` and raw sockets against the local stack.

Everything goes through the WebSocket API emulator to ``functions.websocket`` (``$connect``
with the agent's hook, ``$default``, ``$disconnect``), while the run happens in
``functions.worker`` and posts its events back through the emulator's ``@connections``
endpoint; large events are fetched over the HTTP API. The agent is ``agents/streamer.py``:
it streams its answer a word at a time, so a run lasts long enough to watch it, and to
cut a connection in the middle of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import sys
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from agent_runtime import cli
from agent_runtime.client import AsyncAgentClient, Connection, NotFound, Unauthorized
from agent_runtime.dev import LocalStack
from agent_runtime.events import AgentEnd, Event, TextDelta
from tests.e2e.agents.streamer import BIG_WORD_CHARS, TOKEN
from tests.e2e.conftest import AGENTS

#: How long a run may take to end before the test fails (a loaded machine is slow).
DEADLINE = 30.0
WORDS = "the quick brown fox jumps over the dog"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    with LocalStack(
        port=0,
        state_dir=tmp_path_factory.mktemp("websocket-state"),
        agents_dir=str(AGENTS),
        websocket_handler="functions.websocket:handler",
        isolation="process",
    ) as running:
        yield running


class RecordingTransport(httpx.AsyncHTTPTransport):
    """The network, noting every request's path and query."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request.url.raw_path.decode())
        return await super().handle_async_request(request)


@contextlib.asynccontextmanager
async def sdk(stack: LocalStack, token: str | None = TOKEN, **options: Any) -> AsyncIterator[AsyncAgentClient]:
    async with AsyncAgentClient(stack.url, token, ws_url=stack.ws_url, **options) as client:
        yield client


async def until_end(conn: Connection, submission_id: str) -> list[Event]:
    """Every event the connection hands out, up to the given submission's ``agent_end``."""
    seen: list[Event] = []
    async with asyncio.timeout(DEADLINE):
        async for event in conn:
            seen.append(event)
            if isinstance(event, AgentEnd) and event.submission_id == submission_id:
                return seen
    raise AssertionError("the connection ended before the run did")


async def logged(client: AsyncAgentClient, instance: str, after: int, until: int) -> list[Event]:
    """The instance's event log over HTTP: the events in (after, until]."""
    events: list[Event] = []
    while after < until:
        page = await client.events("streamer", instance, after=after, limit=1000)
        assert page.events, f"the log ends at {after}, before {until}"
        events += [e for e in page.events if e.offset <= until]
        after = page.last
    return events


def text_of(events: list[Event], submission_id: str) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta) and e.submission_id == submission_id)


# --- streaming ------------------------------------------------------------------------------


async def test_deltas_arrive_in_order_and_make_the_final_text(stack: LocalStack, instance: str) -> None:
    async with sdk(stack) as client, client.connect("streamer", instance) as conn:
        submission = await conn.prompt(WORDS, session="s1")
        events = await until_end(conn, submission.id)

    offsets = [e.offset for e in events]
    assert offsets == sorted(set(offsets))
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3, "the answer should arrive in pieces"
    end = events[-1]
    assert isinstance(end, AgentEnd) and end.outcome.value == "completed" and end.result is not None
    assert text_of(events, submission.id) == end.result["text"] == f"said: {WORDS}"
    assert {e.session for e in events if e.submission_id == submission.id} == {"s1"}


async def test_a_dropped_connection_resumes_with_exactly_the_missed_events(stack: LocalStack, instance: str) -> None:
    async with sdk(stack) as client:
        async with client.connect("streamer", instance) as conn:
            start = conn.offset
            assert start is not None
            submission = await conn.prompt(WORDS)
            seen: list[Event] = []
            async with asyncio.timeout(DEADLINE):
                async for event in conn:
                    seen.append(event)
                    if isinstance(event, TextDelta) and conn.reconnects == 0 and conn.websocket is not None:
                        conn.websocket.transport.abort()  # the network goes, no close handshake
                        await asyncio.sleep(0.8)  # the run goes on meanwhile
                    if isinstance(event, AgentEnd):
                        break
            assert conn.reconnects == 1
        expected = await logged(client, instance, start, seen[-1].offset)

    assert [e.offset for e in seen] == [e.offset for e in expected]
    assert seen == expected
    assert text_of(seen, submission.id) == f"said: {WORDS}"


async def test_a_client_back_with_its_last_offset_gets_exactly_what_it_missed(stack: LocalStack, instance: str) -> None:
    async with sdk(stack) as client:
        async with client.connect("streamer", instance) as first:
            submission = await first.prompt(WORDS)
            async with asyncio.timeout(DEADLINE):
                while not isinstance(await anext(first), TextDelta):
                    pass
            last = first.offset
        assert last is not None
        assert (await client.wait("streamer", instance, submission.id, timeout=DEADLINE)).status == "settled"

        async with client.connect("streamer", instance, after=last) as second:
            rest = await until_end(second, submission.id)
        expected = await logged(client, instance, last, rest[-1].offset)

    assert rest == expected and rest[0].offset > last
    assert any(isinstance(e, TextDelta) for e in rest)


async def test_an_abort_frame_stops_a_reply_while_it_streams(stack: LocalStack, instance: str) -> None:
    """The worker (another process) notices the abort while the model still streams: the
    run ends about a poll later (1 s), not after the 40 words' 10 s."""
    long_message = " ".join(["word"] * 40)
    async with sdk(stack) as client, client.connect("streamer", instance) as conn:
        submission = await conn.prompt(long_message)
        seen: list[Event] = []
        async with asyncio.timeout(DEADLINE):
            async for event in conn:
                seen.append(event)
                if sum(isinstance(e, TextDelta) for e in seen) >= 2:
                    break
        loop = asyncio.get_running_loop()
        asked = loop.time()
        assert await conn.abort() == [submission.id]
        rest = await until_end(conn, submission.id)
        took = loop.time() - asked

    end = rest[-1]
    assert isinstance(end, AgentEnd) and end.outcome.value == "aborted"
    assert took < 5.0, f"the abort took {took:.1f} s"
    streamed = text_of(seen + rest, submission.id)
    assert streamed and len(streamed) < len(f"said: {long_message}")


async def test_two_clients_on_one_instance_both_receive(stack: LocalStack, instance: str) -> None:
    async with sdk(stack) as client, client.connect("streamer", instance) as a, client.connect("streamer", instance) as b:
        submission = await a.prompt("two watchers")
        seen_by_a, seen_by_b = await asyncio.gather(until_end(a, submission.id), until_end(b, submission.id))

    ours_a = [e for e in seen_by_a if e.submission_id == submission.id]
    ours_b = [e for e in seen_by_b if e.submission_id == submission.id]
    assert ours_a == ours_b
    assert text_of(ours_a, submission.id) == "said: two watchers"


async def test_an_event_too_large_for_a_frame_is_fetched_over_http(stack: LocalStack, instance: str) -> None:
    transport = RecordingTransport()
    async with sdk(stack, transport=transport) as client, client.connect("streamer", instance) as conn:
        submission = await conn.prompt("big one")
        events = await until_end(conn, submission.id)

    assert text_of(events, submission.id) == f"said: {'x' * BIG_WORD_CHARS} big one"
    fetched = [path for path in transport.requests if path.startswith(f"/agents/streamer/{instance}/events?")]
    assert fetched, transport.requests


# --- refusals and bad frames ----------------------------------------------------------------


async def test_connect_is_refused_by_the_hook_and_for_unexposed_agents(stack: LocalStack, instance: str) -> None:
    async with sdk(stack, token="wrong") as client:
        with pytest.raises(Unauthorized) as refused:
            async with client.connect("streamer", instance):
                pass
        assert refused.value.status == 401 and refused.value.type == "unauthorized"
        with pytest.raises(NotFound) as unexposed:  # echo has no websocket hook
            async with client.connect("echo", instance):
                pass
        assert unexposed.value.type == "agent_not_found"
    with pytest.raises(InvalidStatus) as no_address:
        async with ws_connect(stack.ws_url):
            pass
    assert no_address.value.response.status_code == 400


async def test_a_malformed_frame_gets_an_error_and_the_connection_stays(stack: LocalStack, instance: str) -> None:
    async with ws_connect(f"{stack.ws_url}?agent=streamer&id={instance}&token={TOKEN}") as ws:

        async def reply() -> dict[str, Any]:
            async with asyncio.timeout(DEADLINE):
                frame: dict[str, Any] = json.loads(await ws.recv())
                return frame

        await ws.send("not json")
        first = await reply()
        assert (first["type"], first["status"], first["error"]["type"]) == ("error", 400, "invalid_request")
        await ws.send(json.dumps({"v": 1, "type": "prompt", "request_id": "r-1", "message": ""}))
        second = await reply()
        assert second["type"] == "error" and second["request_id"] == "r-1" and second["error"]["details"]["errors"]
        await ws.send(json.dumps({"v": 1, "type": "ping", "request_id": "p-1"}))
        assert await reply() == {"v": 1, "type": "pong", "request_id": "p-1"}


async def test_a_binary_frame_is_refused(stack: LocalStack, instance: str) -> None:
    async with ws_connect(f"{stack.ws_url}?agent=streamer&id={instance}&token={TOKEN}") as ws:
        await ws.send(b"\x00\x01binary")
        with pytest.raises(ConnectionClosed) as closed:
            async with asyncio.timeout(DEADLINE):
                await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003


# --- the command line -----------------------------------------------------------------------


def test_send_and_status_print_what_the_client_reads(
    stack: LocalStack, instance: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["send", "echo", instance, "hi there", "--url", stack.url]) == 0
    assert capsys.readouterr().out == "echo: hi there\n"
    assert cli.main(["send", "nobody", instance, "hi", "--url", stack.url]) == 1
    assert "error 404 agent_not_found" in capsys.readouterr().err
    assert cli.main(["send", "echo", instance, "later", "--no-wait", "--url", stack.url]) == 0
    submission_id, status = capsys.readouterr().out.split()
    assert status in ("queued", "running", "settled")
    assert cli.main(["status", "echo", instance, submission_id, "--url", stack.url]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == submission_id



def test_chat_streams_the_answer(
    stack: LocalStack, instance: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello streaming world\n"))
    ws_url = f"{stack.ws_url}?token={TOKEN}"
    assert cli.main(["chat", "streamer", instance, "--url", stack.url, "--ws-url", ws_url]) == 0
    out = capsys.readouterr().out
    assert f"streaming from {ws_url}" in out
    assert "said: hello streaming world\n" in out


def test_chat_falls_back_to_http_when_streaming_is_refused(
    stack: LocalStack, instance: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
    assert cli.main(["chat", "echo", instance, "--url", stack.url, "--ws-url", stack.ws_url]) == 0
    captured = capsys.readouterr()
    assert "cannot stream" in captured.err
    assert "echo: hi\n" in captured.out
