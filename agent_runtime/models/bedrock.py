"""``bedrock/<model-id>``: any Converse model on Amazon Bedrock, streamed (``ConverseStream``).

``<model-id>`` is what Bedrock's ``modelId`` takes: a base model
(``anthropic.claude-3-5-haiku-20241022-v1:0``), an inference profile
(``us.amazon.nova-lite-v1:0``) or an ARN.

The ``bedrock-runtime`` client is built on first use, never at import, the AWS way:
credentials from boto3's chain; the region from the ``region`` argument, else
``AGENT_RUNTIME_BEDROCK_REGION``, else boto3's own (``AWS_DEFAULT_REGION``, the profile),
else ``AWS_REGION``; the endpoint from ``endpoint_url`` or boto3's
``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``. botocore makes one attempt per call: `BedrockModel.stream`
retries transient failures itself, because only it knows whether a delta has already
reached the caller (after that a retry would repeat text, so it raises
`TransientModelError` and leaves the decision to the run's durable retry).

boto3 is synchronous. Opening the stream and each read of the next event run in
`asyncio.to_thread`, rather than in a reader thread feeding a queue: nothing reads ahead of
the consumer, so a consumer that stops (or is cancelled) leaves no thread pulling a stream
nobody wants, and closing the stream is the one cleanup path; the cost, one hand-off to the
default executor per event, is tens of microseconds against a token's milliseconds.

Requests are built by `agent_runtime.models.bedrock_request` (messages, tools, attached
files as ``image`` and ``document`` blocks). Streamed events become our deltas:
``contentBlockStart`` of a ``toolUse`` a `ToolCallStarted`, text deltas `TextDelta`,
``reasoningContent`` deltas `ThinkingDelta` (with their signature kept for the next turn),
tool input accumulated until the block stops; ``messageStop`` gives the stop reason (as
Converse names it) and ``metadata`` the usage, cache reads and writes included.

Errors: ``ThrottlingException``, ``ServiceUnavailableException``,
``InternalServerException``, ``ModelNotReadyException``, ``ModelTimeoutException``,
``ModelStreamErrorException`` and ``ModelErrorException`` (a model failing mid-way) are
transient, as are connection failures and timeouts; a ``ValidationException`` about the
input's length is `ContextLengthExceeded`; other 4xx (``ValidationException``,
``AccessDeniedException``, ``ResourceNotFoundException``, ...) and a missing region or
credentials are `PermanentModelError`. Errors sent as events inside the stream
(``throttlingException``, ...) map the same way.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime.errors import (
    ContextLengthExceeded,
    DefinitionError,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agent_runtime.messages import Message, Part, TextPart, ThinkingPart, ToolCallPart, Usage
from agent_runtime.models.anthropic_stream import retry_after
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    ToolCallStarted,
    check_model_requests_allowed,
)
from agent_runtime.models.bedrock_request import converse_arguments, to_converse_messages
from agent_runtime.models.retrying import Retries

logger = logging.getLogger(__name__)

REGION_ENV = "AGENT_RUNTIME_BEDROCK_REGION"


# Error codes, with the HTTP status each has (as an event inside the stream it has none).
_TRANSIENT = {
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "InternalServerException": 500,
    "ModelNotReadyException": 429,
    "ModelTimeoutException": 408,
    "ModelStreamErrorException": 424,
    "ModelErrorException": 424,
}
_STATUS = _TRANSIENT | {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
}
#: How Bedrock's models word a prompt over their context window (lower-cased).
_TOO_LONG = (
    "too long",
    "input length and `max_tokens` exceed context limit",
    "too many total text bytes",
    "too many input tokens",
    "maximum context length",
)

Sleep = Callable[[float], Awaitable[None]]

__all__ = [
    "BedrockModel",
    "build_client",
    "client_config",
    "converse_arguments",
    "to_converse_messages",
    "to_model_error",
]


class BedrockModel(Model):
    """A Bedrock model; `model_id` is Converse's ``modelId``.

    `client` may be a ``bedrock-runtime`` client made elsewhere (it is used as it is: build
    it with `client_config()` so botocore does not retry too). `backoff` and `sleep` shape
    the waits between attempts (tests pass a tiny backoff, or a `sleep` that records)."""

    def __init__(
        self,
        model_id: str,
        *,
        client: Any = None,
        region: str | None = None,
        endpoint_url: str | None = None,
        read_timeout: float = 300.0,
        max_attempts: int = 3,
        backoff: float = 0.5,
        sleep: Sleep | None = None,
    ) -> None:
        if max_attempts < 1:
            raise DefinitionError("max_attempts", f"must be at least 1, got {max_attempts}")
        self.model_id = model_id
        self.name = f"bedrock/{model_id}"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._sleep = sleep or asyncio.sleep
        self._client = client
        self._region = region
        self._endpoint_url = endpoint_url
        self._read_timeout = read_timeout
        self._lock = threading.Lock()

    def _get_client(self) -> Any:
        # Called from worker threads: two first requests at once must not build two.
        with self._lock:
            if self._client is None:
                self._client = build_client(
                    region=self._region,
                    endpoint_url=self._endpoint_url,
                    read_timeout=self._read_timeout,
                )
            return self._client

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        check_model_requests_allowed(self.name)
        _redact_request_logs()
        arguments = converse_arguments(self.model_id, request)
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            events: Any = None
            try:
                events = await asyncio.to_thread(self._open, arguments)
                reply = _Reply()
                iterator = iter(events)
                while (event := await asyncio.to_thread(next, iterator, None)) is not None:
                    delta = reply.feed(event)
                    if delta is not None:
                        yielded = True
                        yield delta
                events = None  # read to the end: the connection went back to the pool
                response = reply.response(self.model_id)
            except Exception as err:
                error = _classify(err)
                if error is None:
                    raise
                wait = Retries(self.max_attempts, self.backoff).wait_after(attempt, error, yielded=yielded)
                if wait is None:
                    raise error from err
                await self._sleep(wait)
                continue
            finally:
                if events is not None:
                    _close(events)
            yield ResponseDone(response=response)
            return

    def _open(self, arguments: dict[str, Any]) -> Any:
        return self._get_client().converse_stream(**arguments)["stream"]



def client_config(*, read_timeout: float = 300.0) -> Any:
    """botocore's configuration for a ``bedrock-runtime`` client this provider drives: one
    attempt per call (retries are the provider's), and a read timeout long enough for a
    model that thinks before its first token."""
    from botocore.config import Config

    return Config(
        retries={"total_max_attempts": 1, "mode": "standard"},
        connect_timeout=10,
        read_timeout=read_timeout,
        user_agent_extra="agent-runtime",
    )


def build_client(
    *, region: str | None = None, endpoint_url: str | None = None, read_timeout: float = 300.0
) -> Any:
    """A ``bedrock-runtime`` client in its own boto3 session (building clients from the
    shared default session is not thread-safe)."""
    import boto3
    from botocore.exceptions import NoRegionError

    session = boto3.session.Session()
    region = region or os.environ.get(REGION_ENV) or session.region_name
    region = region or os.environ.get("AWS_REGION")
    if not region:
        raise NoRegionError()
    return session.client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=endpoint_url,
        config=client_config(read_timeout=read_timeout),
    )


def _close(events: Any) -> None:
    # May run while a worker thread is still blocked reading (the consumer was cancelled):
    # closing the response ends that read, whose failure nobody awaits.
    try:
        events.close()
    except Exception:  # already closed, or closed under a reading thread
        logger.debug("closing a bedrock event stream failed", exc_info=True)


# --- the stream ----------------------------------------------------------------------


@dataclass
class _Content:
    kind: Literal["text", "reasoning", "tool"]
    chunks: list[str] = field(default_factory=list)
    signature: str | None = None
    tool_id: str = ""
    name: str = ""


class _Reply:
    """Folds ConverseStream events into our deltas and, at the end, the response."""

    def __init__(self) -> None:
        self.content: dict[int, _Content] = {}
        self.stop_reason: str | None = None
        self.usage = Usage(requests=1)

    def feed(self, event: Mapping[str, Any]) -> ModelEvent | None:
        if (start := event.get("contentBlockStart")) is not None:
            tool = start.get("start", {}).get("toolUse")
            if tool is None:
                return None
            self.content[start["contentBlockIndex"]] = _Content(
                "tool", tool_id=tool["toolUseId"], name=tool["name"]
            )
            return ToolCallStarted(id=tool["toolUseId"], name=tool["name"])
        if (block := event.get("contentBlockDelta")) is not None:
            return self._delta(block["contentBlockIndex"], block.get("delta", {}))
        if (stop := event.get("messageStop")) is not None:
            self.stop_reason = stop.get("stopReason")
        elif (metadata := event.get("metadata")) is not None:
            usage = metadata.get("usage", {})
            self.usage = Usage(
                input_tokens=usage.get("inputTokens", 0),
                output_tokens=usage.get("outputTokens", 0),
                cache_read_tokens=usage.get("cacheReadInputTokens", 0),
                cache_write_tokens=usage.get("cacheWriteInputTokens", 0),
                requests=1,
            )
        return None

    def _delta(self, index: int, delta: Mapping[str, Any]) -> ModelEvent | None:
        if "text" in delta:
            text = str(delta["text"])
            self.content.setdefault(index, _Content("text")).chunks.append(text)
            return TextDelta(text=text) if text else None
        if "toolUse" in delta:
            content = self.content.get(index)
            if content is None or content.kind != "tool":
                raise TransientModelError(f"bedrock sent tool input for unstarted block {index}")
            content.chunks.append(str(delta["toolUse"].get("input", "")))
            return None
        if (reasoning := delta.get("reasoningContent")) is not None:
            content = self.content.setdefault(index, _Content("reasoning"))
            if signature := reasoning.get("signature"):
                content.signature = (content.signature or "") + signature
            if thinking := reasoning.get("text"):
                content.chunks.append(thinking)
                return ThinkingDelta(thinking=thinking)
        return None  # redacted reasoning and citations have no part of ours

    def response(self, model_id: str) -> ModelResponse:
        if self.stop_reason is None:
            raise TransientModelError("bedrock stream ended before messageStop")
        parts: list[Part] = []
        for _, content in sorted(self.content.items()):
            text = "".join(content.chunks)
            if content.kind == "text" and text:
                parts.append(TextPart(text=text))
            elif content.kind == "reasoning" and text:
                parts.append(ThinkingPart(thinking=text, signature=content.signature))
            elif content.kind == "tool":
                arguments = _arguments(content, text)
                call = ToolCallPart(id=content.tool_id, name=content.name, arguments=arguments)
                parts.append(call)
        return ModelResponse(
            message=Message(role="assistant", parts=parts),
            usage=self.usage,
            stop_reason=self.stop_reason,
            model=model_id,
        )


def _arguments(content: _Content, text: str) -> dict[str, Any]:
    """A tool call's streamed input. Input cut short (``max_tokens``) or not an object is
    taken as no arguments: the tool then refuses the call and the model sees why."""
    try:
        value = json.loads(text) if text.strip() else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        logger.warning("bedrock tool call %s: input is not a JSON object", content.tool_id)
        return {}
    return value


# --- errors --------------------------------------------------------------------------


def to_model_error(err: Exception) -> ModelError:
    """A boto3 failure as our error (see the module docstring); `ModelError` for others."""
    return _classify(err) or ModelError(f"bedrock: {err}", details={"status": None})


def _classify(err: Exception) -> ModelError | None:
    """`to_model_error` for what the client, the stream or our fold of it raise; None for
    anything else (a bug of ours, which should surface as it is)."""
    import urllib3.exceptions
    from botocore import exceptions as boto
    from botocore.eventstream import ParserError

    if isinstance(err, ModelError):
        return err
    if isinstance(err, boto.ClientError):
        return _client_error(err, in_stream=isinstance(err, boto.EventStreamError))
    if isinstance(err, boto.ConnectionError | boto.HTTPClientError | urllib3.exceptions.HTTPError):
        return TransientModelError(f"bedrock connection failed: {err}", status=None)
    if isinstance(err, ParserError):
        return TransientModelError(f"bedrock event stream corrupt: {err}", status=None)
    if isinstance(
        err,
        boto.NoRegionError
        | boto.NoCredentialsError
        | boto.PartialCredentialsError
        | boto.ParamValidationError,
    ):
        return PermanentModelError(f"bedrock: {err}", details={"status": None})
    if isinstance(err, boto.BotoCoreError):
        return ModelError(f"bedrock: {err}", details={"status": None})
    return None


def _client_error(err: Any, *, in_stream: bool) -> ModelError:
    error = err.response.get("Error", {})
    code = str(error.get("Code") or "")
    code = code[:1].upper() + code[1:]  # events name them in lower camel case
    message = str(error.get("Message") or "")
    metadata = err.response.get("ResponseMetadata", {})
    # An event's parsed error carries the 400 botocore gives every exception event.
    status = _STATUS.get(code) if in_stream else metadata.get("HTTPStatusCode")
    status = status or _STATUS.get(code)
    text = " ".join(str(word) for word in ("bedrock", status, f"{code}:", message) if word)
    if code in _TRANSIENT or (status is not None and (status in (408, 429) or status >= 500)):
        wait = retry_after(metadata.get("HTTPHeaders") or {})
        return TransientModelError(text, status=status, retry_after=wait)
    details = {"status": status, "code": code, "request_id": metadata.get("RequestId")}
    if code == "ValidationException" and any(phrase in message.lower() for phrase in _TOO_LONG):
        return ContextLengthExceeded(text, details=details)
    if code in _STATUS or (status is not None and 400 <= status < 500):
        return PermanentModelError(text, details=details)
    return ModelError(text, details=details)


# --- logs ----------------------------------------------------------------------------


class _RedactBody(logging.Filter):
    """botocore logs each request at DEBUG, its body included: a Converse body holds the
    conversation and attached files (base64). This filter writes it as its length."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and isinstance(args[1], Mapping):
            request = args[1]
            path = str(request.get("url_path", ""))
            body = request.get("body")
            if path.endswith(("/converse", "/converse-stream")) and isinstance(body, bytes | str):
                record.args = (args[0], {**request, "body": f"<{len(body)} bytes>"})
        return True


@functools.cache
def _redact_request_logs() -> None:
    logging.getLogger("botocore.endpoint").addFilter(_RedactBody())

