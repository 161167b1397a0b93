"""The ``anthropic/...`` provider over HTTP, against the local fake of the API."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from collections.abc import Iterator

import boto3
import httpx2
import pytest
from moto import mock_aws

from agent_runtime.errors import (
    ContextLengthExceeded,
    ModelError,
    ModelRequestsForbidden,
    TransientModelError,
)
from agent_runtime.messages import (
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
from agent_runtime.models.anthropic import (
    AnthropicModel,
    resolve_api_key,
    to_anthropic_messages,
)
from agent_runtime.models.keys import read_secret
from agent_runtime.testing.fake_anthropic import (
    ApiError,
    Disconnect,
    FakeAnthropic,
    FakeAnthropicServer,
    Reply,
    StreamError,
    Thinking,
    ToolUse,
)

WEATHER = ToolSpec(
    name="get_weather",
    description="Weather for a city.",
    parameters={"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_AUTH_TOKEN",
        "ANTHROPIC_BASE_URL",
        "AGENT_RUNTIME_MODEL_SECRET_ARN",
    ):
        monkeypatch.delenv(name, raising=False)
    read_secret.cache_clear()
    # The suite turns real model requests off; these tests only reach the local fake.
    with allow_model_requests(True):
        yield
    read_secret.cache_clear()


def model_for(fake: FakeAnthropic, *, max_attempts: int = 4) -> AnthropicModel:
    http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(fake.handler))
    return AnthropicModel(
        "claude-haiku-4-5",
        api_key="sk-test",
        base_url="http://anthropic.fake",
        http_client=http_client,
        max_attempts=max_attempts,
        backoff=0.001,
    )


def ask(
    text: str, *, system: str | None = None, settings: ModelSettings | None = None
) -> ModelRequest:
    return ModelRequest(
        system=system, messages=[Message.user(text)], settings=settings or ModelSettings()
    )


async def collect(model: AnthropicModel, request: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(request)]


def final(events: list[ModelEvent]) -> ModelResponse:
    """The one `ResponseDone`, which must close the stream."""
    done = [e for e in events if isinstance(e, ResponseDone)]
    assert len(done) == 1 and events[-1] is done[0]
    return done[0].response


async def test_text_streams_deltas_that_concatenate_to_the_final_text() -> None:
    fake = FakeAnthropic(["The quick brown fox jumps over the lazy dog."])
    request = ask(
        "Say something.",
        system="Be brief.",
        settings=ModelSettings(max_tokens=256, temperature=0.2),
    )

    events = await collect(model_for(fake), request)

    deltas = [e for e in events if isinstance(e, TextDelta)]
    response = final(events)
    assert len(deltas) > 1
    assert (
        "".join(d.text for d in deltas)
        == response.message.text
        == "The quick brown fox jumps over the lazy dog."
    )
    assert (response.stop_reason, response.model) == ("end_turn", "claude-haiku-4-5")
    sent = fake.requests[0]
    assert sent.headers["x-api-key"] == "sk-test"
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert sent.body == {
        "model": "claude-haiku-4-5",
        "max_tokens": 256,
        "system": "Be brief.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say something."}]}],
        "temperature": 0.2,
        "stream": True,
    }


async def test_tool_use_round_trip_sends_results_back_well_shaped() -> None:
    fake = FakeAnthropic(
        [
            Reply(
                [
                    Thinking("Need the weather.", signature="sig-1"),
                    "Let me check.",
                    ToolUse("get_weather", {"city": "Paris"}, id="toolu_1"),
                ]
            ),
            "Sunny in Paris.",
        ]
    )
    model = model_for(fake)
    first = ModelRequest(
        messages=[Message.user("Weather in Paris?")], tools=[WEATHER], tool_choice="required"
    )

    events = await collect(model, first)

    assert ToolCallStarted(id="toolu_1", name="get_weather") in events
    assert any(isinstance(e, ThinkingDelta) for e in events)
    response = final(events)
    assert response.stop_reason == "tool_use"
    assert response.message.parts == [
        ThinkingPart(thinking="Need the weather.", signature="sig-1"),
        TextPart(text="Let me check."),
        ToolCallPart(id="toolu_1", name="get_weather", arguments={"city": "Paris"}),
    ]
    assert fake.requests[0].body["tool_choice"] == {"type": "any"}
    assert fake.requests[0].body["tools"] == [
        {
            "name": "get_weather",
            "description": "Weather for a city.",
            "input_schema": WEATHER.parameters,
        }
    ]

    result = Message(
        role="user",
        parts=[ToolResultPart(call_id="toolu_1", name="get_weather", content="sunny, 21C")],
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
    assert body["tool_choice"] == {"type": "none"}
    assert body["messages"][1:] == [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Need the weather.", "signature": "sig-1"},
                {"type": "text", "text": "Let me check."},
                {
                    "type": "tool_use",
                    "id": "toolu_1",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",  # the result and the next user message, merged into one turn
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "sunny, 21C",
                    "is_error": False,
                },
                {"type": "text", "text": "Thanks!"},
            ],
        },
    ]
    fake.assert_done()


def test_history_translation_merges_turns_and_drops_what_the_api_refuses() -> None:
    call = ToolCallPart(id="c1", name="get_weather", arguments={})
    history = [
        Message.user("a"),
        Message.user("b"),
        Message(
            role="assistant", parts=[ThinkingPart(thinking="unsigned"), TextPart(text=""), call]
        ),
        Message.user("while the tool ran"),
        Message(
            role="user",
            parts=[
                ToolResultPart(call_id="c1", name="get_weather", content="?", status="interrupted")
            ],
        ),
    ]

    assert to_anthropic_messages(history) == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "c1", "name": "get_weather", "input": {}}],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "c1", "content": "?", "is_error": True},
                {"type": "text", "text": "while the tool ran"},
            ],
        },
    ]


async def test_usage_includes_cache_tokens() -> None:
    fake = FakeAnthropic(
        [
            Reply(
                ["cached"],
                input_tokens=12,
                output_tokens=7,
                cache_read_input_tokens=100,
                cache_creation_input_tokens=30,
            )
        ]
    )

    response = await model_for(fake).request(ask("hi"))

    assert response.usage == Usage(
        input_tokens=12, output_tokens=7, cache_read_tokens=100, cache_write_tokens=30, requests=1
    )


@pytest.mark.parametrize(
    "failure", [ApiError(529), StreamError("overloaded_error"), ApiError(500), Disconnect()]
)
async def test_transient_failure_before_any_delta_is_retried(
    failure: ApiError | StreamError | Disconnect,
) -> None:
    fake = FakeAnthropic([failure, "recovered"])

    events = await collect(model_for(fake), ask("hi"))

    assert final(events).message.text == "recovered"
    assert len(fake.requests) == 2


async def test_rate_limit_waits_for_retry_after() -> None:
    fake = FakeAnthropic([ApiError(429, retry_after=0.2), "ok"])

    started = time.monotonic()
    response = await model_for(fake).request(ask("hi"))

    assert response.message.text == "ok"
    assert time.monotonic() - started >= 0.2  # backoff alone is about a millisecond
    assert len(fake.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_become_model_errors_without_retry(status: int) -> None:
    fake = FakeAnthropic([ApiError(status, message="nope"), "unused"])

    with pytest.raises(ModelError) as caught:
        await model_for(fake).request(ask("hi"))

    assert not isinstance(caught.value, TransientModelError)
    assert caught.value.details["status"] == status
    assert len(fake.requests) == 1


async def test_attempts_exhausted_raise_transient_error() -> None:
    fake = FakeAnthropic([ApiError(529)] * 3)

    with pytest.raises(TransientModelError) as caught:
        await model_for(fake, max_attempts=3).request(ask("hi"))

    assert caught.value.status == 529
    assert len(fake.requests) == 3


async def test_failure_after_a_delta_is_not_retried() -> None:
    fake = FakeAnthropic([StreamError("overloaded_error", partial=["half an answer"]), "unused"])
    seen: list[ModelEvent] = []

    with pytest.raises(TransientModelError) as caught:
        async for event in model_for(fake).stream(ask("hi")):
            seen.append(event)

    assert caught.value.status == 529
    assert seen and all(isinstance(e, TextDelta) for e in seen)
    assert len(fake.requests) == 1 and fake.remaining == 1


async def test_refuses_before_any_request_when_requests_are_off() -> None:
    fake = FakeAnthropic(["unused"])
    model = model_for(fake)

    with allow_model_requests(False), pytest.raises(ModelRequestsForbidden):
        await model.request(ask("hi"))

    assert fake.requests == []


def test_model_string_resolves_without_building_a_client() -> None:
    model = resolve_model("anthropic/claude-haiku-4-5")

    assert isinstance(model, AnthropicModel)
    assert model.name == "anthropic/claude-haiku-4-5"
    assert not model._http.built


async def test_real_socket_server_through_base_url_env(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeAnthropic(["Hello over a real socket."], api_key="sk-env")
    with FakeAnthropicServer(fake) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.base_url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
        model = resolve_model("anthropic/claude-haiku-4-5")
        assert isinstance(model, AnthropicModel)
        try:
            events = await collect(model, ask("hi"))
        finally:
            await model.aclose()

    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == final(events).message.text == "Hello over a real socket."
    assert fake.requests[0].api_key == "sk-env"


def test_fake_refuses_a_missing_key_and_accepts_either_header() -> None:
    fake = FakeAnthropic(default="hi")
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    with httpx2.Client(
        transport=httpx2.MockTransport(fake.handler), base_url="http://anthropic.fake"
    ) as http:
        missing = http.post("/v1/messages", json=body, headers={"anthropic-version": "2023-06-01"})
        by_x_api_key = http.post(
            "/v1/messages", json=body, headers={"anthropic-version": "2023-06-01", "x-api-key": "k"}
        )
        orphan = {
            **body,
            "messages": [
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "x"}]}
            ],
        }
        invalid = http.post(
            "/v1/messages",
            json=orphan,
            headers={"anthropic-version": "2023-06-01", "x-api-key": "k"},
        )

    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "authentication_error"
    assert by_x_api_key.status_code == 200 and by_x_api_key.json()["content"] == [
        {"type": "text", "text": "hi"}
    ]
    assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"


def test_api_key_is_read_once_from_ssm_or_secrets_manager(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        ssm = boto3.client("ssm", region_name="us-east-1")
        ssm.put_parameter(Name="/agents/anthropic", Value="sk-from-ssm", Type="SecureString")
        monkeypatch.setenv("AGENT_RUNTIME_MODEL_SECRET_ARN", "ssm:/agents/anthropic")
        assert resolve_api_key() == "sk-from-ssm"
        ssm.delete_parameter(Name="/agents/anthropic")
        assert resolve_api_key() == "sk-from-ssm"  # cached: not read again

        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        arn = secrets.create_secret(
            Name="anthropic", SecretString=json.dumps({"ANTHROPIC_API_KEY": "sk-from-sm"})
        )["ARN"]
        monkeypatch.setenv("AGENT_RUNTIME_MODEL_SECRET_ARN", arn)
        assert resolve_api_key() == "sk-from-sm"

        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env-wins")
        assert resolve_api_key() == "sk-env-wins"


def test_the_client_loads_on_the_first_request_and_the_sdk_never() -> None:
    """Importing the provider (every handler does, through the agents) loads no HTTP
    client; the first request loads httpx2 alone, not the ``anthropic`` SDK."""
    probe = """
