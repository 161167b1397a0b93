"""The Python SDK: talk to deployed (or local) agents over HTTP, and stream over WebSocket.

    with AgentClient("https://abc.execute-api.eu-west-1.amazonaws.com", token="...") as client:
        reply = client.prompt("support-assistant", "T-42", "Where is my order?")
        print(reply.result.text if reply.result else reply.submission.status)

    async with AsyncAgentClient(url, ws_url=ws_url) as client:
        async with client.connect("support-assistant", "T-42") as conn:
            submission = await conn.prompt("Where is my order?")
            async for event in conn:
                if event.type == "text_delta":
                    print(event.text, end="")
                if event.type == "agent_end" and event.submission_id == submission.id:
                    break

`AgentClient` (httpx.Client) and `AsyncAgentClient` (httpx.AsyncClient) have the same
methods and return the wire models of `agent_runtime.protocol` (`PromptResponse`,
`Submission`, `DispatchReceipt`, `HistoryPage`, `EventsPage`, `AbortResponse`) and
`agent_runtime.protocol_files` (`FileView`, `FilesPage`, `VariablesList`, `VariableView`).
Both build each request from the same description (`_Call`), and each exchange of several
requests from the same generator (`Flow`), so they cannot drift apart. A `token` is
sent as ``Authorization: Bearer <token>`` over HTTP and as the ``token`` query parameter over
WebSocket, where browsers cannot set headers and agents' ``websocket`` hooks look for it.

An instance's files travel as bytes:

    client.put_file("support-assistant", "T-42", "/attachments/receipt.png", png)
    client.prompt("support-assistant", "T-42", "Is this valid?", attachments=["/attachments/receipt.png"])
    data = client.get_file("support-assistant", "T-42", "/attachments/receipt.png")

A file bigger than an API request may carry (`FILE_BODY_MAX_BYTES`) goes straight to S3:
`upload_file` (which `put_file` switches to) asks the API for a presigned URL, sends the
bytes there and completes the upload; `get_file` follows the API's redirect to S3 for a
big file. Requests to S3 carry none of the client's headers, so its token never leaves
for another host. ``variables`` lists what the agent declares; a secret's value goes in
with ``set_variable`` and never comes back out.

The WebSocket API is a separate endpoint (another host on AWS, another port locally), so
its URL is never derived from `base_url`: pass `ws_url`, or set ``AGENT_RUNTIME_WS_URL``
(the stack's ``WebSocketUrl`` output, or what ``agent-runtime dev`` prints). `connect`
needs the optional dependency ``websockets``: ``pip install 'agent-runtime[client]'``.

A `Connection` hands out an instance's events in offset order, each once. It subscribes
with `after` (None: from now), drops any event at or below the last offset it has seen (the
server may send one twice around a subscribe), reads over HTTP the events too large for a
frame and those it finds skipped (offsets are consecutive, so a skip is an event posted out
of order or not posted to this socket), and when the connection drops it reconnects with
backoff and subscribes again after the last offset seen, so the caller sees neither a gap
nor a duplicate. The HTTP reads need the agent's ``route`` hook, as every HTTP route does.

Errors: every reply outside 2xx raises an `AgentClientError` carrying the reply's status and
``{"error": {"type", "message", "details"?}}``; its class comes from the type, else the status.
Network failures stay httpx's (`httpx.TransportError`) on HTTP. S3's refusals of a presigned
request map the same way, their XML ``<Code>`` as the type (``AccessDenied`` for an expired
URL, a 403, so `Unauthorized`).

    AgentRuntimeError
    └── AgentClientError        status, type, message, details
        ├── InvalidRequest      400: invalid_json, invalid_request, missing_variables, unknown_variable
        │   ├── PayloadTooLarge 413: also file_too_large, files_quota_exceeded
        │   └── UnsupportedMediaType 415: a file's media type
        ├── Unauthorized        401, 403: refused by the agent's route or websocket hook
        ├── NotFound            404: agent_not_found, submission_not_found, file_not_found, variable_not_set
        ├── Conflict            409: an idempotency key or dispatch id reused with other input
        ├── RateLimited         429
        ├── ServerError         5xx
        └── ConnectionLost      no status: the WebSocket dropped and could not be reopened

The package, one part per module (import from the package; the modules are its layout):

- ``errors``: `AgentClientError` and its subclasses, `error_for`, `error_from_reply`,
  `error_from_storage`
- ``calls``: `_Call`, each HTTP request described once for both clients; `Flow`s
- ``http``: `AgentClient` and `AsyncAgentClient`
- ``connection``: the WebSocket `Connection`

``http`` imports ``connection`` (`connect` builds one); ``connection`` knows the async
client only as a type, so no module imports back up the chain.
"""

from __future__ import annotations

from agent_runtime.client.connection import (
    MAX_WS_MESSAGE_BYTES,
    WS_FRAGMENT_CHARS,
    WS_REPLAY_MAX,
    Connection,
)

# Not public: `tests/test_client.py` calls it here to check the error naming the extra.
# Patching it here would not reach `Connection`: patch `connection._websockets_connect`.
from agent_runtime.client.connection import _websockets_connect as _websockets_connect
from agent_runtime.client.errors import (
    AgentClientError,
    Conflict,
    ConnectionLost,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    Unauthorized,
    UnsupportedMediaType,
    error_for,
    error_from_reply,
    error_from_storage,
)
from agent_runtime.client.http import (
    DEFAULT_TIMEOUT,
    ENV_WS_URL,
    UPLOAD_CHUNK_BYTES,
    AgentClient,
    AsyncAgentClient,
)
from agent_runtime.protocol_files import FILE_BODY_MAX_BYTES

__all__ = [
    "DEFAULT_TIMEOUT",
    "ENV_WS_URL",
    "FILE_BODY_MAX_BYTES",
    "MAX_WS_MESSAGE_BYTES",
    "UPLOAD_CHUNK_BYTES",
    "WS_FRAGMENT_CHARS",
    "WS_REPLAY_MAX",
    "AgentClient",
    "AgentClientError",
    "AsyncAgentClient",
    "Conflict",
    "Connection",
    "ConnectionLost",
    "InvalidRequest",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "Unauthorized",
    "UnsupportedMediaType",
    "error_for",
    "error_from_reply",
    "error_from_storage",
]
