"""Attached files through the ``anthropic/...`` provider: the real SDK against the local fake,
which refuses image and document blocks the way the API does."""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Iterator

import httpx2
import pytest

from agent_runtime.messages import FilePart, Message, TextPart, ToolCallPart, ToolResultPart
from agent_runtime.models import ModelRequest, allow_model_requests
from agent_runtime.models import anthropic as provider
from agent_runtime.models.anthropic import AnthropicModel, to_anthropic_messages
from agent_runtime.testing.fake_anthropic import FakeAnthropic

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR PIXELS-OF-A-SECRET-PNG \xff\x00" * 40
JPEG = b"\xff\xd8\xff\xe0" + b"JPEG-BODY " * 30
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\nCONFIDENTIAL-PDF-TEXT\n%%EOF\n" * 20
CSV = b"name,secret\nalpha,CSV-CELL-SECRET-42\n"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attach(path: str, media_type: str, data: bytes) -> FilePart:
    return FilePart(
        path=path, media_type=media_type, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


UNREAD = "its content could not be read for this request"
ASSISTANT = "files in assistant turns are not sent"


def inlined(path: str, described: str, text: str) -> dict[str, str]:
    return {"type": "text", "text": f"[file {path} ({described})]\n{text}\n[end of file {path}]"}


def note(path: str, media_type: str, size: str, reason: str) -> dict[str, str]:
    return {
        "type": "text",
        "text": f"[file {path} ({media_type}, {size}) attached; not shown to the model: {reason}]",
    }


@pytest.fixture(autouse=True)
def _requests_to_the_fake() -> Iterator[None]:
    # The suite turns real model requests off; these tests only reach the local fake.
    with allow_model_requests(True):
        yield


def model_for(fake: FakeAnthropic) -> AnthropicModel:
    http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(fake.handler))
    return AnthropicModel(
        "claude-haiku-4-5",
        api_key="sk-test",
        base_url="http://anthropic.fake",
        http_client=http_client,
        max_attempts=1,
    )


async def test_png_and_pdf_reach_the_api_as_image_and_document_blocks() -> None:
    fake = FakeAnthropic(["A chart and a report."])
    png = attach("/attachments/chart.png", "image/png", PNG)
    pdf = attach("/attachments/report.pdf", "application/pdf", PDF)
    request = ModelRequest(
        messages=[Message.user("What are these?", files=[png, pdf])],
        files={png.path: PNG, pdf.path: PDF},
    )

    response = await model_for(fake).request(request)

    assert response.message.text == "A chart and a report."
    assert fake.requests[0].body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What are these?"},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": b64(PNG)},
                },
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)},
                    "title": "/attachments/report.pdf",
                },
            ],
        }
    ]
    image = fake.requests[0].body["messages"][0]["content"][1]
    assert base64.b64decode(image["source"]["data"]) == PNG


async def test_every_part_keeps_its_place_and_unshowable_files_become_notes() -> None:
    """Notes stand where the file was, so the model knows a file is there and why it cannot
    see it; the fake accepts the request, so nothing the API would refuse was sent."""
    fake = FakeAnthropic(["ok"])
    big_png = b"\x89PNG\r\n\x1a\n" + bytes(4_000_000)  # base64 over 5 MB
    zip_part = attach("/in/archive.zip", "application/zip", b"PK\x03\x04" + bytes(1200))
    gone = attach("/in/gone.png", "image/png", PNG)
    big = attach("/in/big.png", "image/png", big_png)
    jpeg_named_png = attach("/in/photo.png", "image/png", JPEG)
    csv = attach("/notes/a.csv", "text/csv; charset=utf-8", CSV)
    call = ToolCallPart(id="toolu_1", name="lookup", arguments={})
    messages = [
        Message.user("Look up the archive."),
        Message(role="assistant", parts=[call]),
        Message(
            role="user",
            parts=[
                TextPart(text="first"),
                zip_part,
                ToolResultPart(call_id="toolu_1", name="lookup", content="found"),
                gone,
                TextPart(text="middle"),
                big,
                jpeg_named_png,
                csv,
                TextPart(text="last"),
            ],
        ),
    ]
    files = {zip_part.path: b"PK", big.path: big_png, jpeg_named_png.path: JPEG, csv.path: CSV}

    await model_for(fake).request(ModelRequest(messages=messages, files=files))

    assert fake.requests[0].body["messages"][2]["content"] == [
        # The tool result moves first, as the API requires; every other part keeps its order.
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "found", "is_error": False},
        {"type": "text", "text": "first"},
        note(
            "/in/archive.zip",
            "application/zip",
            "1.2 kB",
            "the model reads images, PDFs and text, not application/zip",
        ),
        note("/in/gone.png", "image/png", "1.4 kB", UNREAD),
        {"type": "text", "text": "middle"},
        note(
            "/in/big.png",
            "image/png",
            "4.0 MB",
            "it is over the API's limit of 5 MB per image (base64-encoded)",
        ),
        # The bytes decide an image's type: the API refuses a JPEG sent as image/png.
        {
            "type": "image",
            "source": {"type": "base64", "media_type": "image/jpeg", "data": b64(JPEG)},
        },
        inlined("/notes/a.csv", "text/csv, 37 B", CSV.decode()),
        {"type": "text", "text": "last"},
    ]


