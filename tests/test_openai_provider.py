"""The ``openai/...`` provider through its real HTTP client (httpx2), against the local fake
of the Chat Completions API served on a loopback socket."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import boto3
import httpx2
import pytest
from moto import mock_aws

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
from agent_runtime.models.keys import read_secret
from agent_runtime.models.openai import (
    OpenAIModel,
    resolve_api_key,
    to_openai_messages,
    tool_choice,
)
from agent_runtime.models.openai_stream import StreamedTurn, retry_after, sse_data
from agent_runtime.testing.fake_openai import (
    ApiError,
    Disconnect,
    FakeOpenAI,
    FakeOpenAIServer,
    Reply,
    StreamError,
    ToolCall,
    Truncated,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR pixels" * 20
JPEG = b"\xff\xd8\xff\xe0" + b"JPEG-BODY " * 30
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n"


class Sleeps(list[float]):
    """An injected `sleep` that records how long the model asked to wait, and returns."""

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "AGENT_RUNTIME_MODEL_SECRET_ARN"):
        monkeypatch.delenv(name, raising=False)
    read_secret.cache_clear()
    # The suite turns real model requests off; these tests only reach the local fake.
    with allow_model_requests(True):
        yield
    read_secret.cache_clear()


@pytest.fixture
def fake(server: FakeOpenAIServer) -> FakeOpenAI:
    server.fake = FakeOpenAI(api_key="sk-test")
    return server.fake


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def make(
    server: FakeOpenAIServer, sleeps: Sleeps
) -> AsyncIterator[Callable[..., OpenAIModel]]:
    made: list[OpenAIModel] = []

    def model(**options: Any) -> OpenAIModel:
        options = {"base_url": server.base_url, "api_key": "sk-test", "sleep": sleeps} | options
        made.append(OpenAIModel("gpt-4.1-mini", backoff=0.001, **options))
        return made[-1]

    yield model
    for each in made:
        await each.aclose()


def ask(text: str, **fields: Any) -> ModelRequest:
    return ModelRequest(messages=[Message.user(text)], **fields)


async def collect(model: OpenAIModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


def final(events: list[ModelEvent]) -> ModelResponse:
    """The one `ResponseDone`, which must close the stream."""
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert len(done) == 1 and events[-1] is done[0]
    return done[0].response


def attach(path: str, media_type: str, data: bytes) -> FilePart:
    digest = hashlib.sha256(data).hexdigest()
    return FilePart(path=path, media_type=media_type, size=len(data), sha256=digest)


def data_url(media_type: str, data: bytes) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


async def test_text_streams_deltas_from_a_chat_completions_request(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add("The quick brown fox jumps over the lazy dog.")
    request = ask(
        "Say something.", system="Be brief.", settings=ModelSettings(max_tokens=256, temperature=0.2)
    )

    events = await collect(make(), request)

    deltas = [e for e in events if isinstance(e, TextDelta)]
    response = final(events)
    assert len(deltas) > 1
    assert "".join(d.text for d in deltas) == response.message.text
    assert response.message.text == "The quick brown fox jumps over the lazy dog."
    assert (response.stop_reason, response.model) == ("stop", "gpt-4.1-mini")
    sent = fake.requests[0]
    assert (sent.path, sent.headers["authorization"]) == ("/v1/chat/completions", "Bearer sk-test")
    assert sent.body == {
        "model": "gpt-4.1-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Say something."},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 256,
        "temperature": 0.2,
    }


def test_openai_itself_gets_max_completion_tokens_unless_told_otherwise() -> None:
    request = ask("hi", settings=ModelSettings(max_tokens=99))

    assert OpenAIModel("gpt-5").request_body(request)["max_completion_tokens"] == 99
    local = OpenAIModel("llama3", base_url="http://127.0.0.1:11434/v1")
    assert local.request_body(request)["max_tokens"] == 99
    told = OpenAIModel("llama3", base_url="http://x/v1", max_tokens_field="max_completion_tokens")
    assert "max_tokens" not in told.request_body(request)


async def test_tool_call_round_trip_sends_well_shaped_calls_and_results(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add(
        Reply(["Let me check.", ToolCall("get_weather", {"city": "Paris"}, id="call_1")]),
        "Sunny in Paris.",
    )
    model = make()
    first = ModelRequest(
        messages=[Message.user("Weather in Paris?")], tools=[WEATHER], tool_choice="required"
    )

    events = await collect(model, first)

    started = events.index(ToolCallStarted(id="call_1", name="get_weather"))
    assert all(isinstance(e, TextDelta) for e in events[:started])
    response = final(events)
    assert response.stop_reason == "tool_calls"
    assert response.message.parts == [
        TextPart(text="Let me check."),
        ToolCallPart(id="call_1", name="get_weather", arguments={"city": "Paris"}),
    ]
    assert fake.requests[0].body["tool_choice"] == "required"
    function = {"name": "get_weather", "description": "Weather for a city."}
    function["parameters"] = WEATHER.parameters
    assert fake.requests[0].body["tools"] == [{"type": "function", "function": function}]

    result = Message(
        role="user",
        parts=[ToolResultPart(call_id="call_1", name="get_weather", content="sunny, 21C")],
    )
    follow_up = first.model_copy(
        update={
            "messages": [*first.messages, response.message, result, Message.user("Thanks!")],
            "tool_choice": "none",
        }
    )
    answer = await model.request(follow_up)

    assert answer.message.text == "Sunny in Paris."
    body = fake.requests[1].body
    assert body["tool_choice"] == "none"
    call = {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": call}],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
        {"role": "user", "content": "Thanks!"},
    ]
    fake.assert_done()


def test_history_puts_tool_results_first_and_drops_what_cannot_be_sent() -> None:
    call = ToolCallPart(id="c1", name="get_weather", arguments={})
    history = [
        Message.user("a"),
        Message.user("b"),
        Message(role="assistant", parts=[ThinkingPart(thinking="hmm"), TextPart(text=""), call]),
        Message.user("while the tool ran"),
        Message(
            role="user",
            parts=[ToolResultPart(call_id="c1", name="get_weather", content="gone", status="interrupted")],
        ),
    ]

    assert to_openai_messages(history) == [
        {"role": "user", "content": "a\n\nb"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "Error: gone"},
        {"role": "user", "content": "while the tool ran"},
    ]
    assert tool_choice("get_weather") == {"type": "function", "function": {"name": "get_weather"}}


async def test_attached_image_is_sent_as_a_data_url_and_other_files_as_text(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add("A small picture.")
    files = [
        attach("cat.png", "image/png", PNG),
        attach("photo.png", "image/png", JPEG),  # its bytes say JPEG: sent as what it is
        attach("notes.csv", "text/csv", b"a,b\n1,2\n"),
        attach("report.pdf", "application/pdf", PDF),
        attach("archive.zip", "application/zip", b"PK\x03\x04"),
    ]
    request = ModelRequest(
        messages=[Message.user("What is in it?", files=files)],
        files={"cat.png": PNG, "photo.png": JPEG, "notes.csv": b"a,b\n1,2\n", "report.pdf": PDF},
    )

    response = await make().request(request)

    assert response.message.text == "A small picture."
    content = fake.requests[0].body["messages"][0]["content"]
    assert content[:3] == [
        {"type": "text", "text": "What is in it?"},
        {"type": "image_url", "image_url": {"url": data_url("image/png", PNG)}},
        {"type": "image_url", "image_url": {"url": data_url("image/jpeg", JPEG)}},
    ]
    csv = "[file notes.csv (text/csv, 8 B)]\na,b\n1,2\n\n[end of file notes.csv]"
    assert content[3] == {"type": "text", "text": csv}
    assert content[4]["text"] == (
        f"[file report.pdf (application/pdf, {len(PDF)} B) attached; not shown to the model: "
        "PDFs are not sent to this model's server]"
    )
    assert content[5]["text"].endswith("not shown to the model: its content could not be read for this request]")


async def test_pdf_is_a_file_part_when_the_server_takes_them(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add("A report.")
    request = ModelRequest(
        messages=[Message.user("Summarise.", files=[attach("r.pdf", "application/pdf", PDF)])],
        files={"r.pdf": PDF},
    )

    await make(pdf_files=True).request(request)

    assert fake.requests[0].body["messages"][0]["content"][1] == {
        "type": "file",
        "file": {"filename": "r.pdf", "file_data": data_url("application/pdf", PDF)},
    }


async def test_usage_separates_cached_prompt_tokens(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add(Reply(["cached"], prompt_tokens=120, completion_tokens=7, cached_tokens=100))

    response = await make().request(ask("hi"))

    assert response.usage == Usage(input_tokens=20, output_tokens=7, cache_read_tokens=100, requests=1)


async def test_reasoning_streams_as_thinking_and_is_not_sent_back(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add(Reply(["42"], reasoning="Six times seven."), "ok")
    model = make()

    events = await collect(model, ask("Answer?"))

    assert [e.thinking for e in events if isinstance(e, ThinkingDelta)] == ["Six ", "times ", "seven."]
    response = final(events)
    assert response.message.parts == [ThinkingPart(thinking="Six times seven."), TextPart(text="42")]
    await model.request(ask("Answer?").model_copy(update={"messages": [Message.user("Answer?"), response.message]}))
    assert fake.requests[1].body["messages"][1] == {"role": "assistant", "content": "42"}


@pytest.mark.parametrize(
    ("error", "waited"),
    [(ApiError(429, retry_after=2), 2.0), (ApiError(429, retry_after_ms=1500, retry_after=9), 1.5)],
)
async def test_rate_limit_is_retried_after_the_time_the_server_asks(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel], sleeps: Sleeps, error: ApiError, waited: float
) -> None:
    fake.add(error, "ok")

    response = await make().request(ask("hi"))

    assert response.message.text == "ok"
    assert sleeps == [waited]  # the backoff alone would be about a millisecond
    assert len(fake.requests) == 2


@pytest.mark.parametrize(
    "failure", [ApiError(529), ApiError(503), ApiError(500), StreamError(), Disconnect()]
)
async def test_transient_failure_before_any_delta_is_retried(
    fake: FakeOpenAI,
    make: Callable[..., OpenAIModel],
    sleeps: Sleeps,
    failure: ApiError | StreamError | Disconnect,
) -> None:
    fake.add(failure, "recovered")

    events = await collect(make(), ask("hi"))

    assert final(events).message.text == "recovered"
    assert len(fake.requests) == 2 and len(sleeps) == 1


async def test_attempts_exhausted_raise_the_transient_error(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel], sleeps: Sleeps
) -> None:
    fake.add(*[ApiError(503)] * 3)

    with pytest.raises(TransientModelError) as caught:
        await make(max_attempts=3).request(ask("hi"))

    assert caught.value.status == 503
    assert len(fake.requests) == 3 and len(sleeps) == 2


async def test_a_long_retry_after_is_left_to_the_worker(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel], sleeps: Sleeps
) -> None:
    fake.add(ApiError(429, retry_after=120), "unused")

    with pytest.raises(TransientModelError) as caught:
        await make().request(ask("hi"))

    assert (caught.value.status, caught.value.retry_after) == (429, 120.0)
    assert len(fake.requests) == 1 and sleeps == []


@pytest.mark.parametrize(
    "error",
    [
        *(ApiError(status) for status in (400, 401, 403, 404, 422)),
        ApiError(429, "You exceeded your current quota.", code="insufficient_quota"),
    ],
)
async def test_client_errors_are_permanent_at_once(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel], sleeps: Sleeps, error: ApiError
) -> None:
    fake.add(error, "unused")

    with pytest.raises(PermanentModelError) as caught:
        await make().request(ask("hi"))

    assert not isinstance(caught.value, ContextLengthExceeded)
    assert caught.value.details["status"] == error.status
    assert caught.value.details["request_id"] == "req_fake_000001"
    assert len(fake.requests) == 1 and sleeps == []


TOO_LONG = "This model's maximum context length is 4096 tokens. However, you requested 5000."


@pytest.mark.parametrize(
    "error",  # OpenAI's code, or only the words and the status as vLLM sends them
    [ApiError(400, TOO_LONG, code="context_length_exceeded"), ApiError(400, TOO_LONG, code=400)],
)
async def test_context_length_exceeded(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel], error: ApiError
) -> None:
    fake.add(error, "unused")

    with pytest.raises(ContextLengthExceeded):
        await make().request(ask("a very long prompt"))

    assert len(fake.requests) == 1


@pytest.mark.parametrize("failure", [StreamError(partial=["half an answer"]), Truncated(["half an answer"])])
async def test_failure_after_a_delta_is_not_retried(
    fake: FakeOpenAI,
    make: Callable[..., OpenAIModel],
    sleeps: Sleeps,
    failure: StreamError | Truncated,
) -> None:
    fake.add(failure, "unused")
    seen: list[ModelEvent] = []

    with pytest.raises(TransientModelError):
        async for event in make().stream(ask("hi")):
            seen.append(event)

    assert "".join(e.text for e in seen if isinstance(e, TextDelta)) == "half an answer"
    assert all(isinstance(e, TextDelta) for e in seen)
    assert len(fake.requests) == 1 and fake.remaining == 1 and sleeps == []


async def test_refuses_before_any_request_when_requests_are_off(
    fake: FakeOpenAI, make: Callable[..., OpenAIModel]
) -> None:
    fake.add("unused")
    model = make()

    with allow_model_requests(False), pytest.raises(ModelRequestsForbidden):
        await model.request(ask("hi"))

    assert fake.requests == [] and not model._http.built


async def test_model_string_resolves_lazily_and_reads_the_environment(
    fake: FakeOpenAI, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = resolve_model("openai/gpt-4.1-mini")
    assert isinstance(model, OpenAIModel) and model.name == "openai/gpt-4.1-mini"
    assert not model._http.built
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url + "/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake.add("Hello over a real socket.")

    try:
        response = await model.request(ask("hi"))
    finally:
        await model.aclose()

    assert response.message.text == "Hello over a real socket."
    assert fake.requests[0].api_key == "sk-test"


def test_api_key_comes_from_the_environment_or_the_stacks_secret(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert resolve_api_key() is None
    with mock_aws():
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        both = {"ANTHROPIC_API_KEY": "sk-ant", "OPENAI_API_KEY": "sk-from-sm"}
        arn = secrets.create_secret(Name="models", SecretString=json.dumps(both))["ARN"]
        monkeypatch.setenv("AGENT_RUNTIME_MODEL_SECRET_ARN", arn)
        assert resolve_api_key() == "sk-from-sm"
        secrets.delete_secret(SecretId=arn, ForceDeleteWithoutRecovery=True)
        assert resolve_api_key() == "sk-from-sm"  # read once per process

        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/agents/openai", Value="sk-from-ssm", Type="SecureString")
        monkeypatch.setenv("AGENT_RUNTIME_MODEL_SECRET_ARN", "ssm:/agents/openai")
        assert resolve_api_key() == "sk-from-ssm"

        monkeypatch.setenv("OPENAI_API_KEY", "sk-env-wins")
        assert resolve_api_key() == "sk-env-wins"


async def test_server_sent_events_are_read_as_the_spec_says() -> None:
    async def lines() -> AsyncIterator[str]:
        for line in [": keep-alive", "", "event: message", 'data: {"a":', "data: 1}", "", "id: 7",
                     "data:{}", "", "data: [DONE]", "", "data: after"]:  # fmt: skip
            yield line

    assert [data async for data in sse_data(lines())] == ['{"a":\n1}', "{}"]


def test_tool_calls_without_an_id_or_with_broken_arguments_still_make_a_response() -> None:
    turn = StreamedTurn()
    without_id = {"index": 0, "function": {"name": "f", "arguments": "{oops"}}
    chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [without_id]}}]}
    assert turn.feed(json.dumps(chunk)) == []
    turn.feed(json.dumps({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}))

    [started] = turn.close()
    [call] = turn.response().message.parts

    assert isinstance(started, ToolCallStarted) and isinstance(call, ToolCallPart)
    assert started.id == call.id and call.id.startswith("call_")
    assert call.arguments == {"invalid_json_arguments": "{oops"}


def test_retry_after_reads_milliseconds_seconds_and_dates() -> None:
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)

    assert retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after({"retry-after": "3"}) == 3.0
    assert 28 < (retry_after({"retry-after": later}) or 0) <= 30
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


def test_fake_refuses_what_the_api_refuses(server: FakeOpenAIServer) -> None:
    server.fake = FakeOpenAI(default="hi")
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    not_a_png = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    bodies = {
        "unanswered tool call": [
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "user", "content": "?"},
        ],
        "orphan tool message": [{"role": "tool", "tool_call_id": "c9", "content": "x"}],
        "bad image": [{"role": "user", "content": [not_a_png]}],
    }
    with httpx2.Client(base_url=server.base_url) as http:
        refused = {
            name: http.post("/chat/completions", json={"model": "m", "messages": messages})
            for name, messages in bodies.items()
        }
        ok = http.post("/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]})

    assert {name: answer.status_code for name, answer in refused.items()} == dict.fromkeys(bodies, 400)
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"] == "hi"


def test_resolving_an_openai_model_loads_no_http_client() -> None:
    """The worker pays for httpx2 on its first request, not when agents are discovered."""
    probe = (
        "import sys; from agent_runtime.models import resolve_model; "
        "resolve_model('openai/gpt-4.1-mini'); print('httpx2' in sys.modules, 'httpx' in sys.modules)"
    )
    root = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == ["False", "False"]
