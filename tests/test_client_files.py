"""The SDK's and the CLI's files and variables, against the real HTTP handler.

The harness is `tests/test_client.py`'s: each request becomes an API Gateway payload 2.0
event for `functions.http_api.handler` (binary bodies base64-encoded, as API Gateway sends
them), on the memory backend. The memory store's presigned uploads name ``memory://`` URLs:
the transport hands such a PUT to `MemoryFiles.put_upload`, which is as far as that store
goes. The real thing (a presigned S3 PUT, a download redirected to S3) runs on the AWS
adapters against moto's server on loopback (`LocalAws`, what ``agent-runtime dev`` runs),
reached over real HTTP.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.server import serve

from agent_runtime import cli
from agent_runtime import client as sdk
from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.adapters.memory import MemoryWakeUps
from agent_runtime.adapters.memory_files import MemoryFiles
from agent_runtime.client import AsyncAgentClient
from agent_runtime.definition import create_agent
from agent_runtime.dev.aws import LocalAws
from agent_runtime.events import AgentEnd
from agent_runtime.ledger import Outcome
from agent_runtime.ports import Stores
from agent_runtime.protocol_files import FILE_BODY_MAX_BYTES, FILE_INLINE_MAX_BYTES, FileView
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import memory_backend
from agent_runtime.variables import Secret, Variable, env
from functions import http_api
from tests.http.harness import BackgroundWorker
from tests.test_client import BASE_URL, Api, ScriptedServer, bearer_only, passes

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not UTF-8: must travel as bytes
SECRET = "tok-very-secret-123"


def registry() -> Registry:
    agents = Registry()
    agents.add("echo", create_agent(model="test/echo"), route=passes)
    agents.add("guarded", create_agent(model="test/echo"), route=bearer_only)
    shop = create_agent(
        model="test/echo",
        instructions=["You sell shoes. Inventory:", env("INVENTORY")],
        variables=[Variable("INVENTORY", required=True), Secret("CRM_TOKEN", description="for the CRM tool")],
    )
    agents.add("shop", shop, route=passes)
    return agents


@contextlib.contextmanager
def serving(stores: Stores) -> Iterator[Api]:
    worker = BackgroundWorker(MemoryWakeUps())
    worker.runtime = Runtime(registry=registry(), stores=stores, wakeups=worker)
    http_api.set_runtime(worker.runtime)
    try:
        yield Api(worker)
    finally:
        run(worker.join())
        http_api.set_runtime(None)


@pytest.fixture
def api() -> Iterator[Api]:
    """The API on the memory backend; its presigned uploads land in `MemoryFiles`."""
    with serving(memory_backend().stores) as served:
        files = served.worker.runtime.stores.files  # type: ignore[union-attr]
        assert isinstance(files, MemoryFiles)

        def memory_upload(request: httpx.Request) -> httpx.Response:
            assert request.url.scheme == "memory" and request.method == "PUT", request.url
            files.put_upload(request.url.path.rsplit("/", 1)[-1], request.content)
            return httpx.Response(200)

        served.elsewhere = memory_upload
        yield served


@pytest.fixture
def s3_api() -> Iterator[Api]:
    """The API on the AWS adapters, against moto's server on loopback: S3 over real HTTP."""
    network = httpx.HTTPTransport()

    def s3(request: httpx.Request) -> httpx.Response:
        reply = network.handle_request(request)
        content = reply.read()
        headers = {k: v for k, v in reply.headers.items() if k not in ("content-encoding", "content-length", "transfer-encoding")}
        return httpx.Response(reply.status_code, headers=headers, content=content)

    with LocalAws() as aws:
        assert aws.resources is not None
        resources = aws.resources
        blobs = S3Blobs(aws.client("s3"), resources.bucket)
        stores = dynamodb_stores(
            aws.client("dynamodb"), resources.table, blobs, kms=aws.client("kms"), secrets_key=resources.secrets_key
        )
        with serving(stores) as served:
            served.elsewhere = s3
            yield served
    network.close()


def sent_json(api: Api, index: int = -1) -> Any:
    return json.loads(api.requests[index].content)


