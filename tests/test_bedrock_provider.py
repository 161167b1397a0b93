"""The ``bedrock/...`` provider through a real boto3 client, against the local fake of
Bedrock Runtime's Converse API (on a loopback socket, its event stream framed byte for
byte as AWS frames it and decoded by botocore's own parser)."""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_runtime.errors import (
    ContextLengthExceeded,
    ModelRequestsForbidden,
    PermanentModelError,
    TransientModelError,
)
from agent_runtime.messages import (
    FilePart,
    Message,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agent_runtime.models import (
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ModelSettings,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    ToolCallStarted,
    ToolSpec,
    allow_model_requests,
    resolve_model,
)
from agent_runtime.models.bedrock import BedrockModel, Sleep
from agent_runtime.models.bedrock_request import document_name, to_converse_messages
from agent_runtime.testing.fake_bedrock import (
    ApiError,
    Disconnect,
    FakeBedrock,
    FakeBedrockServer,
    Reasoning,
    Reply,
    ScriptItem,
    StreamError,
    ToolUse,
)

MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
# Every byte value, so any re-encoding on the way would show.
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 4 + b"\n%%EOF\n"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "AGENT_RUNTIME_BEDROCK_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_BEDROCK_RUNTIME",
    ):
        monkeypatch.delenv(name, raising=False)
    # The suite turns real model requests off; these tests only reach the local fake.
    with allow_model_requests(True):
        yield


@pytest.fixture
def server() -> Iterator[FakeBedrockServer]:
    with FakeBedrockServer(FakeBedrock()) as running:
        yield running


def model_for(
    server: FakeBedrockServer, *script: ScriptItem, sleep: Sleep | None = None
) -> BedrockModel:
    server.fake.add(*script)
    return BedrockModel(MODEL_ID, endpoint_url=server.endpoint_url, backoff=0.001, sleep=sleep)


def ask(
    text: str, *, system: str | None = None, settings: ModelSettings | None = None
) -> ModelRequest:
    return ModelRequest(
        system=system, messages=[Message.user(text)], settings=settings or ModelSettings()
    )


async def collect(model: BedrockModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


def final(events: list[ModelEvent]) -> ModelResponse:
    """The one `ResponseDone`, which must close the stream."""
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert len(done) == 1 and events[-1] is done[0]
    return done[0].response


def attach(path: str, media_type: str, data: bytes) -> FilePart:
    digest = hashlib.sha256(data).hexdigest()
    return FilePart(path=path, media_type=media_type, size=len(data), sha256=digest)


def sent_bytes(block: dict[str, Any], kind: str) -> bytes:
    return base64.b64decode(block[kind]["source"]["bytes"])


async def test_text_streams_deltas_that_make_the_final_message(server: FakeBedrockServer) -> None:
    model = model_for(server, "The quick brown fox jumps over the lazy dog.")
    settings = ModelSettings(max_tokens=256, temperature=0.2)

    events = await collect(model, ask("Say something.", system="Be brief.", settings=settings))

    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    response = final(events)
    assert len(deltas) > 1
    assert "".join(deltas) == response.message.text
    assert response.message.text == "The quick brown fox jumps over the lazy dog."
    assert (response.stop_reason, response.model) == ("end_turn", MODEL_ID)
    sent = server.fake.requests[0]
    assert (sent.operation, sent.model_id, sent.region) == ("ConverseStream", MODEL_ID, "us-east-1")
    assert sent.headers["amz-sdk-request"] == "attempt=1; max=1"  # botocore does not retry
    assert sent.body == {
        "messages": [{"role": "user", "content": [{"text": "Say something."}]}],
        "system": [{"text": "Be brief."}],
        "inferenceConfig": {"maxTokens": 256, "temperature": 0.2},
    }


async def test_tool_round_trip_sends_tool_config_tool_use_and_result(
    server: FakeBedrockServer,
) -> None:
    model = model_for(
        server,
        Reply(
            [
                Reasoning("Need the weather.", signature="sig-1"),
                "Let me check.",
                ToolUse("get_weather", {"city": "Paris"}, id="tooluse_1"),
            ]
        ),
        "Sunny in Paris.",
    )
    first = ModelRequest(
        messages=[Message.user("Weather in Paris?")], tools=[WEATHER], tool_choice="required"
    )

    events = await collect(model, first)

    assert ToolCallStarted(id="tooluse_1", name="get_weather") in events
    assert ThinkingDelta(thinking="Need ") in events
    response = final(events)
    assert response.stop_reason == "tool_use"
    assert response.message.parts == [
        ThinkingPart(thinking="Need the weather.", signature="sig-1"),
        TextPart(text="Let me check."),
        ToolCallPart(id="tooluse_1", name="get_weather", arguments={"city": "Paris"}),
    ]
    tool_spec = {
        "name": "get_weather",
        "description": "Weather for a city.",
        "inputSchema": {"json": WEATHER.parameters},
    }
    assert server.fake.requests[0].body["toolConfig"] == {
        "tools": [{"toolSpec": tool_spec}],
        "toolChoice": {"any": {}},
    }

    result = Message(
        role="user",
        parts=[ToolResultPart(call_id="tooluse_1", name="get_weather", content="sunny, 21C")],
    )
    follow_up = first.model_copy(
        update={
            "messages": [*first.messages, response.message, result, Message.user("Thanks!")],
            "tool_choice": "auto",
        }
    )
    answer = await model.request(follow_up)

    assert answer.message.text == "Sunny in Paris."
    body = server.fake.requests[1].body
    assert body["toolConfig"] == {"tools": [{"toolSpec": tool_spec}]}  # auto: the default
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {
                    "reasoningContent": {
                        "reasoningText": {"text": "Need the weather.", "signature": "sig-1"}
                    }
                },
                {"text": "Let me check."},
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                },
            ],
        },
        {
            "role": "user",  # the result and the next user message, merged into one turn
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "tooluse_1",
                        "content": [{"text": "sunny, 21C"}],
                        "status": "success",
                    }
                },
                {"text": "Thanks!"},
            ],
        },
    ]
    server.fake.assert_done()