import asyncio, sys
from agent_runtime.messages import Message
from agent_runtime.models import ModelRequest, allow_model_requests
from agent_runtime.models.anthropic import AnthropicModel
before = "httpx2" in sys.modules
model = AnthropicModel("claude-haiku-4-5", api_key="sk-test", base_url=sys.argv[1])
with allow_model_requests(True):
    response = asyncio.run(model.request(ModelRequest(messages=[Message.user("hi")])))
print(before, "httpx2" in sys.modules, "anthropic" in sys.modules, response.message.text)
"""
    with FakeAnthropicServer(FakeAnthropic(["loaded"], api_key="sk-test")) as server:
        result = subprocess.run(
            [sys.executable, "-c", probe, server.base_url], capture_output=True, text=True, check=False
        )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "False", "loaded"]


async def test_a_prompt_too_long_is_a_context_length_error() -> None:
    fake = FakeAnthropic([ApiError(400, message="prompt is too long: 210000 tokens > 200000 maximum")])

    with pytest.raises(ContextLengthExceeded) as caught:
        await model_for(fake).request(ask("hi"))

    assert caught.value.details["status"] == 400
    assert caught.value.details["request_id"] == "req_fake_000001"


async def test_the_key_never_reaches_a_log(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeAnthropic([ApiError(401, message="invalid x-api-key")], api_key="sk-other")
    with FakeAnthropicServer(fake) as server:
        model = AnthropicModel("claude-haiku-4-5", api_key="sk-SECRET-KEY-123", base_url=server.base_url)
        try:
            with pytest.raises(ModelError) as caught:
                await model.request(ask("hi"))
        finally:
            await model.aclose()

    assert caught.value.details["status"] == 401
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "HTTP Request: POST" in logged  # the client logged the request, without the key
    assert "sk-SECRET-KEY-123" not in logged and "sk-SECRET-KEY-123" not in str(caught.value)


async def test_without_a_key_the_auth_token_is_sent_and_without_either_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeAnthropic(["by token"])
    model = model_for(fake)
    model._api_key = None
    with pytest.raises(ModelError, match="no API key"):
        await model.request(ask("hi"))
    assert fake.requests == []

    monkeypatch.setenv("ANTHROPIC_AUTH_TOKEN", "tok-1")
    assert (await model.request(ask("hi"))).message.text == "by token"
    assert fake.requests[0].headers["authorization"] == "Bearer tok-1"
    assert "x-api-key" not in fake.requests[0].headers
