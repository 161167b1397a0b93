"""A local fake of the OpenAI Chat Completions API, served over real sockets.

    fake = FakeOpenAI(["Hello!", Reply([ToolCall("search", {"q": "x"})])])
    with FakeOpenAIServer(fake) as server:
        model = OpenAIModel("gpt-4.1-mini", base_url=server.base_url, api_key="sk-test")

`FakeOpenAIServer` serves it on ``http://127.0.0.1:<free port>/v1`` from a thread (a
`ThreadingHTTPServer`); its `fake` may be swapped between tests. `FakeOpenAI.handler` is
also an ``httpx2.MockTransport`` handler, for code that takes an HTTP client.

``POST .../chat/completions`` is answered with a ``chat.completion`` JSON object, or with
server-sent events when the body says ``"stream": true``, sent with chunked transfer
encoding as the real API does: a first chunk with the role, one chunk per piece of text
(or ``reasoning_content``), per tool call a chunk with its index, id and name followed by
chunks of its arguments, a chunk with the ``finish_reason``, then (with ``stream_options:
{include_usage: true}``) a chunk with no choices and the usage, and ``data: [DONE]``.
Replies and errors are played from a script in order; every request is recorded (headers
and JSON body) in `FakeOpenAI.requests`. Before the script is consulted the fake checks
what the real API refuses with a 400 that a client is likely to get wrong: message roles
and content shapes, ``tool_calls`` each answered by ``tool`` messages right after, image
data URLs whose bytes are the image they name, ``tool_choice`` without ``tools``,
``stream_options`` without ``stream``.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from agent_runtime.testing.loopback import LoopbackServer, ScriptedAnswers

if TYPE_CHECKING:
    import httpx2

__all__ = [
    "Answer",
    "ApiError",
    "Disconnect",
    "FakeOpenAI",
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "StreamError",
    "ToolCall",
    "Truncated",
    "echo",
]

Json = dict[str, Any]

_ERROR_TYPES = {429: "requests", 500: "server_error", 502: "server_error", 503: "server_error"}
_ERROR_CODES = {401: "invalid_api_key", 404: "model_not_found", 429: "rate_limit_exceeded"}
_IMAGE_SIGNATURES = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}
_DATA_URL = re.compile(r"^data:([\w.+-]+/[\w.+-]+);base64,(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)
    #: Defaults to a deterministic ``call_fake_...`` id.
    id: str | None = None


@dataclass(frozen=True)
class Reply:
    """A successful completion. Token counts default to estimates; `finish_reason` to
    ``tool_calls`` when there is a `ToolCall`, else ``stop``."""

    content: Sequence[str | ToolCall]
    reasoning: str | None = None
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int = 0
    #: Defaults to the model the request named.
    model: str | None = None


@dataclass(frozen=True)
class ApiError:
    """An error response in the API's shape; `type` and `code` default from the status."""

    status: int
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    param: str | None = None
    retry_after: float | None = None
    retry_after_ms: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError:
    """HTTP 200 whose stream sends `partial` content, then a chunk holding an ``error``
    object and no ``[DONE]``. Without streaming, a 500."""

    message: str = "The server had an error while processing your request."
    type: str = "server_error"
    code: str | None = None
    partial: Sequence[str | ToolCall] = ()


@dataclass(frozen=True)
class Truncated:
    """HTTP 200 whose stream sends `partial` content, then the connection drops."""

    partial: Sequence[str | ToolCall] = ()


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
        scheme, _, token = self.headers.get("authorization", "").partition(" ")
        return (token.strip() or None) if scheme.lower() == "bearer" else None


Outcome = str | Reply | ApiError | StreamError | Truncated | Disconnect
ScriptItem = Outcome | Callable[[RecordedRequest], Outcome]


def echo(request: RecordedRequest) -> Outcome:
    """Replies ``echo: <last user text>``: a default for a local stack."""
    for message in reversed(request.body.get("messages", [])):
        content = message.get("content")
        if message.get("role") in ("user", "tool"):
            if isinstance(content, list):
                content = "".join(p.get("text", "") for p in content if p.get("type") == "text")
            return f"echo: {content}"
    return "echo: "