async def test_without_tool_config_earlier_tool_calls_are_sent_as_text(
    server: FakeBedrockServer,
) -> None:
    """Converse refuses toolUse / toolResult blocks in a request without toolConfig, which
    ``tool_choice="none"`` sends none of: the history says what happened in text instead."""
    model = model_for(server, "Done.")
    call = ToolCallPart(id="c1", name="get_weather", arguments={"city": "Oslo"})
    history = [
        Message.user("Weather in Oslo?"),
        Message(role="assistant", parts=[call]),
        Message(
            role="user",
            parts=[
                ToolResultPart(call_id="c1", name="get_weather", content="boom", is_error=True)
            ],
        ),
    ]

    await model.request(ModelRequest(messages=history, tools=[WEATHER], tool_choice="none"))

    body = server.fake.requests[0].body
    assert "toolConfig" not in body
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [{"text": '[called tool get_weather (call c1) with {"city": "Oslo"}]'}],
        },
        {"role": "user", "content": [{"text": "[error of tool get_weather (call c1): boom]"}]},
    ]


def test_history_translation_merges_turns_and_drops_what_converse_refuses() -> None:
    call = ToolCallPart(id="c1", name="get_weather", arguments={})
    history = [
        Message.user("a"),
        Message.user("b"),
        Message(
            role="assistant", parts=[ThinkingPart(thinking="unsigned"), TextPart(text="  "), call]
        ),
        Message.user("while the tool ran"),
        Message(
            role="user",
            parts=[
                ToolResultPart(call_id="c1", name="get_weather", content="", status="interrupted")
            ],
        ),
    ]

    assert to_converse_messages(history) == [
        {"role": "user", "content": [{"text": "a"}, {"text": "b"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "c1", "name": "get_weather", "input": {}}}],
        },
        {
            "role": "user",
            "content": [
                {
                    "toolResult": {
                        "toolUseId": "c1",
                        "content": [{"text": "(no output)"}],
                        "status": "error",
                    }
                },
                {"text": "while the tool ran"},
            ],
        },
    ]


async def test_image_and_pdf_reach_the_request_as_converse_blocks_with_their_bytes(
    server: FakeBedrockServer,
) -> None:
    model = model_for(server, "A chart and a report.")
    # Declared PNG, but the bytes decide: a JPEG is sent as one.
    jpeg = b"\xff\xd8\xff\xe0" + bytes(range(256))
    png = attach("/attachments/chart.png", "image/png", PNG)
    photo = attach("/attachments/photo.png", "image/png", jpeg)
    pdf = attach("/attachments/Q3 report.v2.pdf", "application/pdf", PDF)
    zipped = attach("/attachments/data.zip", "application/zip", b"PK\x03\x04")
    request = ModelRequest(
        messages=[Message.user("What are these?", files=[png, photo, pdf, zipped])],
        files={png.path: PNG, photo.path: jpeg, pdf.path: PDF, zipped.path: b"PK\x03\x04"},
    )

    response = await model.request(request)

    assert response.message.text == "A chart and a report."
    [message] = server.fake.requests[0].body["messages"]
    image, other, header, document, note = message["content"][1:]
    assert image["image"]["format"] == "png" and sent_bytes(image, "image") == PNG
    assert other["image"]["format"] == "jpeg" and sent_bytes(other, "image") == jpeg
    assert header == {
        "text": "[file /attachments/Q3 report.v2.pdf (application/pdf, 1.0 kB) attached as "
        "the document named 'attachments-Q3 report-v2']"
    }
    assert {k: v for k, v in document["document"].items() if k != "source"} == {
        "format": "pdf",
        "name": "attachments-Q3 report-v2",
    }
    assert sent_bytes(document, "document") == PDF
    assert note == {
        "text": "[file /attachments/data.zip (application/zip, 4 B) attached; not shown to the "
        "model: the model reads images, documents and text, not application/zip]"
    }


