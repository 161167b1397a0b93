"""``anthropic/<model>``: Claude through the Anthropic Messages API, streamed.

The SDK client is built on first use, never at import, with the SDK's own retries off:
`AnthropicModel.stream` retries transient failures itself, because only it knows whether a
delta has already reached the caller (after that a retry would repeat text, so it raises
`TransientModelError` and leaves the decision to the run's durable retry).

Attached files (`FilePart`) become the API's own blocks at request time, from the bytes
the runtime read for this request (`ModelRequest.files`): images (PNG, JPEG, GIF, WebP) an
``image`` block, PDFs a ``document`` block, both base64; small UTF-8 text files (``text/*``,
JSON, XML, YAML, ...) their text, between a header and a trailer naming the path. Anything
else, a file whose bytes are missing, or one over the API's limits becomes a one-line text
note naming the file and why the model does not see it, so the model knows it is there. The
bytes are never logged: the SDK logs each request's body at DEBUG, so a filter on its logger
writes file content there as its length.

The API key comes from, in order: the ``api_key`` argument, ``ANTHROPIC_API_KEY``, or the
secret named by ``AGENT_RUNTIME_MODEL_SECRET_ARN`` (an SSM parameter, written ``ssm:<name>``
or as a parameter ARN, or a Secrets Manager secret), read once per process.

The SDK itself (``anthropic``, ``httpx2``) is imported by the functions that talk to it,
not by this module: every agent definition resolves its model string, so importing
this module happens wherever agents are discovered (every handler), while only a
model call needs the SDK, whose import takes far longer than a handler's. Only the
worker's Lambda ships the SDK (see `infra.bundling`).
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import random
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from agent_runtime.errors import (
    ContextLengthExceeded,
    DefinitionError,
    ModelError,
    PermanentModelError,
    TransientModelError,
)
from agent_runtime.messages import (
    FilePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
    Usage,
)
from agent_runtime.models.attachments import MAX_INLINE_TEXT_BYTES
from agent_runtime.models.attachments import b64 as _b64
from agent_runtime.models.attachments import base64_size as _base64_size
from agent_runtime.models.attachments import human_size as _human_size
from agent_runtime.models.attachments import image_type as _image_type
from agent_runtime.models.attachments import is_text as _is_text
from agent_runtime.models.attachments import media_type as _media_type
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    ToolCallStarted,
    ToolSpec,
    check_model_requests_allowed,
)

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import (
        DocumentBlockParam,
        ImageBlockParam,
        MessageParam,
        TextBlockParam,
        ThinkingBlockParam,
        ToolChoiceParam,
        ToolParam,
        ToolResultBlockParam,
        ToolUseBlockParam,
    )

    _Block: TypeAlias = (
        TextBlockParam
        | ThinkingBlockParam
        | ToolUseBlockParam
        | ToolResultBlockParam
        | ImageBlockParam
        | DocumentBlockParam
    )

logger = logging.getLogger(__name__)

SECRET_ENV = "AGENT_RUNTIME_MODEL_SECRET_ARN"

#: A server asking us to wait longer than this is not waited for inside one call: the
#: `TransientModelError` carries `retry_after` so the caller can reschedule the turn.
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 20.0

# The HTTP status an error would have had, when it arrives as an SSE `error` event after
# the stream began with 200 (unknown types count as 500).
_ERROR_TYPE_STATUS = {"invalid_request_error": 400, "rate_limit_error": 429, "api_error": 500}
_ERROR_TYPE_STATUS |= {"timeout_error": 504, "overloaded_error": 529}

#: The API's cap on one image, measured on its base64 text (it answers 400 "image exceeds
#: 5 MB maximum: ... bytes > 5242880 bytes"): an image of at most about 3.9 MB.
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
#: The API refuses a request body over 32 MB (413 ``request_too_large``), the conversation,
#: system prompt and tools included. PDFs have no cap of their own below it.
MAX_REQUEST_BYTES = 32_000_000
#: How much of a request its attached files may take (base64 or inlined text), leaving the
#: rest for everything else. The newest attachments are served first; older ones that no
#: longer fit become notes. A PDF over this on its own (about 18 MB) is never sent.
MAX_FILE_BYTES_PER_REQUEST = MAX_REQUEST_BYTES * 3 // 4
#: Text-like files up to this size are inlined as text; larger ones become a note.

#: Not under ``text/`` but text all the same (so are ``+json``, ``+xml`` and ``+yaml`` types).


class AnthropicModel(Model):
    """A Claude model; `model_name` is the API's model id, e.g. ``claude-haiku-4-5``."""

    def __init__(
        self,
        model_name: str,
        *,
        client: anthropic.AsyncAnthropic | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        max_attempts: int = 4,
        backoff: float = 0.5,
    ) -> None:
        if max_attempts < 1:
            raise DefinitionError("max_attempts", f"must be at least 1, got {max_attempts}")
        self.model_name = model_name
        self.name = f"anthropic/{model_name}"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._given_client = client
        self._client: anthropic.AsyncAnthropic | None = None
        self._api_key = api_key
        self._base_url = base_url

    def _get_client(self) -> anthropic.AsyncAnthropic:
        import anthropic

        if self._client is None:
            if self._given_client is not None:
                self._client = self._given_client.with_options(max_retries=0)
            else:
                self._client = anthropic.AsyncAnthropic(
                    api_key=self._api_key or resolve_api_key(),
                    base_url=self._base_url,
                    max_retries=0,
                )
        return self._client

    async def aclose(self) -> None:
        """Close the HTTP client this model built (a client passed in stays open)."""
        if self._client is not None and self._given_client is None:
            await self._client.close()
        self._client = None

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        check_model_requests_allowed(self.name)
        _import_sdk()
        import anthropic
        import httpx2
        from anthropic import omit

        _redact_request_logs()
        client = self._get_client()
        messages = to_anthropic_messages(request.messages, files=request.files)
        tools: list[ToolParam] = [_tool(spec) for spec in request.tools]
        temperature = request.settings.temperature
        attempt = 0
        while True:
            attempt += 1
            yielded = False
            try:
                async with client.messages.stream(
                    model=self.model_name,
                    max_tokens=request.settings.max_tokens,
                    messages=messages,
                    system=request.system or omit,
                    tools=tools or omit,
                    tool_choice=_tool_choice(request) if tools else omit,
                    extra_body={"temperature": temperature} if temperature is not None else None,
                ) as events:
                    async for event in events:
                        delta = _delta(event)
                        if delta is not None:
                            yielded = True
                            yield delta
                    final = await events.get_final_message()
            except (anthropic.APIError, httpx2.TransportError) as err:
                error = to_model_error(err)
                if (
                    yielded
                    or not isinstance(error, TransientModelError)
                    or attempt >= self.max_attempts
                    or (error.retry_after or 0.0) > MAX_RETRY_AFTER
                ):
                    raise error from err
                await asyncio.sleep(self._delay(attempt, error.retry_after))
                continue
            yield ResponseDone(response=_response(final))
            return

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        # Exponential backoff with jitter (half fixed, half random), never shorter than
        # what the server asked for.
        base = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        return max(base / 2 + random.uniform(0, base / 2), retry_after or 0.0)