# --- files ------------------------------------------------------------------------------------


def test_a_file_round_trips_as_bytes(api: Api) -> None:
    with api.client() as client:
        stored = client.put_file("echo", "f-1", "/attachments/receipt.png", PNG)
        assert client.get_file("echo", "f-1", "/attachments/receipt.png") == PNG
        page = client.list_files("echo", "f-1", "/attachments")
        client.delete_file("echo", "f-1", "/attachments/receipt.png")
        with pytest.raises(sdk.NotFound) as gone:
            client.get_file("echo", "f-1", "/attachments/receipt.png")
        with pytest.raises(sdk.NotFound) as twice:
            client.delete_file("echo", "f-1", "/attachments/receipt.png")

    assert isinstance(stored, FileView)
    assert (stored.path, stored.size, stored.media_type) == ("/attachments/receipt.png", len(PNG), "image/png")
    assert stored.sha256 == hashlib.sha256(PNG).hexdigest()
    assert [f.path for f in page.files] == ["/attachments/receipt.png"] and page.next is None
    put = api.requests[0]
    assert put.method == "PUT" and put.url.path == "/agents/echo/f-1/files/attachments/receipt.png"
    assert put.content == PNG and "content-type" not in put.headers, "the API guesses the type from the path"
    assert gone.value.status == 404 and gone.value.type == "file_not_found"
    assert twice.value.type == "file_not_found"


def test_a_given_media_type_is_kept_and_odd_names_are_encoded(api: Api) -> None:
    with api.client() as client:
        stored = client.put_file("echo", "f-2", "notes/a b+c.txt", b"caf\xc3\xa9\n", media_type="text/markdown")
        assert client.get_file("echo", "f-2", "/notes/a b+c.txt") == "café\n".encode()

    assert stored.path == "/notes/a b+c.txt" and stored.media_type == "text/markdown"
    assert api.requests[0].url.raw_path == b"/agents/echo/f-2/files/notes/a%20b%2Bc.txt"
    assert api.requests[0].headers["content-type"] == "text/markdown"


def test_bad_media_types_paths_and_sizes_are_sdk_errors(api: Api) -> None:
    with api.client() as client:
        with pytest.raises(sdk.UnsupportedMediaType) as unsupported:
            client.put_file("echo", "f-3", "/x.bin", b"data", media_type="foo/bar")
        with pytest.raises(sdk.InvalidRequest) as bad_path:
            client.put_file("echo", "f-3", "/a/../b.png", PNG)
        with pytest.raises(sdk.NotFound) as unknown_agent:
            client.list_files("nobody", "f-3")
        assert client.list_files("echo", "f-3").files == []

    assert unsupported.value.status == 415 and unsupported.value.type == "unsupported_media_type"
    assert isinstance(unsupported.value, sdk.InvalidRequest)
    assert bad_path.value.status == 400 and bad_path.value.type == "invalid_request"
    assert unknown_agent.value.type == "agent_not_found"
    assert sdk.error_for(413, "file_too_large", "big").__class__ is sdk.PayloadTooLarge


def test_listing_iterates_every_page(api: Api) -> None:
    with api.client() as client:
        for n in range(5):
            client.put_file("echo", "f-4", f"/docs/{n}.txt", f"doc {n}".encode())
        client.put_file("echo", "f-4", "/other.txt", b"not under /docs")
        first = client.list_files("echo", "f-4", "/docs", limit=2)
        second = client.list_files("echo", "f-4", "/docs", after=first.next, limit=2)
        before = len(api.requests)
        every = [f.path for f in client.iter_files("echo", "f-4", "/docs", limit=2)]

    assert [f.path for f in first.files] == ["/docs/0.txt", "/docs/1.txt"] and first.next == "/docs/1.txt"
    assert [f.path for f in second.files] == ["/docs/2.txt", "/docs/3.txt"]
    assert every == [f"/docs/{n}.txt" for n in range(5)]
    assert len(api.requests) - before == 3
    assert api.requests[-1].url.params["after"] == "/docs/3.txt"