def test_small_text_is_inlined_large_text_a_document_and_files_past_the_limits_notes() -> None:
    csv = b"name,score\nalpha,42\n"
    log = b"line of a long log\n" * 6_000  # 108 kB: too long to inline
    pdfs = [attach(f"/r/{n}.pdf", "application/pdf", PDF) for n in range(5)]
    small, large = attach("/t.csv", "text/csv", csv), attach("/big.log", "text/plain", log)
    files = {small.path: csv, large.path: log} | {pdf.path: PDF for pdf in pdfs}
    history = [
        Message.user("old", files=pdfs[:1]),
        Message.user("new", files=[small, large, *pdfs[1:]]),
    ]

    [turn] = to_converse_messages(history, files=files)

    old, inlined, document = turn["content"][1]["text"], turn["content"][3], turn["content"][5]
    # The newest files are served first: the oldest PDF is the sixth document.
    assert old.startswith("[file /r/0.pdf (application/pdf, 1.0 kB) attached; not shown")
    assert old.endswith("the request already holds Bedrock's 5 documents]")
    assert inlined == {
        "text": "[file /t.csv (text/csv, 20 B)]\nname,score\nalpha,42\n\n[end of file /t.csv]"
    }
    assert (document["document"]["format"], document["document"]["name"]) == ("txt", "big")
    names = [block["document"]["name"] for block in turn["content"] if "document" in block]
    assert names == ["big", "r-1", "r-2", "r-3", "r-4"]


async def test_debug_logs_show_a_converse_body_as_its_length(
    server: FakeBedrockServer, caplog: pytest.LogCaptureFixture
) -> None:
    png = attach("/attachments/secret.png", "image/png", PNG)
    request = ModelRequest(
        messages=[Message.user("A-PRIVATE-QUESTION", files=[png])], files={png.path: PNG}
    )

    with caplog.at_level(logging.DEBUG, logger="botocore.endpoint"):
        await model_for(server, "ok").request(request)

    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "Making request for" in logged and "'body': '<" in logged
    assert "A-PRIVATE-QUESTION" not in logged
    assert base64.b64encode(PNG).decode()[:64] not in logged


def test_document_names_keep_to_the_characters_converse_allows() -> None:
    taken: set[str] = set()

    names = [
        document_name(path, taken)
        for path in ("/a/b.pdf", "/a/b.pdf", "notes  (draft)_v1.md", "/ü.csv", "[x]/y.tar.gz")
    ]

    assert names == ["a-b", "a-b (2)", "notes (draft)-v1", "document", "[x]-y-tar"]


async def test_usage_is_mapped_with_cache_tokens(server: FakeBedrockServer) -> None:
    reply = Reply(
        ["cached"],
        input_tokens=12,
        output_tokens=7,
        cache_read_input_tokens=100,
        cache_write_input_tokens=30,
    )

    response = await model_for(server, reply).request(ask("hi"))

    assert response.usage == Usage(
        input_tokens=12, output_tokens=7, cache_read_tokens=100, cache_write_tokens=30, requests=1
    )


@pytest.mark.parametrize(
    "failure",
    [
        ApiError("ThrottlingException"),
        ApiError("ServiceUnavailableException"),
        ApiError("InternalServerException"),
        ApiError("ModelNotReadyException"),
        ApiError("ModelTimeoutException"),
        StreamError("throttlingException"),
        Disconnect(),
    ],
    ids=lambda failure: getattr(failure, "code", getattr(failure, "type", "disconnect")),
)
async def test_transient_failure_before_any_delta_is_retried(
    server: FakeBedrockServer, failure: ScriptItem
) -> None:
    events = await collect(model_for(server, failure, "recovered"), ask("hi"))

    assert final(events).message.text == "recovered"
    assert [e for e in events if isinstance(e, TextDelta)] == [TextDelta(text="recovered")]
    # Our loop retried, not botocore's: every attempt is botocore's first and only.
    assert [r.headers["amz-sdk-request"] for r in server.fake.requests] == ["attempt=1; max=1"] * 2


