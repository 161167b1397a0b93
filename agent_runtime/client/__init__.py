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
`Submission`, `DispatchReceipt`, `HistoryPage`, `EventsPage`, `AbortResponse`). Both build
each request from the same description (`_Call`), so they cannot drift apart. A `token` is
sent as ``Authorization: Bearer <token>`` over HTTP and as the ``token`` query parameter over
WebSocket, where browsers cannot set headers and agents' ``websocket`` hooks look for it.

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
Network failures stay httpx's (`httpx.TransportError`) on HTTP.

    AgentRuntimeError
    └── AgentClientError        status, type, message, details
        ├── InvalidRequest      400: invalid_json, invalid_request
        │   └── PayloadTooLarge 413
        ├── Unauthorized        401, 403: refused by the agent's route or websocket hook
        ├── NotFound            404: agent_not_found, submission_not_found
        ├── Conflict            409: an idempotency key or dispatch id reused with other input
        ├── RateLimited         429
        ├── ServerError         5xx
        └── ConnectionLost      no status: the WebSocket dropped and could not be reopened

The package, one part per module (import from the package; the modules are its layout):

- ``errors``: `AgentClientError` and its subclasses, `error_for`, `error_from_reply`
- ``calls``: `_Call`, each HTTP request described once for both clients
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
    error_for,
    error_from_reply,
)
from agent_runtime.client.http import DEFAULT_TIMEOUT, ENV_WS_URL, AgentClient, AsyncAgentClient

__all__ = [
    "DEFAULT_TIMEOUT",
    "ENV_WS_URL",
    "MAX_WS_MESSAGE_BYTES",
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
    "error_for",
    "error_from_reply",
]
