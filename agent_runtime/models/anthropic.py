"""``anthropic/<model>``: Claude through the Anthropic Messages API, streamed.

``POST {base}/v1/messages`` with ``stream: true``; the base URL is the ``base_url``
argument, else ``ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com``. The key (sent
as ``x-api-key``) comes from, in order: the ``api_key`` argument, ``ANTHROPIC_API_KEY``,
or the secret named by ``AGENT_RUNTIME_MODEL_SECRET_ARN`` (an SSM parameter, written
``ssm:<name>`` or as a parameter ARN, or a Secrets Manager secret), read once per process;
without one, ``ANTHROPIC_AUTH_TOKEN`` is sent as a bearer token.

Why plain ``httpx2`` and our own event parsing rather than the ``anthropic`` SDK: a cold
worker imports the client on its first model request, and the SDK took 700 to 1100 ms
of it (its typed models are thousands of pydantic classes), against about 15 ms for
``httpx2``; and the SDK was 8.7 MB of the worker's 24 MB of code, over the 15 MB the
worker's code may take (``bench/coldstart.py`` measures both). A streamed message is a
handful of event shapes (read in `agent_runtime.models.anthropic_stream`, with the error
mapping), the same path `agent_runtime.models.openai` takes for Chat Completions.

Retries: transient failures (408, 429, 5xx, 529, connection failures, timeouts) are retried
here with jittered backoff, never sooner than ``retry-after``, but only while nothing has
reached the caller (after that a retry would repeat text, so it raises
`TransientModelError` and leaves the decision to the run's durable retry).

Attached files (`FilePart`) become the API's own blocks at request time, from the bytes
the runtime read for this request (`ModelRequest.files`): images (PNG, JPEG, GIF, WebP) an
``image`` block, PDFs a ``document`` block, both base64; small UTF-8 text files (``text/*``,
JSON, XML, YAML, ...) their text, between a header and a trailer naming the path. Anything
else, a file whose bytes are missing, or one over the API's limits becomes a one-line text
note naming the file and why the model does not see it, so the model knows it is there.
Neither a request body (it would hold the files) nor its headers (the key) are logged.

``httpx2`` is imported by the functions that talk to the API, not by this module: every
agent definition resolves its model string, so importing this module happens wherever
agents are discovered (every handler), while only a model call needs the client. Only
the worker's Lambda ships it (see `infra.bundling`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeAlias

from agent_runtime.errors import (
    DefinitionError,
    PermanentModelError,
)
from agent_runtime.messages import (
    FilePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from agent_runtime.models.anthropic_stream import (
    StreamedMessage,
    error_response,
    retry_after,
    to_model_error,
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
    ToolSpec,
    check_model_requests_allowed,
)
from agent_runtime.models.retrying import Retries
from agent_runtime.models.sse import HttpClient, stream_turn

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "AnthropicModel",
    "resolve_api_key",
    "retry_after",
    "to_anthropic_messages",
    "to_model_error",
]

Json = dict[str, Any]
_Block: TypeAlias = Json

logger = logging.getLogger(__name__)

SECRET_ENV = "AGENT_RUNTIME_MODEL_SECRET_ARN"
DEFAULT_BASE_URL = "https://api.anthropic.com"
BASE_URL_ENV = "ANTHROPIC_BASE_URL"
AUTH_TOKEN_ENV = "ANTHROPIC_AUTH_TOKEN"
API_VERSION = "2023-06-01"


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


class AnthropicModel(Model):
    """A Claude model; `model_name` is the API's model id, e.g. ``claude-haiku-4-5``.
    `http_client` (an ``httpx2.AsyncClient``, e.g. over a test transport) replaces the one
    built on the first request."""

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 600.0,
    ) -> None:
        if max_attempts < 1:
            raise DefinitionError("max_attempts", f"must be at least 1, got {max_attempts}")
        self.model_name = model_name
        self.name = f"anthropic/{model_name}"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self._api_key = api_key
        self._base_url = base_url
        self._http = HttpClient(http_client, timeout=timeout)
        self._endpoint: tuple[str, dict[str, str]] | None = None

    @property
    def base_url(self) -> str:
        return (self._base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")

    def _get_endpoint(self) -> tuple[str, dict[str, str]]:
        """The URL and headers, resolved on the first request (the key may be a secret)."""
        if self._endpoint is None:
            headers = {"anthropic-version": API_VERSION, "accept": "text/event-stream"}
            if key := self._api_key or resolve_api_key():
                headers["x-api-key"] = key
            elif token := os.environ.get(AUTH_TOKEN_ENV):
                headers["authorization"] = f"Bearer {token}"
            else:
                raise PermanentModelError(
                    "anthropic: no API key: set ANTHROPIC_API_KEY or the stack's model secret",
                    details={"status": None},
                )
            self._endpoint = (f"{self.base_url}/v1/messages", headers)
        return self._endpoint

    @property
    def timeout(self) -> float:
        return self._http.timeout

    async def aclose(self) -> None:
        """Close the HTTP client this model built (a client passed in stays open)."""
        await self._http.aclose()

    def request_body(self, request: ModelRequest) -> Json:
        """The JSON body of a streamed Messages API request for `request`."""
        body: Json = {
            "model": self.model_name,
            "max_tokens": request.settings.max_tokens,
            "messages": to_anthropic_messages(request.messages, files=request.files),
            "stream": True,
        }
        if request.system:
            body["system"] = request.system
        if request.tools:
            body["tools"] = [_tool(spec) for spec in request.tools]
            body["tool_choice"] = _tool_choice(request)
        if request.settings.temperature is not None:
            body["temperature"] = request.settings.temperature
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        check_model_requests_allowed(self.name)
        url, headers = self._get_endpoint()
        async for event in stream_turn(
            self._http,
            url,
            body=self.request_body(request),
            headers=headers,
            provider="anthropic",
            error=error_response,
            parser=StreamedMessage,
            retries=Retries(self.max_attempts, self.backoff),
        ):
            yield event


def to_anthropic_messages(
    messages: Sequence[Message], *, files: Mapping[str, bytes] | None = None
) -> list[Json]:
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
    result: list[Json] = []
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
        image: _Block = {
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
        document: _Block = {
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


def _note(part: FilePart, reason: str) -> _Block:
    # Path, type, size and reason only: never anything of the content.
    media_type = _media_type(part)
    logger.info("file %s (%s) not shown to the model: %s", part.path, media_type, reason)
    described = f"{part.path} ({media_type}, {_human_size(part.size)})"
    return {
        "type": "text",
        "text": f"{_INLINE_PREFIX}{described} attached; not shown to the model: {reason}]",
    }


def _tool(spec: ToolSpec) -> Json:
    return {"name": spec.name, "description": spec.description, "input_schema": spec.parameters}


def _tool_choice(request: ModelRequest) -> Json:
    if request.tool_choice == "required":
        return {"type": "any"}
    if request.tool_choice == "none":
        return {"type": "none"}
    return {"type": "auto"}


def resolve_api_key() -> str | None:
    """``ANTHROPIC_API_KEY``, else the secret named by ``AGENT_RUNTIME_MODEL_SECRET_ARN``,
    else None (``ANTHROPIC_AUTH_TOKEN`` is then sent as a bearer token, if set)."""
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