async def test_throttling_waits_at_least_retry_after(server: FakeBedrockServer) -> None:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    model = model_for(server, ApiError("ThrottlingException", retry_after=7), "ok", sleep=sleep)

    assert (await model.request(ask("hi"))).message.text == "ok"
    assert len(waits) == 1 and waits[0] >= 7


async def test_attempts_exhausted_raise_the_transient_error(server: FakeBedrockServer) -> None:
    model = model_for(server, *[ApiError("ThrottlingException", "Too many requests")] * 3)

    with pytest.raises(TransientModelError) as caught:
        await model.request(ask("hi"))

    assert caught.value.status == 429
    assert "ThrottlingException" in caught.value.message
    assert len(server.fake.requests) == 3


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ValidationException", 400),
        ("AccessDeniedException", 403),
        ("ResourceNotFoundException", 404),
    ],
)
async def test_client_errors_are_permanent_at_once(
    server: FakeBedrockServer, code: str, status: int
) -> None:
    model = model_for(server, ApiError(code, "Malformed input request: nope"), "unused")

    with pytest.raises(PermanentModelError) as caught:
        await model.request(ask("hi"))

    assert type(caught.value) is PermanentModelError
    assert caught.value.details["status"] == status and caught.value.details["code"] == code
    assert len(server.fake.requests) == 1


@pytest.mark.parametrize(
    "failure",
    [
        ApiError("ValidationException", "Input is too long for requested model."),
        StreamError("validationException", "prompt is too long: 210000 tokens > 200000 maximum"),
    ],
    ids=["http", "event"],
)
async def test_too_long_input_is_context_length_exceeded(
    server: FakeBedrockServer, failure: ScriptItem
) -> None:
    model = model_for(server, failure, "unused")

    with pytest.raises(ContextLengthExceeded) as caught:
        await model.request(ask("hi"))

    assert caught.value.details["status"] == 400
    assert len(server.fake.requests) == 1


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (StreamError("modelStreamErrorException", partial=["half an answer"]), 424),
        (StreamError("throttlingException", partial=["half an answer"]), 429),
        (Disconnect(partial=["half an answer"]), None),
    ],
    ids=["model-stream-error", "throttling", "dropped"],
)
async def test_failure_after_a_delta_is_transient_and_not_retried(
    server: FakeBedrockServer, failure: ScriptItem, status: int | None
) -> None:
    seen: list[ModelEvent] = []

    with pytest.raises(TransientModelError) as caught:
        async for event in model_for(server, failure, "unused").stream(ask("hi")):
            seen.append(event)

    assert caught.value.status == status
    assert seen and all(isinstance(e, TextDelta) for e in seen)
    assert len(server.fake.requests) == 1 and server.fake.remaining == 1


async def test_refuses_before_any_request_when_requests_are_off(server: FakeBedrockServer) -> None:
    model = model_for(server, "unused")

    with allow_model_requests(False), pytest.raises(ModelRequestsForbidden):
        await model.request(ask("hi"))

    assert server.fake.requests == []
    assert model._client is None  # refused before a client was built


async def test_model_string_resolves_lazily_and_honours_region_and_endpoint_env(
    server: FakeBedrockServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.fake.add("Hello over the environment.")
    model = resolve_model("bedrock/us.amazon.nova-lite-v1:0")
    assert isinstance(model, BedrockModel)
    assert (model.name, model._client) == ("bedrock/us.amazon.nova-lite-v1:0", None)
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", server.endpoint_url)
    monkeypatch.setenv("AGENT_RUNTIME_BEDROCK_REGION", "eu-central-1")

    response = await model.request(ask("hi"))

    assert response.message.text == "Hello over the environment."
    sent = server.fake.requests[0]
    assert (sent.model_id, sent.region) == ("us.amazon.nova-lite-v1:0", "eu-central-1")


async def test_no_region_is_a_permanent_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))

    with pytest.raises(PermanentModelError, match="region"):
        await BedrockModel(MODEL_ID).request(ask("hi"))


async def test_deltas_reach_the_caller_while_the_stream_is_still_coming() -> None:
    fake = FakeBedrock(["one two three four five six"])
    with FakeBedrockServer(fake, event_delay=0.03) as slow:
        model = BedrockModel(MODEL_ID, endpoint_url=slow.endpoint_url)
        arrivals = [(time.monotonic(), event) async for event in model.stream(ask("hi"))]

    first_delta = next(t for t, e in arrivals if isinstance(e, TextDelta))
    # Six more events (five deltas, block stop, message stop, metadata) were still on their way.
    assert arrivals[-1][0] - first_delta >= 5 * 0.03
