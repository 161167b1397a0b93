"""A local fake of Amazon Bedrock Runtime's ``Converse`` and ``ConverseStream`` that a real
boto3 client talks to (moto's ``bedrockruntime`` does not implement Converse)::

    fake = FakeBedrock(["Hello!", Reply([ToolUse("search", {"q": "x"})])])
    with FakeBedrockServer(fake) as server:
        client = boto3.client(
            "bedrock-runtime", endpoint_url=server.endpoint_url, region_name="us-east-1"
        )

It serves on 127.0.0.1 (a free port) from a thread; a stack that only reads the
environment can be pointed at it with ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME``.

``POST /model/{modelId}/converse`` is answered with the JSON ``ConverseResponse``.
``POST /model/{modelId}/converse-stream`` is answered ``200`` with
``application/vnd.amazon.eventstream``, one event per HTTP chunk, each framed as the AWS
event stream encoding has it: a 12-byte prelude (total length, headers length, both
big-endian uint32, and the CRC32 of those 8 bytes), string headers (``:event-type``,
``:content-type`` = ``application/json``, ``:message-type`` = ``event``), the JSON payload,
and the CRC32 of everything before it. The events are those Bedrock sends: ``messageStart``;
per content block ``contentBlockStart`` (tool use only) / ``contentBlockDelta`` (text,
``reasoningContent`` text then signature, or tool input as partial JSON) /
``contentBlockStop``; ``messageStop``; ``metadata`` (usage and metrics). Payloads carry
Bedrock's ``p`` padding field too, which clients must ignore.

Replies and errors are played from a script in order: `Reply` (or a ``str``), `ApiError`
(an HTTP error with Bedrock's ``x-amzn-ErrorType`` header, optionally ``retry-after``),
`StreamError` (an exception message, ``:message-type`` = ``exception``, after some
content), `Disconnect` (the connection drops, before any response or mid-stream). Every
request is recorded in `FakeBedrock.requests`. Before the script is consulted the fake
checks what Bedrock checks first: a SigV4 ``authorization`` header for the ``bedrock``
service, and the request rules a client is likely to break
(`agent_runtime.testing.converse_rules`); a broken
rule is a ``ValidationException`` with Bedrock's wording where it is known.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote, urlsplit

from agent_runtime.testing.converse_rules import converse_problem
from agent_runtime.testing.loopback import LoopbackServer, ScriptedAnswers

__all__ = [
    "Answer",
    "ApiError",
    "Disconnect",
    "FakeBedrock",
    "FakeBedrockServer",
    "Outcome",
    "Reasoning",
    "RecordedRequest",
    "Reply",
    "ScriptItem",
    "StreamError",
    "Text",
    "ToolUse",
    "echo",
    "encode_message",
    "event_message",
    "exception_message",
]

#: The HTTP status of each error code (Bedrock Runtime's service model).
STATUS = {
    "ValidationException": 400,
    "AccessDeniedException": 403,
    "MissingAuthenticationTokenException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "InternalServerException": 500,
    "ServiceUnavailableException": 503,
}
_PATH = re.compile(r"^/model/([^/]+)/(converse|converse-stream)$")
_SIGV4 = re.compile(r"AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/[^/]+/bedrock/aws4_request")
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Reasoning:
    text: str
    signature: str | None = "fake-signature"


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    #: Defaults to a deterministic ``tooluse_fake_...`` id.
    id: str | None = None


Block = Text | Reasoning | ToolUse


@dataclass(frozen=True)
class Reply:
    """A successful answer. A ``str`` in `content` is a `Text`; token counts default to
    estimates; `stop_reason` defaults to ``tool_use`` when there is a `ToolUse`."""

    content: Sequence[Block | str]
    stop_reason: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_input_tokens: int | None = None
    cache_write_input_tokens: int | None = None


@dataclass(frozen=True)
class ApiError:
    """An HTTP error response; `status` defaults from the code (`STATUS`, else 400)."""

    code: str
    message: str | None = None
    status: int | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StreamError:
    """HTTP 200 whose event stream carries `partial` content, then an exception message of
    `type` (an event name of ``ConverseStreamOutput``, e.g. ``throttlingException``). To
    ``Converse``, the same error as an HTTP error."""

    type: str = "modelStreamErrorException"
    message: str = "The model stream failed. Retry your request."
    partial: Sequence[Block | str] = ()


@dataclass(frozen=True)
class Disconnect:
    """The connection drops: before any response, or (streaming, with `partial`) after
    the events of that content, with no end to the chunked body."""

    partial: Sequence[Block | str] = ()


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    #: Lower-cased names.
    headers: dict[str, str]
    #: The decoded JSON body (None when it was not JSON). Blobs are base64 text.
    body: Any
    #: ``Converse`` or ``ConverseStream`` (None for another path).
    operation: str | None = None
    model_id: str | None = None

    @property
    def region(self) -> str | None:
        """The region of the SigV4 credential scope the request was signed for."""
        scope = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", self.headers.get("authorization", ""))
        return scope.group(1) if scope else None


Outcome = str | Reply | ApiError | StreamError | Disconnect
ScriptItem = Outcome | Callable[[RecordedRequest], Outcome]


def echo(request: RecordedRequest) -> Outcome:
    """Replies ``echo: <the last user turn's text>``: a default for a local stack."""
    for message in reversed(request.body.get("messages", [])):
        if message.get("role") == "user":
            texts = [b["text"] for b in message.get("content", []) if "text" in b]
            return f"echo: {' '.join(texts)}"
    return "echo: "


