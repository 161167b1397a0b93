"""A local fake of the Anthropic Messages API, for the ``anthropic/`` provider (or any client).

One behaviour, two ways in:

- `FakeAnthropic.handler` is an ``httpx2.MockTransport`` handler, with no socket::

      fake = FakeAnthropic(["Hello!", Reply([ToolUse("search", {"q": "x"})])])
      http_client = httpx2.AsyncClient(transport=httpx2.MockTransport(fake.handler))
      model = AnthropicModel("claude-haiku-4-5", api_key="test", base_url="http://fake", http_client=http_client)

- `FakeAnthropicServer` serves it on 127.0.0.1 (a free port) from a thread, for code that
  only takes ``ANTHROPIC_BASE_URL``, such as a local stack::

      with FakeAnthropicServer(fake) as server:
          os.environ["ANTHROPIC_BASE_URL"] = server.base_url

``POST /v1/messages`` is answered with a JSON message, or with server-sent events when the
body says ``"stream": true``: ``message_start``, then per content block
``content_block_start`` / ``content_block_delta`` (text, thinking plus signature, or tool
input as ``input_json_delta`` chunks) / ``content_block_stop``, then ``message_delta``
(stop_reason and usage) and ``message_stop``. Replies and errors are played from a script in
order; every request is recorded (headers and JSON body) in `FakeAnthropic.requests`.
Before the script is consulted the fake checks what the real API checks first
(authentication, ``anthropic-version``, required fields, tool_use / tool_result pairing, the
shape of base64 ``image`` and ``document`` blocks and their limits, the 32 MB body), so a
caller that sends something the API would refuse fails here too.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import httpx2

from agent_runtime.testing.loopback import LoopbackServer, ScriptedAnswers

__all__ = [
    "Answer",
    "ApiError",
    "Disconnect",
    "FakeAnthropic",
    "FakeAnthropicServer",
    "RecordedRequest",
    "Reply",
    "StreamError",
    "Text",
    "Thinking",
    "ToolUse",
    "echo",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_STATUS_OF_TYPE = {kind: status for status, kind in _ERROR_TYPES.items()}

#: The API's limits: the whole body, and one image's base64 text.
MAX_REQUEST_BYTES = 32_000_000
MAX_IMAGE_BASE64_BYTES = 5 * 1024 * 1024
_IMAGE_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),  # and "WEBP" at offset 8
}
_BLOCK_FIELDS = {
    "image": {"type", "source", "cache_control"},
    "document": {"type", "source", "cache_control", "citations", "context", "title"},
}


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str = "fake-signature"


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    #: Defaults to a deterministic ``toolu_fake_...`` id.
    id: str | None = None


Block = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Reply:
    """A successful message. A ``str`` in `content` is a `Text`; token counts default to
    estimates; `stop_reason` defaults to ``tool_use`` when there is a `ToolUse`."""

    content: Sequence[Block | str]
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    #: Defaults to the model the request named.
    model: str | None = None


@dataclass(frozen=True)
class ApiError:
    """An HTTP error response shaped like the API's; `type` defaults from the status."""

    status: int
    type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError:
    """HTTP 200 whose event stream streams `partial` blocks, then ends in an ``error`` event
    (as the API does when it overloads mid-stream). Without streaming, an HTTP error."""

    type: str = "overloaded_error"
    message: str = "Overloaded"
    partial: Sequence[Block | str] = ()


@dataclass(frozen=True)
class Disconnect:
    """The connection drops before any response."""


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: Lower-cased names.
    headers: dict[str, str]
    #: The decoded JSON body (None when it was not JSON).
    body: Any

    @property
    def api_key(self) -> str | None:
        if key := self.headers.get("x-api-key"):
            return key
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None


Outcome = str | Reply | ApiError | StreamError | Disconnect
ScriptItem = Outcome | Callable[[RecordedRequest], Outcome]