@dataclass
class Answer:
    """What to send back: a status, headers and the body in chunks (SSE events are written
    one chunk at a time); `drop` closes the connection after the chunks without ending the
    body (before any response when there are none)."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    drop: bool = False

    @property
    def streaming(self) -> bool:
        return self.headers.get("content-type", "").startswith("text/event-stream")


class FakeOpenAI(ScriptedAnswers[ScriptItem]):
    """Plays `script` in order; when it runs out, `default` answers (an outcome or a
    function of the request), or else a 400 that names the exhausted script. With
    `api_key` set, a request without that bearer token is refused with a 401."""

    def __init__(
        self,
        script: Iterable[ScriptItem] = (),
        *,
        default: ScriptItem | None = None,
        api_key: str | None = None,
    ) -> None:
        super().__init__(script, default=default)
        self.requests: list[RecordedRequest] = []
        self.api_key = api_key
        self._ids = itertools.count(1)
        self._call_ids = itertools.count(1)

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        """The ``httpx2.MockTransport`` entry point (a dropped stream ends early)."""
        import httpx2

        answer = self.respond(
            request.method, request.url.path, request.headers.items(), request.content
        )
        if answer.drop and not answer.chunks:
            raise httpx2.ConnectError("fake openai: connection dropped", request=request)
        return httpx2.Response(answer.status, headers=answer.headers, content=b"".join(answer.chunks))

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
        if method != "POST" or not path.endswith("/chat/completions"):
            return _error(ApiError(404, f"Invalid URL ({method} {path})", code=""), number)
        if self.api_key is not None and request.api_key != self.api_key:
            message = "Incorrect API key provided." if request.api_key else (
                "You didn't provide an API key."
            )
            return _error(ApiError(401, message), number)
        if problem := _invalid(data):
            return _error(ApiError(400, problem[0], param=problem[1]), number)
        item = self._next_answer()
        if item is None:
            return _error(ApiError(400, "FakeOpenAI: the script is exhausted"), number)
        outcome = item(request) if callable(item) else item
        streaming = data.get("stream") is True
        if isinstance(outcome, Disconnect):
            return Answer(0, {}, [], drop=True)
        if isinstance(outcome, ApiError):
            return _error(outcome, number)
        if isinstance(outcome, StreamError | Truncated) and not streaming:
            return _error(ApiError(500, "The server had an error.", "server_error"), number)
        reply = (
            Reply(outcome.partial)
            if isinstance(outcome, StreamError | Truncated)
            else Reply([outcome]) if isinstance(outcome, str) else outcome
        )
        completion = self._completion(reply, data, number)
        headers = {"x-request-id": f"req_fake_{number:06d}", "openai-processing-ms": "1"}
        if not streaming:
            return Answer(200, {**headers, "content-type": "application/json"}, [_json(completion)])
        include_usage = (data.get("stream_options") or {}).get("include_usage") is True
        chunks = _stream(completion, reply.reasoning, include_usage)
        if isinstance(outcome, StreamError | Truncated):
            chunks = chunks[:-2 - include_usage]  # no finish_reason, usage or [DONE]
        if isinstance(outcome, StreamError):
            error = {"message": outcome.message, "type": outcome.type, "param": None, "code": outcome.code}
            chunks.append(_sse({"error": error}))
        headers |= {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
        return Answer(200, headers, chunks, drop=isinstance(outcome, Truncated))

    def _completion(self, reply: Reply, body: Json, number: int) -> Json:
        texts: list[str] = []
        calls: list[Json] = []
        for item in reply.content:
            if isinstance(item, str):
                texts.append(item)
                continue
            with self._lock:
                call_id = item.id or f"call_fake_{next(self._call_ids):06d}"
            arguments = json.dumps(dict(item.arguments), separators=(",", ":"))
            calls.append(
                {"id": call_id, "type": "function", "function": {"name": item.name, "arguments": arguments}}
            )
        message: Json = {"role": "assistant", "content": "".join(texts) or None, "refusal": None}
        if calls:
            message["tool_calls"] = calls
        if reply.reasoning:
            message["reasoning_content"] = reply.reasoning
        prompt = reply.prompt_tokens
        if prompt is None:
            prompt = max(1, len(json.dumps(body.get("messages"))) // 4)
        completion = reply.completion_tokens
        if completion is None:
            completion = max(1, len(json.dumps(message)) // 4)
        return {
            "id": f"chatcmpl-fake{number:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or body["model"],
            "system_fingerprint": "fp_fake",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": reply.finish_reason or ("tool_calls" if calls else "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": reply.cached_tokens, "audio_tokens": 0},
                "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
            },
        }


def _error(error: ApiError, number: int) -> Answer:
    request_id = f"req_fake_{number:06d}"
    code = error.code if error.code is not None else _ERROR_CODES.get(error.status)
    body = {
        "error": {
            "message": error.message or f"HTTP {error.status}",
            "type": error.type or _ERROR_TYPES.get(error.status, "invalid_request_error"),
            "param": error.param,
            "code": code or None,
        }
    }
    headers = {"content-type": "application/json", "x-request-id": request_id, **error.headers}
    if error.retry_after is not None:
        headers["retry-after"] = f"{error.retry_after:g}"
    if error.retry_after_ms is not None:
        headers["retry-after-ms"] = str(error.retry_after_ms)
    if error.status in (408, 409, 429) or error.status >= 500:
        headers.setdefault("x-should-retry", "true")
    return Answer(error.status, headers, [_json(body)])


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _sse(data: Json | str) -> bytes:
    return b"data: " + (data.encode() if isinstance(data, str) else _json(data)) + b"\n\n"


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _stream(completion: Json, reasoning: str | None, include_usage: bool) -> list[bytes]:
    """The event stream the API sends for `completion` (the last three or four chunks are
    the finish, the usage when asked for, and ``[DONE]``)."""
    choice = completion["choices"][0]
    message = choice["message"]
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"

    def chunk(delta: Json, finish: str | None = None) -> bytes:
        value = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        return _sse({**value, "usage": None} if include_usage else value)

    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"reasoning_content": piece}) for piece in _pieces(reasoning or "") if piece]
    chunks += [chunk({"content": piece}) for piece in _pieces(message["content"] or "") if piece]
    for index, call in enumerate(message.get("tool_calls", [])):
        start = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
        chunks.append(chunk({"tool_calls": [start]}))
        arguments = call["function"]["arguments"]
        for i in range(0, len(arguments), 12):
            piece = {"index": index, "function": {"arguments": arguments[i : i + 12]}}
            chunks.append(chunk({"tool_calls": [piece]}))
    chunks.append(chunk({}, choice["finish_reason"]))
    if include_usage:
        chunks.append(_sse({**base, "choices": [], "usage": completion["usage"]}))
    chunks.append(_sse("[DONE]"))
    return chunks


def _invalid(body: Any) -> tuple[str, str | None] | None:
    """The first reason (and the ``param``) for which the real API would refuse `body`."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request.", None
    if not body.get("model"):
        return "you must provide a model parameter", "model"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1.", "messages"
    if "stream_options" in body and body.get("stream") is not True:
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
    tools = body.get("tools")
    if "tool_choice" in body and not tools:
        return "Invalid value for 'tool_choice': 'tool_choice' is only allowed when 'tools' are specified.", "tool_choice"
    for i, tool in enumerate(tools or []):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or tool.get("type") != "function" or not function.get("name"):
            return f"Invalid 'tools[{i}]': expected a function tool with a name.", f"tools[{i}]"
    pending: list[str] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        role = message.get("role") if isinstance(message, dict) else None
        if role not in ("system", "developer", "user", "assistant", "tool"):
            return f"Invalid value for '{where}.role': {role!r}.", f"{where}.role"
        if role == "tool":
            if message.get("tool_call_id") not in pending:
                return (
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.", f"{where}.role"
                )
            pending.remove(message["tool_call_id"])
        elif pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                "responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(pending)}", "messages"
            )
        if problem := _invalid_content(message, role, where):
            return problem
        if role == "assistant":
            pending = [str(call.get("id")) for call in message.get("tool_calls") or []]
    return None