def to_anthropic_messages(
    messages: Sequence[Message], *, files: Mapping[str, bytes] | None = None
) -> list[MessageParam]:
    """Our history as Messages API turns: consecutive same-role messages merged, parts the
    API cannot take back (empty text, thinking without a signature) left out, tool results
    placed first in their user turn as the API requires, and each `FilePart` made a block
    from `files` (its bytes by path; see `_attachment`), in its place among the parts."""
    attached = _attachments(messages, files or {})
    turns: list[tuple[Literal["user", "assistant"], list[_Block]]] = []
    for m, message in enumerate(messages):
        blocks = [
            block
            for p, part in enumerate(message.parts)
            if (block := attached.get((m, p)) if isinstance(part, FilePart) else _block(part))
            is not None
        ]
        if not blocks:
            continue
        if turns and turns[-1][0] == message.role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message.role, blocks))
    result: list[MessageParam] = []
    for role, blocks in turns:
        if role == "user":
            blocks.sort(key=lambda block: block["type"] != "tool_result")  # stable
            result.append({"role": "user", "content": blocks})
        else:
            result.append({"role": "assistant", "content": blocks})
    return result


def _block(part: Part) -> _Block | None:
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text} if part.text else None
    if isinstance(part, ThinkingPart):
        if part.signature is None:
            return None
        return {"type": "thinking", "thinking": part.thinking, "signature": part.signature}
    if isinstance(part, ToolCallPart):
        return {"type": "tool_use", "id": part.id, "name": part.name, "input": part.arguments}
    if isinstance(part, ToolResultPart):
        # An interrupted call's outcome is unknown: the model must not take it as a success.
        is_error = part.is_error or part.status != "ok"
        return {
            "type": "tool_result",
            "tool_use_id": part.call_id,
            "content": part.content,
            "is_error": is_error,
        }
    return None