def test_text_and_image_edge_cases() -> None:
    at_limit = b"\x89PNG\r\n\x1a\n" + bytes(5 * 1024 * 1024 // 4 * 3 - 8)  # base64: exactly 5 MiB
    files = {
        "/a/exact.png": at_limit,
        "/a/fake.png": b"not a png",
        "/a/pic.bmp": b"BM" + bytes(10),
        "/a/logo.svg": b"<svg/>",
        "/a/data.json": b'{"a": 1}',
        "/a/latin1.txt": b"caf\xe9",
        "/a/long.md": b"x" * 100_001,
        "/a/scan.pdf": b"PK not a pdf",
    }
    types = ["image/png", "image/png", "image/bmp", "image/svg+xml", "application/json"]
    types += ["text/plain", "text/markdown", "application/pdf"]
    parts = [attach(path, t, data) for (path, data), t in zip(files.items(), types, strict=True)]

    [turn] = to_anthropic_messages([Message(role="user", parts=parts)], files=files)

    content = list(turn["content"])
    assert content[0] == {
        "type": "image",
        "source": {"type": "base64", "media_type": "image/png", "data": b64(at_limit)},
    }
    assert len(b64(at_limit)) == provider.MAX_IMAGE_BASE64_BYTES
    assert content[1:] == [
        note("/a/fake.png", "image/png", "9 B", "its content is not a valid image/png image"),
        note(
            "/a/pic.bmp",
            "image/bmp",
            "12 B",
            "the model reads PNG, JPEG, GIF and WebP images, not image/bmp",
        ),
        inlined("/a/logo.svg", "image/svg+xml, 6 B", "<svg/>"),
        inlined("/a/data.json", "application/json, 8 B", '{"a": 1}'),
        note("/a/latin1.txt", "text/plain", "4 B", "its content is not UTF-8 text"),
        note("/a/long.md", "text/markdown", "100.0 kB", "text files over 100 kB are not inlined"),
        note("/a/scan.pdf", "application/pdf", "12 B", "its content is not a valid PDF"),
    ]


def test_without_bytes_every_file_is_a_note_and_assistant_files_are_not_sent() -> None:
    png = attach("/a/chart.png", "image/png", PNG)
    history = [
        Message.user("see", files=[png]),
        Message(role="assistant", parts=[TextPart(text="made one"), png]),
    ]

    assert to_anthropic_messages(history) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "see"},
                note("/a/chart.png", "image/png", "1.4 kB", UNREAD),
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "made one"},
                note("/a/chart.png", "image/png", "1.4 kB", ASSISTANT),
            ],
        },
    ]
    with_bytes = to_anthropic_messages(history, files={png.path: PNG})
    assert with_bytes[1] == to_anthropic_messages(history)[1]