def _invalid_content(message: Json, role: str, where: str) -> tuple[str, str] | None:
    content = message.get("content")
    if role == "assistant":
        calls = message.get("tool_calls")
        if content is None and not calls:
            return f"Invalid value for '{where}.content': expected a string, got null.", f"{where}.content"
        for j, call in enumerate(calls or []):
            function = call.get("function") or {}
            if call.get("type") != "function" or not call.get("id") or not function.get("name"):
                return f"Missing required parameter: '{where}.tool_calls[{j}]'.", f"{where}.tool_calls"
            if not isinstance(function.get("arguments"), str):
                return f"Invalid type for '{where}.tool_calls[{j}].function.arguments': expected a string.", f"{where}.tool_calls"
        return None
    if isinstance(content, str):
        return None
    if not isinstance(content, list) or not content:
        return f"Invalid value for '{where}.content': expected a string or an array.", f"{where}.content"
    allowed = ("text", "image_url", "input_audio", "file") if role == "user" else ("text",)
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        at = f"{where}.content[{j}]"
        if kind not in allowed:
            return f"Invalid value: {kind!r}. Supported values are: {', '.join(map(repr, allowed))}.", f"{at}.type"
        if kind == "text" and not isinstance(part.get("text"), str):
            return f"Missing required parameter: '{at}.text'.", f"{at}.text"
        if kind == "image_url" and (problem := _invalid_image(part.get("image_url"), at)):
            return problem
        if kind == "file" and (problem := _invalid_file(part.get("file"), at)):
            return problem
    return None


