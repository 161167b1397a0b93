"""``openai/<model>``: any OpenAI-compatible Chat Completions server, streamed.

``POST {base}/chat/completions`` with ``stream: true`` and ``stream_options:
{include_usage: true}``; the base URL is the ``base_url`` argument, else
``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``, so vLLM, Ollama, llama.cpp and
hosted compatible APIs work alike. The key is the ``api_key`` argument, else
``OPENAI_API_KEY``, else the stack's model secret (`agent_runtime.models.keys`: its text,
or its ``OPENAI_API_KEY`` / ``api_key`` field when JSON); with none, no ``authorization``
header is sent (local servers need none).

Why plain ``httpx2`` and our own SSE parsing rather than the ``openai`` SDK: the worker
imports the client on its first model request, and the numbers decide (wall time of the
import in a fresh interpreter, median of 9, Python 3.11 here, with pydantic and boto3
already loaded as in the worker)::

    httpx2                     14 ms   (ships in the worker's model layer with anthropic)
    httpx                      20 ms   (not shipped to Lambda at all: infra.bundling)
    openai 3.22.1 (on httpx2) 266 ms   (still 258 ms when anthropic is already loaded)
    anthropic 2.15            784 ms   for comparison

A Chat Completions stream is a few JSON shapes (read in `agent_runtime.models.
openai_stream`, with the error mapping), so the SDK's models would buy little for a
quarter of a second on every cold worker, and one more package in the worker's layer.

The request: the system prompt as a ``system`` message; consecutive same-role messages
merged into one turn; in a user turn, tool results first as ``role: tool`` messages (they
must follow the assistant's ``tool_calls``), the rest as one user message: a string when
it is all text (what every compatible server takes), else content parts. Assistant turns
carry their text and ``tool_calls`` (arguments as a JSON string); thinking is not sent
back (Chat Completions has no field for it). A tool result that failed or was interrupted
is prefixed ``Error:``, since a tool message has no error flag. ``max_completion_tokens``
against api.openai.com (its reasoning models refuse ``max_tokens``), ``max_tokens``
against any other server (the field they all know), unless ``max_tokens_field`` says.

Attached files (`FilePart`), from the bytes in `ModelRequest.files`, newest first within a
request budget: PNG, JPEG, GIF and WebP images as ``image_url`` data URLs (their bytes
decide the type); small UTF-8 text inlined between a header and a trailer; PDFs as a
``file`` part (``file_data`` data URL, a part OpenAI's own API documents) only against
api.openai.com or with ``pdf_files=True``, since other servers refuse an unknown part
type with a 400 that would fail every later turn too; anything else a one-line note.

The stream: ``data:`` lines until ``[DONE]``. ``delta.content`` (and ``refusal``) become
`TextDelta`; ``reasoning_content`` / ``reasoning`` (DeepSeek, vLLM, OpenRouter)
`ThinkingDelta`; ``tool_calls`` deltas are accumulated by index, a `ToolCallStarted` when
a call's id and name are first both known; then ``finish_reason`` (kept as the server
says it) and ``usage``. OpenAI's ``prompt_tokens`` include cached ones: ``input_tokens``
is the rest and ``cache_read_tokens`` the cached part, as for anthropic.

Errors: 408, 409, 429 and 5xx, connection failures and timeouts are `TransientModelError`
(``retry-after-ms`` / ``retry-after`` kept), retried here with jittered backoff only
while nothing has reached the caller; a 429 ``insufficient_quota`` (billing) and other
4xx are `PermanentModelError`, a 400 saying the context length is exceeded
`ContextLengthExceeded`. An ``error`` object inside the stream is mapped the same way.
No request body is logged: it would hold attached files.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from agent_runtime.errors import (
    DefinitionError,
    ModelError,
)
from agent_runtime.messages import FilePart, Message, Part, TextPart, ToolCallPart, ToolResultPart
from agent_runtime.models import attachments as att
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ToolSpec,
    check_model_requests_allowed,
)
from agent_runtime.models.keys import api_key_from_secret, secret_ref
from agent_runtime.models.openai_stream import StreamedTurn, error_object, to_model_error
from agent_runtime.models.retrying import Retries
from agent_runtime.models.sse import HttpClient, stream_turn

if TYPE_CHECKING:
    import httpx2

__all__ = ["OpenAIModel", "resolve_api_key", "to_openai_messages"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"

#: Per image, its bytes: what Azure OpenAI enforces (20 MiB) and OpenAI has documented.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: How much of a request attached files may take (base64 or inlined text), a budget well
#: under OpenAI's documented 50 MB per request; the newest are served first and older
#: ones that no longer fit become notes.
MAX_FILE_BYTES_PER_REQUEST = 32_000_000

MaxTokensField = Literal["max_tokens", "max_completion_tokens"]
Sleep = Callable[[float], Awaitable[None]]
Json = dict[str, Any]


class OpenAIModel(Model):
    """A Chat Completions model; `model_name` is the server's model id, e.g. ``gpt-4.1-mini``."""

    def __init__(
        self,
        model_name: str,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_attempts: int = 3,
        backoff: float = 0.5,
        timeout: float = 600.0,
        max_tokens_field: MaxTokensField | None = None,
        pdf_files: bool | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if max_attempts < 1:
            raise DefinitionError("max_attempts", f"must be at least 1, got {max_attempts}")
        self.model_name = model_name
        self.name = f"openai/{model_name}"
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.sleep = sleep
        self._api_key = api_key
        self._base_url = base_url
        self._max_tokens_field = max_tokens_field
        self._pdf_files = pdf_files
        self._http = HttpClient(http_client, timeout=timeout)
        self._endpoint: tuple[str, dict[str, str]] | None = None

    @property
    def base_url(self) -> str:
        return (self._base_url or os.environ.get(BASE_URL_ENV) or DEFAULT_BASE_URL).rstrip("/")

    @property
    def is_openai(self) -> bool:
        """Whether the server is OpenAI's own API (which takes its newest fields)."""
        return urlsplit(self.base_url).hostname == "api.openai.com"

    def _get_endpoint(self) -> tuple[str, dict[str, str]]:
        """The URL and headers, resolved on the first request (the key may be a secret)."""
        if self._endpoint is None:
            key = self._api_key or resolve_api_key()
            headers = {"authorization": f"Bearer {key}"} if key else {}
            self._endpoint = (f"{self.base_url}/chat/completions", headers)
        return self._endpoint

    @property
    def timeout(self) -> float:
        return self._http.timeout

    async def aclose(self) -> None:
        """Close the HTTP client this model built (a client passed in stays open)."""
        await self._http.aclose()

    def request_body(self, request: ModelRequest) -> Json:
        """The JSON body of a streamed Chat Completions request for `request`."""
        pdf_files = self.is_openai if self._pdf_files is None else self._pdf_files
        field = self._max_tokens_field or (
            "max_completion_tokens" if self.is_openai else "max_tokens"
        )
        body: Json = {
            "model": self.model_name,
            "messages": to_openai_messages(
                request.messages, system=request.system, files=request.files, pdf_files=pdf_files
            ),
            "stream": True,
            "stream_options": {"include_usage": True},
            field: request.settings.max_tokens,
        }
        if request.settings.temperature is not None:
            body["temperature"] = request.settings.temperature
        if request.tools:
            body["tools"] = [_tool(spec) for spec in request.tools]
            body["tool_choice"] = tool_choice(request.tool_choice)
        return body

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        check_model_requests_allowed(self.name)
        url, headers = self._get_endpoint()
        async for event in stream_turn(
            self._http,
            url,
            body=self.request_body(request),
            headers=headers,
            provider="openai",
            error=_error_response,
            parser=StreamedTurn,
            retries=Retries(self.max_attempts, self.backoff, self.sleep),
        ):
            yield event


def resolve_api_key() -> str | None:
    """``OPENAI_API_KEY``, else the stack's model secret, else None (no key is sent)."""
    if key := os.environ.get(API_KEY_ENV):
        return key
    if ref := secret_ref():
        return api_key_from_secret(ref, fields=("OPENAI_API_KEY", "api_key"), provider="OpenAI")
    return None


# --- the request ---------------------------------------------------------------------


def to_openai_messages(
    messages: Sequence[Message],
    *,
    system: str | None = None,
    files: Mapping[str, bytes] | None = None,
    pdf_files: bool = False,
) -> list[Json]:
    """Our history as Chat Completions messages (see the module docstring for the rules);
    each `FilePart` becomes a content part from `files` (its bytes by path)."""
    attached = _attachments(messages, files or {}, pdf_files=pdf_files)
    turns: list[tuple[str, list[Part | Json]]] = []
    for m, message in enumerate(messages):
        items: list[Part | Json] = [
            attached[(m, p)] if isinstance(part, FilePart) else part
            for p, part in enumerate(message.parts)
        ]
        if turns and turns[-1][0] == message.role:
            turns[-1][1].extend(items)
        else:
            turns.append((message.role, items))
    result: list[Json] = [{"role": "system", "content": system}] if system else []
    for role, items in turns:
        result.extend(_user_turn(items) if role == "user" else _assistant_turn(items))
    return result


def _user_turn(items: Sequence[Part | Json]) -> list[Json]:
    out: list[Json] = [
        {"role": "tool", "tool_call_id": item.call_id, "content": _result_text(item)}
        for item in items
        if isinstance(item, ToolResultPart)
    ]
    content: list[Json] = []
    for item in items:
        if isinstance(item, TextPart) and item.text:
            content.append({"type": "text", "text": item.text})
        elif isinstance(item, dict):
            content.append(item)
    if content and all(part["type"] == "text" for part in content):
        out.append({"role": "user", "content": "\n\n".join(part["text"] for part in content)})
    elif content:
        out.append({"role": "user", "content": content})
    return out


def _assistant_turn(items: Sequence[Part | Json]) -> list[Json]:
    texts = [item.text for item in items if isinstance(item, TextPart) and item.text]
    texts += [item["text"] for item in items if isinstance(item, dict) and "text" in item]
    calls = [
        {
            "id": item.id,
            "type": "function",
            "function": {"name": item.name, "arguments": json.dumps(item.arguments)},
        }
        for item in items
        if isinstance(item, ToolCallPart)
    ]
    if not texts and not calls:
        return []
    message: Json = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return [message]


def _result_text(part: ToolResultPart) -> str:
    # A tool message has no error flag: an interrupted call must not read as a success.
    failed = part.is_error or part.status != "ok"
    return f"Error: {part.content}" if failed else part.content


def _attachments(
    messages: Sequence[Message], files: Mapping[str, bytes], *, pdf_files: bool
) -> dict[tuple[int, int], Json]:
    """A content part for every `FilePart`, by (message, part) index, the newest decided
    first: when a request has no room for all its files, older ones become notes."""
    parts: dict[tuple[int, int], Json] = {}
    room = MAX_FILE_BYTES_PER_REQUEST
    for m in reversed(range(len(messages))):
        message = messages[m]
        for p in reversed(range(len(message.parts))):
            part = message.parts[p]
            if isinstance(part, FilePart):
                content, cost = _attachment(part, files.get(part.path), message.role, pdf_files)
                if cost > room:
                    content, cost = _note(part, att.NO_ROOM), 0
                parts[(m, p)] = content
                room -= cost
    return parts


def _attachment(
    part: FilePart, data: bytes | None, role: str, pdf_files: bool
) -> tuple[Json, int]:
    """The content part for one attached file, and the request bytes it takes."""
    kind = att.media_type(part)
    if role == "assistant":
        return _note(part, "files in assistant turns are not sent"), 0
    if data is None:
        return _note(part, "its content could not be read for this request"), 0
    if kind.startswith("image/") and not att.is_text(kind):
        actual = att.image_type(data)
        if actual is None:
            if kind in att.IMAGE_MEDIA_TYPES:
                return _note(part, f"its content is not a valid {kind} image"), 0
            return _note(part, f"the model reads PNG, JPEG, GIF and WebP images, not {kind}"), 0
        if len(data) > MAX_IMAGE_BYTES:
            return _note(part, "it is over the limit of 20 MB per image"), 0
        url = f"data:{actual};base64,{att.b64(data)}"
        return {"type": "image_url", "image_url": {"url": url}}, len(url)
    if kind == "application/pdf":
        if not pdf_files:
            return _note(part, "PDFs are not sent to this model's server"), 0
        if b"%PDF-" not in data[:1024]:
            return _note(part, "its content is not a valid PDF"), 0
        url = f"data:application/pdf;base64,{att.b64(data)}"
        if len(url) > MAX_FILE_BYTES_PER_REQUEST:
            return _note(part, "it is too large to send"), 0
        return {"type": "file", "file": {"filename": part.path, "file_data": url}}, len(url)
    if att.is_text(kind):
        text, cost = att.inline_text(part, data)
        return {"type": "text", "text": text}, cost
    readable = "images, PDFs and text" if pdf_files else "images and text"
    return _note(part, f"the model reads {readable}, not {kind}"), 0


def _note(part: FilePart, reason: str) -> Json:
    return {"type": "text", "text": att.note_text(part, reason)}


def _tool(spec: ToolSpec) -> Json:
    return {
        "type": "function",
        "function": {
            "name": spec.name,
            "description": spec.description,
            "parameters": spec.parameters,
        },
    }


def tool_choice(choice: str) -> str | Json:
    """``auto``, ``required`` and ``none`` as they are; any other value names the one
    function the model must call."""
    if choice in ("auto", "required", "none"):
        return choice
    return {"type": "function", "function": {"name": choice}}


def _error_response(status: int, body: bytes, headers: Mapping[str, str]) -> ModelError:
    return to_model_error(status, error_object(body), headers)