@dataclass
class Answer:
    """What to send back: a status, headers and the body in chunks (chunked transfer
    encoding when `chunked`, one chunk each), or a dropped connection (`disconnect`:
    before anything; `drop`: after the chunks)."""

    status: int
    headers: dict[str, str]
    chunks: list[bytes]
    chunked: bool = False
    disconnect: bool = False
    drop: bool = False


# --- event stream framing -------------------------------------------------------------


def encode_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One message of the AWS event stream encoding, with string (type 7) headers."""
    encoded = b""
    for name, value in headers.items():
        name_bytes, value_bytes = name.encode(), value.encode()
        encoded += struct.pack(">B", len(name_bytes)) + name_bytes
        encoded += struct.pack(">BH", 7, len(value_bytes)) + value_bytes
    prelude = struct.pack(">II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_message(event_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {":event-type": event_type, ":content-type": "application/json"}
    return encode_message({**headers, ":message-type": "event"}, _json(body))


def exception_message(exception_type: str, body: Mapping[str, Any]) -> bytes:
    headers = {":exception-type": exception_type, ":content-type": "application/json"}
    return encode_message({**headers, ":message-type": "exception"}, _json(body))


# --- the fake -------------------------------------------------------------------------


class FakeBedrock(ScriptedAnswers[ScriptItem]):
    """Plays `script` in order; when it runs out, `default` answers (an outcome or a
    function of the request), or else a ValidationException naming the exhausted script."""

    def __init__(
        self, script: Iterable[ScriptItem] = (), *, default: ScriptItem | None = None
    ) -> None:
        super().__init__(script, default=default)
        self.requests: list[RecordedRequest] = []
        self._ids = itertools.count(1)
        self._tool_ids = itertools.count(1)

    def respond(
        self, method: str, path: str, header_pairs: Iterable[tuple[str, str]], body: bytes
    ) -> Answer:
        """Record the request and decide the answer."""
        try:
            data: Any = json.loads(body) if body else None
        except ValueError:
            data = None
        headers = {k.lower(): v for k, v in header_pairs}
        match = _PATH.match(path)
        operation = model_id = None
        if match is not None:
            operation = "ConverseStream" if match[2] == "converse-stream" else "Converse"
            model_id = unquote(match[1])
        request = RecordedRequest(method, path, headers, data, operation, model_id)
        with self._lock:
            self.requests.append(request)
            number = next(self._ids)
        if method != "POST" or operation is None:
            missing = f"no route for {method} {path}"
            return _error(ApiError("ResourceNotFoundException", missing), number)
        if not _SIGV4.match(headers.get("authorization", "")):
            unsigned = "Missing Authentication Token"
            return _error(ApiError("MissingAuthenticationTokenException", unsigned), number)
        if problem := converse_problem(data):
            return _error(ApiError("ValidationException", problem), number)
        item = self._next_answer()
        if item is None:
            exhausted = "FakeBedrock: the script is exhausted"
            return _error(ApiError("ValidationException", exhausted), number)
        outcome = item(request) if callable(item) else item
        streaming = operation == "ConverseStream"
        if isinstance(outcome, Disconnect) and not (streaming and outcome.partial):
            return Answer(0, {}, [], disconnect=True)
        if isinstance(outcome, ApiError):
            return _error(outcome, number)
        if isinstance(outcome, StreamError) and not streaming:
            code = outcome.type[:1].upper() + outcome.type[1:]
            return _error(ApiError(code, outcome.message), number)
        if isinstance(outcome, StreamError | Disconnect):
            reply = Reply(outcome.partial)
        else:
            reply = Reply([outcome]) if isinstance(outcome, str) else outcome
        content = self._content(reply)
        calls = any("toolUse" in block for block in content)
        stop_reason = reply.stop_reason or ("tool_use" if calls else "end_turn")
        usage = _usage(reply, data, content)
        request_id = f"fake-{number:08d}"
        if not streaming:
            answer = {
                "output": {"message": {"role": "assistant", "content": content}},
                "stopReason": stop_reason,
                "usage": usage,
                "metrics": {"latencyMs": 1},
            }
            headers = {"content-type": "application/json", "x-amzn-requestid": request_id}
            return Answer(200, headers, [_json(answer)])
        chunks = _events(content, stop_reason, usage)
        if isinstance(outcome, StreamError | Disconnect):  # no messageStop / metadata
            chunks = chunks[:-2]
        if isinstance(outcome, StreamError):
            chunks.append(exception_message(outcome.type, {"message": outcome.message}))
        headers = {
            "content-type": "application/vnd.amazon.eventstream",
            "x-amzn-requestid": request_id,
        }
        return Answer(200, headers, chunks, chunked=True, drop=isinstance(outcome, Disconnect))

    def _content(self, reply: Reply) -> list[dict[str, Any]]:
        content: list[dict[str, Any]] = []
        for block in reply.content:
            if isinstance(block, str | Text):
                content.append({"text": block if isinstance(block, str) else block.text})
            elif isinstance(block, Reasoning):
                reasoning: dict[str, Any] = {"text": block.text}
                if block.signature is not None:
                    reasoning["signature"] = block.signature
                content.append({"reasoningContent": {"reasoningText": reasoning}})
            else:
                with self._lock:
                    call_id = block.id or f"tooluse_fake_{next(self._tool_ids):06d}"
                use = {"toolUseId": call_id, "name": block.name, "input": block.input}
                content.append({"toolUse": use})
        return content


def _error(error: ApiError, number: int) -> Answer:
    headers = {
        "content-type": "application/json",
        "x-amzn-requestid": f"fake-{number:08d}",
        "x-amzn-errortype": f"{error.code}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        **error.headers,
    }
    if error.retry_after is not None:
        headers["retry-after"] = f"{error.retry_after:g}"
    status = error.status or STATUS.get(error.code, 400)
    return Answer(status, headers, [_json({"message": error.message or error.code})])


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _usage(reply: Reply, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
    prompt = json.dumps(body.get("messages")) + json.dumps(body.get("system", ""))
    inputs = reply.input_tokens if reply.input_tokens is not None else max(1, len(prompt) // 4)
    outputs = reply.output_tokens
    outputs = outputs if outputs is not None else max(1, len(json.dumps(content)) // 4)
    usage = {"inputTokens": inputs, "outputTokens": outputs, "totalTokens": inputs + outputs}
    if reply.cache_read_input_tokens is not None:
        usage["cacheReadInputTokens"] = reply.cache_read_input_tokens
    if reply.cache_write_input_tokens is not None:
        usage["cacheWriteInputTokens"] = reply.cache_write_input_tokens
    return usage


def _pieces(text: str) -> list[str]:
    return re.findall(r"\S+\s*|\s+", text) or [text]


def _events(content: list[dict[str, Any]], stop_reason: str, usage: dict[str, int]) -> list[bytes]:
    """The event stream Bedrock sends for `content` (each payload padded by ``p``, as
    Bedrock's are); the last two are ``messageStop`` and ``metadata``."""
    bodies: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(content):
        deltas: list[dict[str, Any]]
        if "text" in block:
            deltas = [{"text": piece} for piece in _pieces(block["text"])]
        elif "reasoningContent" in block:
            reasoning = block["reasoningContent"]["reasoningText"]
            deltas = [{"reasoningContent": {"text": p}} for p in _pieces(reasoning["text"])]
            if "signature" in reasoning:
                deltas.append({"reasoningContent": {"signature": reasoning["signature"]}})
        else:
            tool = block["toolUse"]
            start = {"toolUse": {"toolUseId": tool["toolUseId"], "name": tool["name"]}}
            bodies.append(("contentBlockStart", {"start": start, "contentBlockIndex": index}))
            arguments = json.dumps(tool["input"], separators=(",", ":"))
            pieces = [arguments[i : i + 12] for i in range(0, len(arguments), 12)]
            deltas = [{"toolUse": {"input": piece}} for piece in pieces]
        bodies += [("contentBlockDelta", {"delta": d, "contentBlockIndex": index}) for d in deltas]
        bodies.append(("contentBlockStop", {"contentBlockIndex": index}))
    bodies.append(("messageStop", {"stopReason": stop_reason}))
    bodies.append(("metadata", {"usage": usage, "metrics": {"latencyMs": 1}}))
    return [
        event_message(kind, {**body, "p": _PADDING[: 1 + n % len(_PADDING)]})
        for n, (kind, body) in enumerate(bodies)
    ]


# --- the server -----------------------------------------------------------------------


class FakeBedrockServer(LoopbackServer):
    """`fake` on ``http://127.0.0.1:<free port>``, from a thread; a context manager.
    `event_delay` pauses between streamed events so streaming can be watched."""

    thread_name = "fake-bedrock"
    poll_interval = 0.01

    def __init__(
        self, fake: FakeBedrock | None = None, *, port: int = 0, event_delay: float = 0.0
    ) -> None:
        self.fake = fake or FakeBedrock(default=echo)
        self.event_delay = event_delay
        super().__init__(port=port)

    @property
    def endpoint_url(self) -> str:
        return self.address

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake, delay = self.fake, self.event_delay

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # events are small writes: send each at once

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                path = urlsplit(self.path).path
                answer = fake.respond(self.command, path, self.headers.items(), body)
                if answer.disconnect:
                    self.close_connection = True
                    return
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if answer.chunked:
                        self.send_header("transfer-encoding", "chunked")
                    else:
                        self.send_header("content-length", str(sum(map(len, answer.chunks))))
                    self.end_headers()
                    for chunk in answer.chunks:
                        framed = b"%x\r\n%s\r\n" % (len(chunk), chunk) if answer.chunked else chunk
                        self.wfile.write(framed)
                        self.wfile.flush()
                        if delay and answer.chunked:
                            time.sleep(delay)
                    if answer.drop:  # no terminating chunk: the body ends short
                        self.close_connection = True
                        return
                    if answer.chunked:
                        self.wfile.write(b"0\r\n\r\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_POST = do_GET = do_PUT = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Serve a fake Bedrock Converse API that echoes.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--event-delay", type=float, default=0.0)
    args = parser.parse_args()
    with FakeBedrockServer(port=args.port, event_delay=args.event_delay) as server:
        print(f"AWS_ENDPOINT_URL_BEDROCK_RUNTIME={server.endpoint_url}", flush=True)
        threading.Event().wait()
