"""The model interface: one small protocol with streaming, and a registry by prefix.

A model is addressed by a ``"provider/model"`` string; only that string is ever
persisted. Providers register a factory for their prefix. Real providers call
`check_model_requests_allowed()` before any network request, so a test suite that
turns requests off (`ALLOW_MODEL_REQUESTS = False`) cannot reach a paid API by accident.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.errors import DefinitionError, ModelRequestsForbidden
from agent_runtime.messages import Message, Usage

log = logging.getLogger("agent_runtime")

ToolChoice = Literal["auto", "none", "required"]

#: Off in tests: real providers refuse to make requests. `test/...` models ignore it.
ALLOW_MODEL_REQUESTS = True


def check_model_requests_allowed(model: str) -> None:
    if not ALLOW_MODEL_REQUESTS:
        raise ModelRequestsForbidden(
            f"model requests are turned off (agent_runtime.models.ALLOW_MODEL_REQUESTS); "
            f"refusing to call {model!r}"
        )


@contextmanager
def allow_model_requests(allow: bool = True) -> Iterator[None]:
    """Set `ALLOW_MODEL_REQUESTS` for a block, e.g. to call a local fake of an API."""
    global ALLOW_MODEL_REQUESTS
    previous = ALLOW_MODEL_REQUESTS
    ALLOW_MODEL_REQUESTS = allow
    try:
        yield
    finally:
        ALLOW_MODEL_REQUESTS = previous


class ToolSpec(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    name: str
    description: str
    parameters: dict[str, Any]


class ModelSettings(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    max_tokens: int = 4096
    temperature: float | None = None


class ModelRequest(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    system: str | None = None
    messages: list[Message]
    # A plain default, copied per instance by pydantic: `default_factory=list` has pydantic
    # read `list`'s signature, which costs a cold start about 10 ms (tokenize's regex).
    tools: list[ToolSpec] = []
    tool_choice: ToolChoice = "auto"
    settings: ModelSettings = Field(default_factory=ModelSettings)
    #: The bytes of the files the messages' `FilePart`s name, read for this request only
    #: (by path; a file that is gone or too big is absent). Never serialised or logged.
    files: dict[str, bytes] = Field(default={}, exclude=True, repr=False)


class ModelResponse(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True)

    message: Message
    usage: Usage = Field(default_factory=Usage)
    stop_reason: str | None = None
    model: str | None = None


class TextDelta(BaseModel):
    model_config = ConfigDict(defer_build=True)
    type: Literal["text_delta"] = "text_delta"
    text: str


class ThinkingDelta(BaseModel):
    model_config = ConfigDict(defer_build=True)
    type: Literal["thinking_delta"] = "thinking_delta"
    thinking: str


class ToolCallStarted(BaseModel):
    """The model began a tool call (its arguments are still streaming)."""
    model_config = ConfigDict(defer_build=True)

    type: Literal["tool_call_started"] = "tool_call_started"
    id: str
    name: str


class ResponseDone(BaseModel):
    model_config = ConfigDict(defer_build=True)
    type: Literal["response_done"] = "response_done"
    response: ModelResponse


ModelEvent = Annotated[
    TextDelta | ThinkingDelta | ToolCallStarted | ResponseDone, Field(discriminator="type")
]


class Model(ABC):
    """A language model. Implement `stream`; `request` is derived from it."""

    #: The persisted ``"provider/model"`` string.
    name: str

    @abstractmethod
    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Yield deltas as they arrive, then exactly one `ResponseDone`."""

    def served_by(self, response: ModelResponse) -> str:
        """The ``provider/model`` that produced `response` (a named model says which entry)."""
        return self.name

    async def request(self, request: ModelRequest) -> ModelResponse:
        stream = self.stream(request)
        try:
            async for event in stream:
                if isinstance(event, ResponseDone):
                    return event.response
        finally:
            await close_stream(stream)
        raise RuntimeError(f"model {self.name} ended its stream without a response")


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a model's stream now that its reader is done with it (it stops at
    `ResponseDone`, or on an error), rather than whenever it is collected: then its
    connection goes back at once, and the event loop is not asked (from the garbage
    collector, through its self-pipe) to finish it later. A failure to clean up after
    the reply was read is logged, not raised: the reply stands, as it did when the
    collector closed the stream."""
    close = getattr(stream, "aclose", None)
    if close is None:
        return
    try:
        await close()
    except Exception:
        log.warning("closing a model stream failed", exc_info=True)


ModelFactory = Callable[[str], Model]
_PROVIDERS: dict[str, ModelFactory] = {}
_MODEL_STRING = re.compile(r"^([a-z0-9][a-z0-9-]*)/([A-Za-z0-9._:@/-]+)$")


def register_provider(prefix: str, factory: ModelFactory) -> None:
    """Make ``"{prefix}/..."`` model strings resolve through `factory(model_name)`."""
    _PROVIDERS[prefix] = factory


def parse_model_string(spec: str, *, field: str = "model") -> tuple[str, str]:
    match = _MODEL_STRING.match(spec) if isinstance(spec, str) else None
    if not match:
        raise DefinitionError(field, f"expected 'provider/model', got {spec!r}")
    provider, name = match.groups()
    _load_builtin_providers()
    if provider not in _PROVIDERS:
        known = ", ".join(sorted(_PROVIDERS))
        raise DefinitionError(field, f"unknown model provider {provider!r} in {spec!r} (known: {known})")
    return provider, name


def resolve_model(spec: str | Model, *, field: str = "model") -> Model:
    if isinstance(spec, Model):
        return spec
    provider, name = parse_model_string(spec, field=field)
    return _PROVIDERS[provider](name)


_BUILTINS_LOADED = False


def _load_builtin_providers() -> None:
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    # Imported lazily: a provider loads its HTTP client only when its model is called.
    from agent_runtime.models import test as _test

    # A provider the application registered first under the same prefix wins.
    _PROVIDERS.setdefault("test", _test.resolve_test_model)
    _PROVIDERS.setdefault("anthropic", _anthropic_factory)
    _PROVIDERS.setdefault("bedrock", _bedrock_factory)
    _PROVIDERS.setdefault("openai", _openai_factory)


def _anthropic_factory(name: str) -> Model:
    from agent_runtime.models.anthropic import AnthropicModel

    return AnthropicModel(name)


def _bedrock_factory(name: str) -> Model:
    from agent_runtime.models.bedrock import BedrockModel

    return BedrockModel(name)


def _openai_factory(name: str) -> Model:
    from agent_runtime.models.openai import OpenAIModel

    return OpenAIModel(name)