def _invalid_image(image: Any, at: str) -> tuple[str, str] | None:
    url = image.get("url") if isinstance(image, dict) else None
    if not isinstance(url, str):
        return f"Missing required parameter: '{at}.image_url.url'.", f"{at}.image_url.url"
    if url.startswith(("http://", "https://")):
        return None
    match = _DATA_URL.match(url)
    signatures = _IMAGE_SIGNATURES.get(match.group(1)) if match else None
    if match is None or signatures is None:
        return "Invalid image URL: expected a URL or a base64 data URL of a PNG, JPEG, GIF or WebP image.", f"{at}.image_url.url"
    data = _decoded(match.group(2))
    if data is None or not data.startswith(signatures):
        return "You uploaded an unsupported image. Please make sure your image is valid.", f"{at}.image_url.url"
    return None


def _invalid_file(file: Any, at: str) -> tuple[str, str] | None:
    if not isinstance(file, dict) or not (file.get("file_data") or file.get("file_id")):
        return f"Missing required parameter: '{at}.file.file_data' or '{at}.file.file_id'.", f"{at}.file"
    if "file_data" in file:
        match = _DATA_URL.match(str(file["file_data"]))
        data = _decoded(match.group(2)) if match else None
        if match is None or match.group(1) != "application/pdf" or data is None or b"%PDF-" not in data[:1024]:
            return "Invalid file data: expected a base64 data URL of a PDF.", f"{at}.file.file_data"
        if not file.get("filename"):
            return f"Missing required parameter: '{at}.file.filename'.", f"{at}.file.filename"
    return None


def _decoded(data: str) -> bytes | None:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        return None


class FakeOpenAIServer(LoopbackServer):
    """`fake` on ``http://127.0.0.1:<free port>/v1``, from a thread; a context manager.
    `event_delay` pauses between SSE chunks so streaming can be watched."""

    thread_name = "fake-openai"
    poll_interval = 0.05

    def __init__(
        self, fake: FakeOpenAI | None = None, *, port: int = 0, event_delay: float = 0.0
    ) -> None:
        self.fake = fake or FakeOpenAI(default=echo)
        self.event_delay = event_delay
        super().__init__(port=port)

    @property
    def base_url(self) -> str:
        return self.address + "/v1"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # chunks are small writes: send each at once

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                answer = server.fake.respond(
                    self.command, urlsplit(self.path).path, self.headers.items(), body
                )
                try:
                    if answer.drop and not answer.chunks:
                        self._drop()
                        return
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if not answer.streaming:
                        self.send_header("content-length", str(sum(map(len, answer.chunks))))
                        self.end_headers()
                        self.wfile.write(b"".join(answer.chunks))
                        return
                    self.send_header("transfer-encoding", "chunked")
                    self.end_headers()
                    for data in answer.chunks:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                        self.wfile.flush()
                        if server.event_delay:
                            time.sleep(server.event_delay)
                    if answer.drop:
                        self._drop()
                        return
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _drop(self) -> None:
                self.close_connection = True
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)

            do_POST = do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake OpenAI Chat Completions API that echoes.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--event-delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeOpenAIServer(port=args.port, event_delay=args.event_delay) as running:
        print(f"OPENAI_BASE_URL={running.base_url}", flush=True)
        threading.Event().wait()