def test_when_files_overflow_the_request_the_newest_are_sent(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider, "MAX_FILE_BYTES_PER_REQUEST", len(b64(PDF)) + len(b64(PNG)))
    old = attach("/a/old.pdf", "application/pdf", PDF)
    new = attach("/a/new.pdf", "application/pdf", PDF)
    png = attach("/a/new.png", "image/png", PNG)
    history = [
        Message.user("first", files=[old]),
        Message.assistant("noted"),
        Message.user("second", files=[new, png]),
    ]

    turns = to_anthropic_messages(history, files={old.path: PDF, new.path: PDF, png.path: PNG})

    assert list(turns[0]["content"])[1] == note(
        "/a/old.pdf",
        "application/pdf",
        "1.5 kB",
        "the request has no room left for it after more recent attachments",
    )
    assert [block["type"] for block in turns[2]["content"]] == ["text", "document", "image"]

    monkeypatch.setattr(provider, "MAX_FILE_BYTES_PER_REQUEST", len(b64(PDF)) - 1)
    [turn] = to_anthropic_messages([Message.user("alone", files=[new])], files={new.path: PDF})
    assert list(turn["content"])[1] == note(
        "/a/new.pdf",
        "application/pdf",
        "1.5 kB",
        "it is too large to send (1.9 kB of a request at most, base64)",
    )


async def test_no_file_content_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Even at DEBUG, no log holds a request's body: file content never reaches one."""
    caplog.set_level(logging.DEBUG)
    fake = FakeAnthropic(["seen"])
    png, pdf, csv = (
        attach("/a/chart.png", "image/png", PNG),
        attach("/a/report.pdf", "application/pdf", PDF),
        attach("/a/table.csv", "text/csv", CSV),
    )
    gone = attach("/a/gone.pdf", "application/pdf", PDF)
    request = ModelRequest(
        messages=[Message.user("Read these.", files=[png, pdf, csv, gone])],
        files={png.path: PNG, pdf.path: PDF, csv.path: CSV},
    )

    await model_for(fake).request(request)

    sent = fake.requests[0].body["messages"][0]["content"]
    assert sent[1]["source"]["data"] == b64(PNG) and sent[2]["source"]["data"] == b64(PDF)
    assert "CSV-CELL-SECRET-42" in sent[3]["text"]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/a/gone.pdf" in logged  # why a file was not shown is logged, by path
    for secret in ("PIXELS-OF-A-SECRET-PNG", "CONFIDENTIAL-PDF-TEXT", "CSV-CELL-SECRET-42"):
        assert secret not in logged
    for encoded in (b64(PNG), b64(PDF), b64(CSV)):
        assert encoded[40:80] not in logged


def test_the_fake_refuses_what_the_api_refuses() -> None:
    def post(block: dict[str, object]) -> httpx2.Response:
        body = {
            "model": "m",
            "max_tokens": 10,
            "messages": [{"role": "user", "content": [block]}],
        }
        with httpx2.Client(
            transport=httpx2.MockTransport(FakeAnthropic(default="ok").handler),
            base_url="http://anthropic.fake",
        ) as http:
            return http.post(
                "/v1/messages",
                json=body,
                headers={"anthropic-version": "2023-06-01", "x-api-key": "k"},
            )

    def image(media_type: str, data: str) -> dict[str, object]:
        source = {"type": "base64", "media_type": media_type, "data": data}
        return {"type": "image", "source": source}

    pdf = {"type": "base64", "media_type": "application/pdf", "data": b64(PDF)}
    assert post(image("image/png", b64(PNG))).status_code == 200
    assert post({"type": "document", "source": pdf, "title": "/a.pdf"}).status_code == 200
    refused = [
        post(image("image/png", b64(JPEG))),
        post(image("image/bmp", b64(b"BM"))),
        post(image("image/png", "not base64!")),
        post(image("image/png", b64(b"\x89PNG\r\n\x1a\n" + bytes(4_000_000)))),
        post({**image("image/png", b64(PNG)), "title": "no titles on images"}),
        post({"type": "document", "source": pdf, "title": "x" * 501}),
        post({"type": "document", "source": {**pdf, "data": b64(PNG)}}),
    ]
    assert [r.status_code for r in refused] == [400] * len(refused)
    assert "image exceeds 5 MB maximum" in refused[3].json()["error"]["message"]
    too_big = post({"type": "text", "text": "x" * 32_000_001})
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "request_too_large"