def _attachments(
    messages: Sequence[Message], files: Mapping[str, bytes]
) -> dict[tuple[int, int], _Block]:
    """A block for every `FilePart`, by (message, part) index. The newest are decided first,
    so when a request has no room left for all its files it is the older ones that the model
    sees as notes (every request resends the history: a file attached twice is sent twice)."""
    blocks: dict[tuple[int, int], _Block] = {}
    room = MAX_FILE_BYTES_PER_REQUEST
    for m in reversed(range(len(messages))):
        message = messages[m]
        for p in reversed(range(len(message.parts))):
            part = message.parts[p]
            if isinstance(part, FilePart):
                block, cost = _attachment(part, files.get(part.path), room, message.role)
                blocks[(m, p)] = block
                room -= cost
    return blocks


def _attachment(
    part: FilePart, data: bytes | None, room: int, role: Literal["user", "assistant"]
) -> tuple[_Block, int]:
    """The block the model sees for one attached file, and the request bytes it takes.

    The media type comes from the file's metadata, but an image's bytes decide its type (the
    API refuses an image whose bytes do not match the type it is sent as, and a refused
    image would fail every later turn of the conversation too)."""
    media_type = _media_type(part)
    if role == "assistant":
        return _note(part, "files in assistant turns are not sent"), 0
    if data is None:
        return _note(part, "its content could not be read for this request"), 0
    if media_type.startswith("image/") and not _is_text(media_type):
        actual = _image_type(data)
        if actual is None:
            if media_type in ("image/png", "image/jpeg", "image/gif", "image/webp"):
                return _note(part, f"its content is not a valid {media_type} image"), 0
            reason = f"the model reads PNG, JPEG, GIF and WebP images, not {media_type}"
            return _note(part, reason), 0
        encoded = _base64_size(len(data))
        if encoded > MAX_IMAGE_BASE64_BYTES:
            return _note(part, "it is over the API's limit of 5 MB per image (base64-encoded)"), 0
        if encoded > room:
            return _note(part, _NO_ROOM), 0
        image: ImageBlockParam = {
            "type": "image",
            "source": {"type": "base64", "media_type": actual, "data": _b64(data)},
        }
        return image, encoded
    if media_type == "application/pdf":
        if b"%PDF-" not in data[:1024]:
            return _note(part, "its content is not a valid PDF"), 0
        encoded = _base64_size(len(data))
        if encoded > MAX_FILE_BYTES_PER_REQUEST:
            room_for_files = _human_size(MAX_FILE_BYTES_PER_REQUEST)
            reason = f"it is too large to send ({room_for_files} of a request at most, base64)"
            return _note(part, reason), 0
        if encoded > room:
            return _note(part, _NO_ROOM), 0
        document: DocumentBlockParam = {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": _b64(data)},
        }
        if 1 <= len(part.path) <= 500:  # the API's bounds for a title
            document["title"] = part.path
        return document, encoded
    if _is_text(media_type):
        if len(data) > MAX_INLINE_TEXT_BYTES:
            return _note(part, "text files over 100 kB are not inlined"), 0
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return _note(part, "its content is not UTF-8 text"), 0
        if len(data) > room:
            return _note(part, _NO_ROOM), 0
        header = f"{_INLINE_PREFIX}{part.path} ({media_type}, {_human_size(len(data))})]"
        return {"type": "text", "text": f"{header}\n{text}\n[end of file {part.path}]"}, len(data)
    return _note(part, f"the model reads images, PDFs and text, not {media_type}"), 0


_INLINE_PREFIX = "[file "
_NO_ROOM = "the request has no room left for it after more recent attachments"


def _note(part: FilePart, reason: str) -> TextBlockParam:
    # Path, type, size and reason only: never anything of the content.
    media_type = _media_type(part)
    logger.info("file %s (%s) not shown to the model: %s", part.path, media_type, reason)
    described = f"{part.path} ({media_type}, {_human_size(part.size)})"
    return {
        "type": "text",
        "text": f"{_INLINE_PREFIX}{described} attached; not shown to the model: {reason}]",
    }


def _tool(spec: ToolSpec) -> ToolParam:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}


def _tool_choice(request: ModelRequest) -> ToolChoiceParam:
    if request.tool_choice == "required":
        return {"type": "any"}
    if request.tool_choice == "none":
        return {"type": "none"}
    return {"type": "auto"}


def _delta(event: object) -> ModelEvent | None:
    from anthropic.types import RawContentBlockDeltaEvent, RawContentBlockStartEvent, ToolUseBlock
    from anthropic.types import TextDelta as SdkTextDelta
    from anthropic.types import ThinkingDelta as SdkThinkingDelta

    if isinstance(event, RawContentBlockStartEvent) and isinstance(
        event.content_block, ToolUseBlock
    ):
        return ToolCallStarted(id=event.content_block.id, name=event.content_block.name)
    if isinstance(event, RawContentBlockDeltaEvent):
        if isinstance(event.delta, SdkTextDelta) and event.delta.text:
            return TextDelta(text=event.delta.text)
        if isinstance(event.delta, SdkThinkingDelta) and event.delta.thinking:
            return ThinkingDelta(thinking=event.delta.thinking)
    return None