def test_upload_file_through_the_memory_stores_upload(api: Api) -> None:
    data = bytes(range(256)) * 300
    with api.client("s3cret") as client:
        stored = client.upload_file("guarded", "f-5", "/big/blob.bin", io.BytesIO(data))
        assert client.get_file("guarded", "f-5", "/big/blob.bin") == data

    assert stored.size == len(data) and stored.media_type == "application/octet-stream"
    start, complete = api.requests[:2]
    assert (start.method, start.url.path) == ("POST", "/agents/guarded/f-5/uploads")
    assert complete.method == "POST" and complete.url.path.endswith("/complete")
    assert sent_json(api, 0) == {"path": "/big/blob.bin", "media_type": "application/octet-stream", "size": len(data)}
    (put,) = api.external
    assert put.method == "PUT" and put.content == data
    assert put.headers["content-type"] == "application/octet-stream" and put.headers["content-length"] == str(len(data))
    assert "authorization" not in put.headers, "the token stays with the API"


def test_big_files_go_through_s3_and_come_back_from_it(s3_api: Api) -> None:
    size = 5 * 1024 * 1024
    assert size > FILE_BODY_MAX_BYTES and size > FILE_INLINE_MAX_BYTES
    data = hashlib.sha256(b"seed").digest() * (size // 32)
    with s3_api.client("s3cret") as client:
        stored = client.put_file("guarded", "f-6", "/big/video.bin", data)  # over the API's limit: through S3
        assert client.get_file("guarded", "f-6", "/big/video.bin") == data  # a 307 to S3
        small = client.put_file("guarded", "f-6", "/small.png", PNG)
        assert client.get_file("guarded", "f-6", "/small.png") == PNG
        with pytest.raises(sdk.NotFound):
            client.get_file("guarded", "f-6", "/nothing.png")

    assert stored.size == size and stored.sha256 == hashlib.sha256(data).hexdigest()
    assert small.size == len(PNG)
    api_calls = [(r.method, r.url.path.split("/")[4]) for r in s3_api.requests]
    assert api_calls[:4] == [("POST", "uploads"), ("POST", "uploads"), ("GET", "files"), ("PUT", "files")]
    assert all(r.headers["authorization"] == "Bearer s3cret" for r in s3_api.requests)
    assert [(r.method, r.url.host) for r in s3_api.external] == [("PUT", "127.0.0.1"), ("GET", "127.0.0.1")]
    assert all("authorization" not in r.headers for r in s3_api.external), "the token never goes to S3"


async def test_the_async_client_uploads_a_file_in_chunks_to_s3(s3_api: Api, tmp_path: Path) -> None:
    size = FILE_BODY_MAX_BYTES + sdk.UPLOAD_CHUNK_BYTES // 2
    local = tmp_path / "scan.pdf"
    local.write_bytes((b"%PDF-" + bytes(range(256)) * (size // 256 + 1))[:size])
    async with s3_api.async_client("s3cret") as client:
        with local.open("rb") as file:
            stored = await client.upload_file("guarded", "a-1", "/docs/scan.pdf", file)
        assert await client.get_file("guarded", "a-1", "/docs/scan.pdf") == local.read_bytes()
        listed = [f async for f in client.iter_files("guarded", "a-1")]

    assert stored.size == size and stored.media_type == "application/pdf"
    assert [f.path for f in listed] == ["/docs/scan.pdf"]
    assert s3_api.external[0].headers["content-length"] == str(size)


def test_s3_refusals_become_sdk_errors() -> None:
    body = b"<?xml version='1.0'?><Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
    error = sdk.error_from_storage(403, body)
    assert isinstance(error, sdk.Unauthorized)
    assert (error.status, error.type, error.message) == (403, "AccessDenied", "S3: Request has expired")
    assert type(sdk.error_from_storage(502, b"Bad Gateway")) is sdk.ServerError


# --- prompts with attachments ---------------------------------------------------------------


def test_a_prompt_attaches_stored_files_and_inline_images(api: Api) -> None:
    gif = b"GIF89a-tiny\x00\xff"
    with api.client() as client:
        client.put_file("echo", "p-1", "/attachments/receipt.png", PNG)
        reply = client.prompt(
            "echo", "p-1", "is this receipt valid?", attachments=["/attachments/receipt.png"], images=[("image/gif", gif)]
        )
        parts = client.history("echo", "p-1").messages[0].parts
        inline = client.get_file("echo", "p-1", parts[2].path)  # type: ignore[union-attr]

    assert reply.result is not None and reply.submission.outcome == "completed"
    sent = sent_json(api, 1)
    assert sent["attachments"] == ["/attachments/receipt.png"]
    assert sent["images"] == [{"media_type": "image/gif", "data": base64.b64encode(gif).decode()}]
    assert [p.type for p in parts] == ["text", "file", "file"]
    assert parts[1].path == "/attachments/receipt.png"  # type: ignore[union-attr]
    assert inline == gif


def test_a_missing_attachment_is_not_found_and_nothing_is_admitted(api: Api) -> None:
    with api.client() as client, pytest.raises(sdk.NotFound) as missing:
        client.prompt("echo", "p-2", "hi", attachments=["/attachments/nope.png"])
    assert missing.value.type == "file_not_found"


# --- variables --------------------------------------------------------------------------------


def test_variables_are_set_listed_and_a_secret_never_comes_back(api: Api) -> None:
    replies: list[bytes] = []
    original = api.forward

    def keep(request: httpx.Request) -> httpx.Response:
        response = original(request)
        replies.append(response.content)
        return response

    api.forward = keep  # type: ignore[method-assign]
    with api.client() as client:
        before = client.variables("shop", "v-1")
        with pytest.raises(sdk.InvalidRequest) as refused:
            client.prompt("shop", "v-1", "hi")
        plain = client.set_variable("shop", "v-1", "INVENTORY", "red shoes: 3")
        secret = client.set_variable("shop", "v-1", "CRM_TOKEN", SECRET)
        after = client.variables("shop", "v-1")
        reply = client.prompt("shop", "v-1", "what is in stock?")
        with pytest.raises(sdk.InvalidRequest) as unknown:
            client.set_variable("shop", "v-1", "OTHER", "x")
        client.delete_variable("shop", "v-1", "CRM_TOKEN")
        with pytest.raises(sdk.NotFound) as unset:
            client.delete_variable("shop", "v-1", "CRM_TOKEN")

    assert [(v.name, v.secret, v.required, v.set) for v in before.variables] == [
        ("INVENTORY", False, True, False),
        ("CRM_TOKEN", True, False, False),
    ]
    assert refused.value.type == "missing_variables" and refused.value.details["missing"] == ["INVENTORY"]
    assert plain.value == "red shoes: 3" and plain.set
    assert secret.secret and secret.set and secret.value is None
    assert [v.value for v in after.variables] == ["red shoes: 3", None]
    assert reply.submission.outcome == "completed"
    assert unknown.value.type == "unknown_variable"
    assert unset.value.status == 404 and unset.value.type == "variable_not_set"
    assert sent_json(api, 3) == {"value": SECRET}, "it went in"
    assert not any(SECRET.encode() in body for body in replies), "and never came out"


async def test_the_async_client_has_the_file_and_variable_methods(api: Api) -> None:
    async with api.async_client() as client:
        stored = await client.put_file("shop", "v-2", "/in.bin", PNG, media_type="application/octet-stream")
        assert await client.get_file("shop", "v-2", "/in.bin") == PNG
        page = await client.list_files("shop", "v-2")
        uploaded = await client.upload_file("shop", "v-2", "/up.txt", io.BytesIO(b"hello"))
        await client.delete_file("shop", "v-2", "/in.bin")
        view = await client.set_variable("shop", "v-2", "CRM_TOKEN", SECRET)
        listed = await client.variables("shop", "v-2")
        await client.delete_variable("shop", "v-2", "CRM_TOKEN")
        with pytest.raises(sdk.NotFound):
            await client.delete_file("shop", "v-2", "/in.bin")

    assert stored.media_type == "application/octet-stream" and [f.path for f in page.files] == ["/in.bin"]
    assert uploaded.media_type == "text/plain" and uploaded.size == 5
    assert view.value is None and listed.variables[1].set


# --- the CLI ----------------------------------------------------------------------------------


@pytest.fixture
def use_api(api: Api, monkeypatch: pytest.MonkeyPatch) -> Api:
    """The CLI's clients reach the API under test."""
    monkeypatch.setattr(cli, "_client", lambda url: api.client())
    return api


def test_cli_files_round_trip(use_api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "receipt.png"
    local.write_bytes(PNG)
    assert cli.main(["put-file", "echo", "c-1", "/attachments/", str(local)]) == 0
    assert cli.main(["put-file", "echo", "c-1", "/notes/raw", str(local), "--type", "image/png"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"/attachments/receipt.png  {len(PNG)} bytes  image/png  sha256:{hashlib.sha256(PNG).hexdigest()}")
    assert out[1].startswith("/notes/raw ") and "image/png" in out[1]

    assert cli.main(["files", "echo", "c-1"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in listed] == ["/attachments/receipt.png", "/notes/raw"]
    assert listed[0].split()[0] == str(len(PNG))
    assert cli.main(["files", "echo", "c-1", "--prefix", "/notes"]) == 0
    assert [line.split()[-1] for line in capsys.readouterr().out.splitlines()] == ["/notes/raw"]

    out_file = tmp_path / "back.png"
    assert cli.main(["get-file", "echo", "c-1", "/attachments/receipt.png", "-o", str(out_file)]) == 0
    assert out_file.read_bytes() == PNG
    assert capsys.readouterr().out == ""

    assert cli.main(["rm-file", "echo", "c-1", "/attachments/receipt.png"]) == 0
    assert cli.main(["rm-file", "echo", "c-1", "/attachments/receipt.png"]) == 1
    assert "404 file_not_found" in capsys.readouterr().err
    assert cli.main(["put-file", "echo", "c-1", "/x.bin", str(local), "--type", "foo/bar"]) == 1
    assert "415 unsupported_media_type" in capsys.readouterr().err
    assert cli.main(["put-file", "echo", "c-1", "/x.bin", str(tmp_path / "missing")]) == 1


def test_cli_get_file_writes_raw_bytes_to_stdout(use_api: Api, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    with use_api.client() as client:
        client.put_file("echo", "c-2", "/raw.bin", PNG)
    assert cli.main(["get-file", "echo", "c-2", "/raw.bin"]) == 0
    assert capsysbinary.readouterr().out == PNG


def test_cli_variables_never_print_a_secret(
    use_api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_FROM_ENV", SECRET)
    assert cli.main(["set-variable", "shop", "c-3", "CRM_TOKEN", "--from-env", "CRM_FROM_ENV"]) == 0
    set_secret = capsys.readouterr()
    assert "CRM_TOKEN" in set_secret.out and "(hidden)" in set_secret.out and set_secret.err == ""

    monkeypatch.setattr("sys.stdin", io.StringIO("red shoes: 3\n"))
    assert cli.main(["set-variable", "shop", "c-3", "INVENTORY", "--stdin"]) == 0
    assert '"red shoes: 3"' in capsys.readouterr().out, "the line end is not part of the value"

    assert cli.main(["set-variable", "shop", "c-3", "CRM_TOKEN", SECRET + "-2"]) == 0
    on_command_line = capsys.readouterr()
    assert "--from-env or --stdin" in on_command_line.err

    assert cli.main(["variables", "shop", "c-3"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0].split()[:4] == ["INVENTORY", "plain", "required", "set"] and listed[0].endswith('"red shoes: 3"')
    assert listed[1].split() == ["CRM_TOKEN", "secret", "optional", "set", "(hidden)"]

    assert cli.main(["set-variable", "shop", "c-3", "CRM_TOKEN", "--from-env", "NOT_THERE"]) == 1
    assert "NOT_THERE is not set" in capsys.readouterr().err
    assert cli.main(["unset-variable", "shop", "c-3", "CRM_TOKEN"]) == 0
    assert cli.main(["variables", "shop", "c-3"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["CRM_TOKEN", "secret", "optional", "unset", "-"]
    with pytest.raises(SystemExit) as usage:
        cli.main(["set-variable", "shop", "c-3", "CRM_TOKEN"])  # no value from anywhere
    assert usage.value.code == 2
    assert SECRET not in capsys.readouterr().out
    assert not any(SECRET in r.url.query.decode() for r in use_api.requests), "never in a URL"


def test_cli_send_attaches_stored_and_local_files(use_api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    local = tmp_path / "photo.png"
    local.write_bytes(PNG)
    with use_api.client() as client:
        client.put_file("echo", "c-4", "/attachments/receipt.png", PNG)
    argv = ["send", "echo", "c-4", "look", "--attach", "/attachments/receipt.png", "--attach-file", str(local)]
    assert cli.main(argv) == 0
    assert capsys.readouterr().out == "echo: look\n"
    assert sent_json(use_api)["attachments"] == ["/attachments/receipt.png", "/attachments/photo.png"]
    assert cli.main(["send", "echo", "c-4", "hi", "--attach", "/attachments/nope.png"]) == 1
    assert "404 file_not_found" in capsys.readouterr().err


def test_cli_chat_attaches_to_the_first_message(
    use_api: Api, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv(cli.ENV_WS_URL, raising=False)
    with use_api.client() as client:
        client.put_file("echo", "c-5", "/attachments/receipt.png", PNG)
    lines = iter(["first", "second"])

    def answer(prompt: str) -> str:
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    monkeypatch.setattr("builtins.input", answer)
    argv = ["chat", "echo", "c-5", "--attach", "/attachments/receipt.png", "--url", BASE_URL]
    assert cli.main(argv) == 0
    assert "echo: first\necho: second\n" in capsys.readouterr().out
    prompts = [json.loads(r.content) for r in use_api.requests if r.url.path == "/agents/echo/c-5"]
    assert [p.get("attachments") for p in prompts] == [["/attachments/receipt.png"], None]


async def test_cli_chat_streaming_sends_the_attachments_over_http(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A WebSocket prompt carries no attachments: the first message goes over HTTP, and its
    events still come over the connection."""
    server = ScriptedServer()
    prompted: list[dict[str, Any]] = []

    async def http(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return server.events_page(request)
        prompted.append(json.loads(request.content))
        await server.add("answer to look")  # the events of submission s-1
        end = AgentEnd(
            offset=len(server.log) + 1, at="2026-11-21T05:14:00.000Z", agent="echo", id="w",
            session="default", submission_id="s-1", outcome=Outcome.completed, result={"text": "answer to look"},
        ).model_dump(mode="json")
        server.log.append(end)
        for ws in server.sockets:
            await ws.send(server.frame(end))
        submission = {
            "id": "s-1", "kind": "direct", "session": "default", "sequence": 0, "status": "queued", "outcome": None,
            "result": None, "error": None, "accepted_at": "2026-11-21T05:14:00.000Z", "started_at": None,
            "settled_at": None, "attempts": 0,
        }
        return httpx.Response(202, json={"submission": submission})

    lines = iter(["look"])

    async def read_line(prompt: str) -> str | None:
        return next(lines, None)

    monkeypatch.setattr(cli, "_read_line", read_line)
    async with serve(server.handle, "127.0.0.1", 0) as running:
        ws_url = f"ws://127.0.0.1:{next(iter(running.sockets)).getsockname()[1]}/local"
        async with (
            AsyncAgentClient(BASE_URL, ws_url=ws_url, transport=httpx.MockTransport(http)) as client,
            client.connect("echo", "w") as conn,
        ):
            assert await cli._converse(conn, "default", client, ["/attachments/receipt.png"]) == 0

    assert [(p["message"], p["attachments"], p["wait"]) for p in prompted] == [("look", ["/attachments/receipt.png"], 0)]
    assert server.prompts == [], "nothing was prompted over the WebSocket"
    assert capsys.readouterr().out == "answer to look\n\n"