def echo(request: RecordedRequest) -> Outcome:
    """Replies ``echo: <last user text>``: a default for a local stack."""
    for message in reversed(request.body.get("messages", [])):
        content = message.get("content")
        if message.get("role") == "user" and isinstance(content, str):
            return f"echo: {content}"
        if message.get("role") == "user":
            texts = [b.get("text", "") for b in content if b.get("type") == "text"]
            results = [str(b.get("content", "")) for b in content if b.get("type") == "tool_result"]
            return f"echo: {''.join(texts) or '; '.join(results)}"
    return "echo: "


@dataclass
class Answer:
    """What to send back: a status, headers and the body in chunks (SSE events are
    written one chunk at a time), or a dropped connection."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    disconnect: bool = False


class FakeAnthropic(ScriptedAnswers[ScriptItem]):
    """Plays `script` in order; when it runs out, `default` answers (an outcome or a
    function of the request), or else a 400 that names the exhausted script."""

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        default: ScriptItem | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(script, default=default)
        self.requests: list[RecordedRequest] = []
        #: When set, any other key is refused with 401.
        self.api_key = api_key
        self._ids = itertools.count(1)
        self._tool_ids = itertools.count(1)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """The ``httpx2.MockTransport`` entry point."""
        answer = self.respond(
            request.method, request.url.path, request.headers.items(), request.content
        )
        if answer.disconnect:
            raise httpx2.ConnectError("fake anthropic: connection dropped", request=request)
        return httpx2.Response(
            answer.status, headers=answer.headers, content=b"".join(answer.chunks)
        )

    def respond(
        self, method: str, path: str, header_pairs: Iterable[tuple[str, str]], body: bytes
    ) -> Answer:
        """Record the request and decide the answer; both transports call this."""
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = None
        request = RecordedRequest(method, path, {k.lower(): v for k, v in header_pairs}, data)
        with self._lock:
            self.requests.append(request)
            number = next(self._ids)
        if method != "POST" or not path.endswith("/v1/messages"):
            return self._error(ApiError(404, message=f"Not found: {method} {path}"), number)
        if len(body) > MAX_REQUEST_BYTES:
            return self._error(ApiError(413, message="Request exceeds the maximum size"), number)
        if request.api_key is None:
            return self._error(ApiError(401, message="x-api-key header is required"), number)
        if self.api_key is not None and request.api_key != self.api_key:
            return self._error(ApiError(401, message="invalid x-api-key"), number)
        if "anthropic-version" not in request.headers:
            return self._error(
                ApiError(400, message="anthropic-version: header is required"), number
            )
        if problem := _invalid(data):
            return self._error(ApiError(400, message=problem), number)
        item = self._next_answer()
        if item is None:
            return self._error(
                ApiError(400, message="FakeAnthropic: the script is exhausted"), number
            )
        outcome = item(request) if callable(item) else item
        streaming = data.get("stream") is True
        if isinstance(outcome, Disconnect):
            return Answer(0, {}, [], disconnect=True)
        if isinstance(outcome, ApiError):
            return self._error(outcome, number)
        if isinstance(outcome, StreamError):
            if not streaming:
                status = _STATUS_OF_TYPE.get(outcome.type, 500)
                return self._error(ApiError(status, outcome.type, outcome.message), number)
            reply = Reply(outcome.partial)
        else:
            reply = Reply([outcome]) if isinstance(outcome, str) else outcome
        message = self._message(reply, data, number)
        headers = {"request-id": f"req_fake_{number:06d}"}
        if not streaming:
            return Answer(200, {**headers, "content-type": "application/json"}, [_json(message)])
        chunks = _events(message)
        if isinstance(outcome, StreamError):
            error = {"type": "error", "error": {"type": outcome.type, "message": outcome.message}}
            chunks = [*chunks[:-2], _sse("error", error)]  # no message_delta / message_stop
        headers |= {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return Answer(200, headers, chunks)

    def _message(self, reply: Reply, body: dict[str, Any], number: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if isinstance(block, str | Text):
                content.append(
                    {"type": "text", "text": block if isinstance(block, str) else block.text}
                )
            elif isinstance(block, Thinking):
                content.append(
                    {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
                )
            else:
                with self._lock:
                    call_id = block.id or f"toolu_fake_{next(self._tool_ids):06d}"
                content.append(
                    {"type": "tool_use", "id": call_id, "name": block.name, "input": block.input}
                )
        has_tool = any(b["type"] == "tool_use" for b in content)
        prompt = json.dumps(body.get("messages")) + json.dumps(body.get("system", ""))
        return {
            "id": f"msg_fake_{number:06d}",
            "type": "message",
            "role": "assistant",
            "model": reply.model or body["model"],
            "content": content,
            "stop_reason": reply.stop_reason or ("tool_use" if has_tool else "end_turn"),
            "stop_sequence": None,
            "usage": {
                "input_tokens": reply.input_tokens
                if reply.input_tokens is not None
                else max(1, len(prompt) // 4),
                "cache_creation_input_tokens": reply.cache_creation_input_tokens,
                "cache_read_input_tokens": reply.cache_read_input_tokens,
                "output_tokens": reply.output_tokens
                if reply.output_tokens is not None
                else max(1, len(json.dumps(content)) // 4),
            },
        }

    def _error(self, error: ApiError, number: int) -> Answer:
        kind = error.type or _ERROR_TYPES.get(error.status, "api_error")
        request_id = f"req_fake_{number:06d}"
        body = {
            "type": "error",
            "error": {"type": kind, "message": error.message or kind},
            "request_id": request_id,
        }
        headers = {"content-type": "application/json", "request-id": request_id, **error.headers}
        if error.retry_after is not None:
            headers["retry-after"] = f"{error.retry_after:g}"
        if error.status in (408, 429) or error.status >= 500:
            headers.setdefault("x-should-retry", "true")
        return Answer(error.status, headers, [_json(body)])


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + _json(data) + b"\n\n"


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _events(message: dict[str, Any]) -> list[bytes]:
    """The event stream the API sends for `message`."""
    usage = message["usage"]
    start = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 1}}
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    for index, block in enumerate(message["content"]):
        deltas: list[dict[str, Any]]
        if block["type"] == "text":
            empty: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(block["text"])]
        elif block["type"] == "thinking":
            empty = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": piece}
                for piece in _pieces(block["thinking"])
            ]
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        else:
            empty = {**block, "input": {}}
            arguments = json.dumps(block["input"], separators=(",", ":"))
            chunks = ["", *(arguments[i : i + 12] for i in range(0, len(arguments), 12))]
            deltas = [{"type": "input_json_delta", "partial_json": chunk} for chunk in chunks]
        start_block = {"type": "content_block_start", "index": index, "content_block": empty}
        events.append(_sse("content_block_start", start_block))
        if index == 0:
            events.append(_sse("ping", {"type": "ping"}))
        for delta in deltas:
            events.append(
                _sse(
                    "content_block_delta",
                    {"type": "content_block_delta", "index": index, "delta": delta},
                )
            )
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    stop = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(_sse("message_delta", {"type": "message_delta", "delta": stop, "usage": usage}))
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


def _invalid(body: Any) -> str | None:
    """The first reason the real API would refuse `body` with a 400, among those a client
    library is likely to get wrong."""
    if not isinstance(body, dict):
        return "request body must be a JSON object"
    for name in ("model", "max_tokens", "messages"):
        if name not in body:
            return f"{name}: Field required"
    if not isinstance(body["messages"], list) or not body["messages"]:
        return "messages: at least one message is required"
    turns: list[tuple[str, list[dict[str, Any]]]] = []  # consecutive same-role turns are merged
    for i, message in enumerate(body["messages"]):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        if not isinstance(blocks, list) or not all(
            isinstance(b, dict) and "type" in b for b in blocks
        ):
            return f"messages.{i}.content: Input should be a string or a list of content blocks"
        for j, block in enumerate(blocks):
            if block["type"] == "text" and not block.get("text"):
                return f"messages.{i}.content.{j}.text: text content blocks must be non-empty"
            if block["type"] == "thinking" and not block.get("signature"):
                return f"messages.{i}.content.{j}.thinking.signature: Field required"
            if block["type"] in _BLOCK_FIELDS and (
                problem := _invalid_media(block, f"messages.{i}.content.{j}")
            ):
                return problem
        if turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, list(blocks)))
    pending: list[str] = []
    for role, blocks in turns:
        results = [str(b.get("tool_use_id")) for b in blocks if b["type"] == "tool_result"]
        if role == "assistant":
            if results:
                return "tool_result blocks are only allowed in user messages"
            pending = [str(b.get("id")) for b in blocks if b["type"] == "tool_use"]
            continue
        if missing := [call for call in pending if call not in results]:
            return f"tool_use ids were found without tool_result blocks immediately after: {', '.join(missing)}"
        if unexpected := [call for call in results if call not in pending]:
            return f"unexpected tool_use_id found in tool_result blocks: {', '.join(unexpected)}"
        if results and any(b["type"] != "tool_result" for b in blocks[: len(results)]):
            return "tool_result blocks must come first in the user message content, before any other content"
        pending = []
    return None


def _invalid_media(block: dict[str, Any], where: str) -> str | None:
    """Why the API would refuse an ``image`` or ``document`` block with a base64 source
    (other sources are taken as they are)."""
    kind = block["type"]
    if extra := sorted(set(block) - _BLOCK_FIELDS[kind]):
        return f"{where}.{kind}.{extra[0]}: Extra inputs are not permitted"
    title = block.get("title")
    if title is not None and not (isinstance(title, str) and 1 <= len(title) <= 500):
        return f"{where}.{kind}.title: String should have between 1 and 500 characters"
    source = block.get("source")
    if not isinstance(source, dict) or "type" not in source:
        return f"{where}.{kind}.source: Field required"
    if source["type"] != "base64":
        return None
    media_type, data = source.get("media_type"), source.get("data")
    allowed: dict[str, tuple[bytes, ...]] = (
        _IMAGE_SIGNATURES if kind == "image" else {"application/pdf": (b"%PDF-",)}
    )
    signatures = allowed.get(media_type) if isinstance(media_type, str) else None
    if signatures is None:
        expected = " or ".join(map(repr, allowed))
        return f"{where}.{kind}.source.base64.media_type: Input should be {expected}"
    if not isinstance(data, str):
        return f"{where}.{kind}.source.base64.data: Field required"
    if kind == "image" and len(data) > MAX_IMAGE_BASE64_BYTES:
        return (
            f"{where}.image.source.base64: image exceeds 5 MB maximum: "
            f"{len(data)} bytes > {MAX_IMAGE_BASE64_BYTES} bytes"
        )
    try:
        content = base64.b64decode(data, validate=True)
    except binascii.Error:
        return f"{where}.{kind}.source.base64.data: invalid base64 data"
    if kind == "document":  # readers take a PDF header anywhere in the first 1024 bytes
        matches = b"%PDF-" in content[:1024]
    else:
        matches = content.startswith(signatures) and (
            media_type != "image/webp" or content[8:12] == b"WEBP"
        )
    if not matches:
        return f"{where}.{kind}.source.base64.data: the data is not {media_type}"
    return None


class FakeAnthropicServer(LoopbackServer):
    """`fake` on ``http://127.0.0.1:<free port>``, from a thread; a context manager.
    `event_delay` pauses between SSE events so streaming can be watched."""

    thread_name = "fake-anthropic"
    poll_interval = 0.05

    def __init__(
        self, fake: FakeAnthropic | None = None, *, port: int = 0, event_delay: float = 0.0
    ) -> None:
        self.fake = fake or FakeAnthropic(default=echo)
        self.event_delay = event_delay
        super().__init__(port=port)

    @property
    def base_url(self) -> str:
        return self.address

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake, delay = self.fake, self.event_delay

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # events are small writes: send each at once

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = fake.respond(
                    self.command, urlsplit(self.path).path, self.headers.items(), body
                )
                if answer.disconnect:
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("content-length", str(sum(map(len, answer.chunks))))
                    self.end_headers()
                    for chunk in answer.chunks:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if delay:
                            time.sleep(delay)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_POST = do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake Anthropic Messages API that echoes.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--event-delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeAnthropicServer(port=args.port, event_delay=args.event_delay) as server:
        print(f"ANTHROPIC_BASE_URL={server.base_url}", flush=True)
        threading.Event().wait()
