"""``agent_runtime.models.ALLOW_MODEL_REQUESTS``, the spelling the README gives, is the
switch: assigning it turns real providers off or on, and reading it (or
``agent_runtime.models.base.ALLOW_MODEL_REQUESTS``) gives the live value."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import httpx2
import pytest

import agent_runtime.models
from agent_runtime.errors import ModelRequestsForbidden
from agent_runtime.messages import Message
from agent_runtime.models import ModelRequest, allow_model_requests, base, resolve_model
from agent_runtime.models.anthropic import AnthropicModel
from agent_runtime.testing.fake_anthropic import FakeAnthropic


@pytest.fixture(autouse=True)
def _restore_flag() -> Iterator[None]:
    previous = base.ALLOW_MODEL_REQUESTS
    yield
    agent_runtime.models.ALLOW_MODEL_REQUESTS = previous
    assert base.ALLOW_MODEL_REQUESTS is previous


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"a test tried to reach the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def hello() -> ModelRequest:
    return ModelRequest(messages=[Message.user("hello")])


async def test_assigning_false_forbids_a_real_provider_without_any_network(
    no_network: None,
) -> None:
    # Start allowed, so only the assignment below can be what forbids the request.
    base.ALLOW_MODEL_REQUESTS = True

    agent_runtime.models.ALLOW_MODEL_REQUESTS = False

    assert base.ALLOW_MODEL_REQUESTS is False
    model = resolve_model("anthropic/claude-haiku-4-5")
    assert isinstance(model, AnthropicModel)
    with pytest.raises(ModelRequestsForbidden):
        await model.request(hello())
    assert not model._http.built  # refused before any client was built


async def test_assigning_true_allows_requests(no_network: None) -> None:
    base.ALLOW_MODEL_REQUESTS = False

    agent_runtime.models.ALLOW_MODEL_REQUESTS = True

    assert base.ALLOW_MODEL_REQUESTS is True
    # A provider model whose HTTP goes to an in-process fake of the API.
    fake = FakeAnthropic(["Hi."])
    model = AnthropicModel(
        "claude-haiku-4-5",
        api_key="sk-test",
        base_url="http://anthropic.fake",
        http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(fake.handler)),
    )
    response = await model.request(hello())
    assert response.message.text == "Hi."
    assert len(fake.requests) == 1


def test_reading_gives_the_live_value_whichever_spelling_wrote_it() -> None:
    base.ALLOW_MODEL_REQUESTS = True
    assert agent_runtime.models.ALLOW_MODEL_REQUESTS is True

    base.ALLOW_MODEL_REQUESTS = False
    assert agent_runtime.models.ALLOW_MODEL_REQUESTS is False

    with allow_model_requests(True):
        assert agent_runtime.models.ALLOW_MODEL_REQUESTS is True
        agent_runtime.models.ALLOW_MODEL_REQUESTS = False
        assert base.ALLOW_MODEL_REQUESTS is False
    # The context manager restores the value it found, through the one flag.
    assert agent_runtime.models.ALLOW_MODEL_REQUESTS is False
    assert "ALLOW_MODEL_REQUESTS" not in vars(agent_runtime.models)