def _response(final: anthropic.types.Message) -> ModelResponse:
    from anthropic.types import TextBlock, ThinkingBlock, ToolUseBlock

    parts: list[Part] = []
    for block in final.content:
        if isinstance(block, TextBlock):
            if block.text:
                parts.append(TextPart(text=block.text))
        elif isinstance(block, ThinkingBlock):
            parts.append(ThinkingPart(thinking=block.thinking, signature=block.signature or None))
        elif isinstance(block, ToolUseBlock):
            parts.append(
                ToolCallPart(id=block.id, name=block.name, arguments=dict(block.input or {}))
            )
    usage = final.usage
    return ModelResponse(
        message=Message(role="assistant", parts=parts),
        usage=Usage(
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cache_read_tokens=usage.cache_read_input_tokens or 0,
            cache_write_tokens=usage.cache_creation_input_tokens or 0,
            requests=1,
        ),
        stop_reason=final.stop_reason,
        model=final.model,
    )


class _RedactFileContent(logging.Filter):
    """The SDK logs each request's options at DEBUG, the JSON body included: with files
    attached, that would write their bytes (as base64) and inlined text into the logs. This
    filter writes them as their length instead, before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, Mapping) and "json_data" in record.args:
            record.args = _redacted(record.args)
        return True


def _redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        if value.get("type") == "base64" and isinstance(data := value.get("data"), str):
            return {**value, "data": f"<{len(data)} base64 characters>"}
        text = value.get("text")
        if isinstance(text, str) and text.startswith(_INLINE_PREFIX) and "\n" in text:
            header = text.split("\n", 1)[0]
            return {**value, "text": f"{header} <{len(text)} characters>"}
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


@functools.cache
def _redact_request_logs() -> None:
    logging.getLogger("anthropic._base_client").addFilter(_RedactFileContent())


def _import_sdk() -> None:
    """Import the SDK (on the first model request: most of a second) with the garbage
    collector paused, as a handler's imports are (`functions`): about a tenth faster,
    since everything it makes lives as long as the process."""
    if "anthropic" in sys.modules:
        return
    collecting = gc.isenabled()
    gc.disable()
    try:
        import anthropic  # noqa: F401
        import httpx2  # noqa: F401
    finally:
        if collecting:
            gc.enable()


def to_model_error(err: Exception) -> ModelError:
    """An SDK or transport failure as our error: `TransientModelError` for 408, 429, 5xx
    and 529 (or the same errors as an SSE `error` event), connection failures and
    timeouts; `PermanentModelError` (`ContextLengthExceeded` for a prompt too long) for
    the other statuses; `ModelError` for anything else."""
    import anthropic
    import httpx2

    if isinstance(err, anthropic.APIStatusError):
        status = err.status_code
        if status < 400:  # an `error` event inside a 200 stream
            status = _ERROR_TYPE_STATUS.get(err.type or "", 500)
        message = f"anthropic {status} {err.type or 'error'}: {err.api_message or err.message}"
        if status in (408, 429) or status >= 500:
            return TransientModelError(
                message, status=status, retry_after=retry_after(err.response.headers)
            )
        details = {"status": status, "type": err.type, "request_id": err.request_id}
        if status == 400 and "too long" in str(err.api_message or err.message).lower():
            return ContextLengthExceeded(message, details=details)
        return PermanentModelError(message, details=details)
    if isinstance(err, anthropic.APIConnectionError | httpx2.TransportError):
        return TransientModelError(f"anthropic connection failed: {err}", status=None)
    return ModelError(f"anthropic: {err}", details={"status": None})


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds, as the API sends)."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None


def resolve_api_key() -> str | None:
    """``ANTHROPIC_API_KEY``, else the secret named by ``AGENT_RUNTIME_MODEL_SECRET_ARN``,
    else None (the SDK then tries its own credential sources)."""
    if key := os.environ.get("ANTHROPIC_API_KEY"):
        return key
    if ref := os.environ.get(SECRET_ENV):
        return secret_api_key(ref)
    return None


def secret_api_key(ref: str) -> str:
    """The key in the stack's model secret (`agent_runtime.models.keys`, read once per
    process): its whole text, or ``ANTHROPIC_API_KEY`` / ``api_key`` of a JSON secret."""
    from agent_runtime.models.keys import api_key_from_secret

    return api_key_from_secret(ref, fields=("ANTHROPIC_API_KEY", "api_key"), provider="Anthropic")
