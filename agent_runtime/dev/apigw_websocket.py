"""An API Gateway WebSocket API on loopback that calls a Lambda handler, with its ``@connections``.

Clients connect to `url`, ``ws://127.0.0.1:<port>/<stage>`` (stage ``local`` unless told), with
any query string (``?agent=support&id=t-1&token=...``). Only the stage path is served: another
path is refused with 403 ``{"message":"Forbidden"}``, as API Gateway refuses an unknown stage.
The handler (a ``"module:function"`` string, run by `LocalFunction` as the HTTP API's is) gets
the events API Gateway sends a Lambda proxy integration, one function for every route:

- ``$connect``, during the opening handshake: the request's headers (as sent, plus the
  ``X-Forwarded-*`` and ``X-Amzn-Trace-Id`` API Gateway adds) and query string, single- and
  multi-valued. A ``statusCode`` outside 2xx refuses the handshake with that status and the
  handler's ``body``; a handler error, a timeout or a malformed response refuses it with 500
  ``{"message":"Internal server error"}``; a 2xx, or a result without ``statusCode``, accepts,
  with the ``Sec-WebSocket-Protocol`` of its ``headers`` if any (a browser offering
  subprotocols needs one back). The connection is not established until the handshake is
  answered, so posting to it from its own ``$connect`` fails with 410, as API Gateway answers.
- ``$default``, for every message, one at a time per connection and in order (API Gateway
  may invoke concurrently; locally the order is kept, which makes runs repeatable). Text is the
  ``body``. API Gateway refuses binary frames and closes with 1003, and so does the emulator
  unless ``binary_frames="deliver"``, which passes them base64-encoded with
  ``isBase64Encoded: true``. What the handler returns is not sent to the client: API Gateway
  sends it only when the route has a route response, which the deployed API does not
  configure; replies go through ``@connections``. A failed invocation is reported to the
  client as API Gateway reports it: ``{"message": "Internal server error", "connectionId":
  ..., "requestId": ...}`` (``"Endpoint request timed out"`` after `integration_timeout`).
- ``$disconnect``, once the connection is closed by either side, with ``disconnectStatusCode``
  and ``disconnectReason``; what it returns is ignored.

API Gateway's limits apply: a frame over 32 KB or a message over 128 KB closes the connection
with 1009 (a longer message must be sent in fragments, as API Gateway requires); a connection
idle for `idle_timeout` (10 minutes) or open for `max_connection_seconds` (2 hours) is closed
with 1001. Incoming messages and posts both count as activity.

The management API is served over plain HTTP at `callback_url`,
``http://127.0.0.1:<management_port>/<stage>``: the ``endpoint_url`` of boto3's
``apigatewaymanagementapi`` client (the local stack puts it in
``settings.ENV_WEBSOCKET_ENDPOINT``, as the deployed stack does), served by
`apigw_management`. ``POST`` sends the data as a text frame when it is UTF-8, else as a binary
one; ``GET`` describes the connection; ``DELETE`` closes it (1000). An unknown or closed id is
410 ``GoneException``, data over 128 KB 413 ``PayloadTooLargeException``, a client that does
not read within `send_timeout` 429 ``LimitExceededException``.

It is a second port, unlike API Gateway's one domain: the WebSocket server (``websockets``)
parses only GET requests, and a small threaded HTTP server serves POST and DELETE simply and
robustly. Handlers therefore take the endpoint from the environment rather than build it from
``domainName``, as the deployed handlers do.

Threads: the WebSocket server runs an asyncio loop in a thread of its own; invocations run in a
pool of `max_concurrency` threads; the management API has its own threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import unquote

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from agent_runtime.dev.apigw_management import ManagementApiError, ManagementServer
from agent_runtime.dev.apigw_websocket_events import (
    ConnectionInfo,
    StageInfo,
    build_connect_event,
    build_disconnect_event,
    build_message_event,
    chosen_subprotocol,
    connect_refusal,
    handshake_response,
    new_connection_id,
)
from agent_runtime.dev.lambda_runtime import Handler, Invocation, Isolation, LocalFunction
from agent_runtime.errors import AgentRuntimeError

__all__ = [
    "FRAME_LIMIT",
    "IDLE_TIMEOUT",
    "MAX_CONNECTION_SECONDS",
    "MESSAGE_LIMIT",
    "WEBSOCKET_TIMEOUT",
    "ManagementApiError",
    "WebSocketApiEmulator",
    "WebSocketApiError",
]

log = logging.getLogger(__name__)

WEBSOCKET_TIMEOUT = 29.0  # API Gateway's integration timeout for WebSocket APIs
FRAME_LIMIT = 32 * 1024
MESSAGE_LIMIT = 128 * 1024
IDLE_TIMEOUT = 10 * 60.0
MAX_CONNECTION_SECONDS = 2 * 60 * 60.0
BinaryFrames = Literal["close", "deliver"]

_GOING_AWAY = (int(CloseCode.GOING_AWAY), "Going away")
_DELETED = (int(CloseCode.NORMAL_CLOSURE), "Connection Closed Normally")


class WebSocketApiError(AgentRuntimeError):
    """The emulator cannot serve (a port is taken, for one)."""

    type = "websocket_api_error"


def _gone(connection_id: str) -> ManagementApiError:
    return ManagementApiError(410, "GoneException", f"connection {connection_id} is gone")


def _iso_time(epoch: float) -> str:
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


# -- the emulator -------------------------------------------------------------------------


@dataclass(eq=False)
class _Live:
    """One accepted connection while it is open."""

    info: ConnectionInfo
    socket: ServerConnection | None = None
    last_active: float = field(default_factory=time.time)
    opened: float = field(default_factory=time.monotonic)
    idle_since: float = field(default_factory=time.monotonic)
    closing: tuple[int, str] | None = None  # set when this side closes it
    subprotocol: str | None = None  # what $connect answered in Sec-WebSocket-Protocol

    def touch(self) -> None:
        self.last_active = time.time()
        self.idle_since = time.monotonic()


class WebSocketApiEmulator:
    """Serve a WebSocket API on ``ws://127.0.0.1:<port>/<stage>``; `port=0` picks a free port,
    and so does `management_port=0` for `callback_url`."""

    def __init__(
        self,
        handler: str | Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        management_port: int = 0,
        stage: str = "local",
        integration_timeout: float = WEBSOCKET_TIMEOUT,
        function_timeout: float | None = None,
        function_name: str = "agent-runtime-websocket",
        memory_mb: int = 1024,
        api_id: str = "local",
        region: str = "us-east-1",
        isolation: Isolation = "process",
        max_concurrency: int = 10,
        idle_timeout: float = IDLE_TIMEOUT,
        max_connection_seconds: float = MAX_CONNECTION_SECONDS,
        max_message_bytes: int = MESSAGE_LIMIT,
        max_frame_bytes: int = FRAME_LIMIT,
        binary_frames: BinaryFrames = "close",
        send_timeout: float = 10.0,
        stop_grace: float = 5.0,
    ) -> None:
        self.host = host
        self.port = port
        self.management_port = management_port
        self.stage = stage
        self.integration_timeout = integration_timeout
        self.api_id = api_id
        self.idle_timeout = idle_timeout
        self.max_connection_seconds = max_connection_seconds
        self.max_message_bytes = max_message_bytes
        self.max_frame_bytes = max_frame_bytes
        self.binary_frames = binary_frames
        self.send_timeout = send_timeout
        self.stop_grace = stop_grace
        self.function = LocalFunction(
            handler=handler,
            name=function_name,
            timeout=integration_timeout if function_timeout is None else function_timeout,
            memory_mb=memory_mb,
            region=region,
            isolation=isolation,
            max_concurrency=max_concurrency,
        )
        self._listener: socket.socket | None = None
        self._management: ManagementServer | None = None
        self._management_thread: threading.Thread | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._open: dict[str, _Live] = {}
        self._accepted: weakref.WeakKeyDictionary[ServerConnection, _Live] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}/{self.stage}"

    @property
    def callback_url(self) -> str:
        """The management API's endpoint (API Gateway's ``https://{domain}/{stage}``)."""
        return f"http://{self.host}:{self.management_port}/{self.stage}"

    @property
    def stage_info(self) -> StageInfo:
        return StageInfo(
            stage=self.stage, domain_name=f"{self.host}:{self.port}", api_id=self.api_id
        )

    @property
    def connection_ids(self) -> list[str]:
        """The connections open now."""
        with self._lock:
            return [i for i, live in self._open.items() if live.closing is None]

    def bind(self) -> None:
        """Listen on both ports without serving yet, so `url` and `callback_url` are known
        before the handlers' environment is made. `start()` binds if this was not called."""
        if self._listener is not None:
            return
        try:
            listener = socket.create_server((self.host, self.port))
        except OSError as exc:
            raise WebSocketApiError(
                f"cannot listen on {self.host}:{self.port} for the WebSocket API: {exc.strerror} "
                "(agent-runtime dev --ws-port PORT picks another)"
            ) from exc
        try:
            management = ManagementServer((self.host, self.management_port), connections=self)
        except OSError as exc:
            listener.close()
            raise WebSocketApiError(
                f"cannot listen on {self.host}:{self.management_port}: {exc.strerror}"
            ) from exc
        self._listener, self._management = listener, management
        self.port = int(listener.getsockname()[1])
        self.management_port = int(management.server_address[1])

    def start(self) -> None:
        """Init the handler (`HandlerImportError` if it fails), then serve."""
        self.bind()
        try:
            self.function.load()
            self._executor = ThreadPoolExecutor(
                max_workers=self.function.max_concurrency, thread_name_prefix="websocket-api"
            )
            assert self._management is not None
            self._management_thread = threading.Thread(
                target=self._management.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="websocket-api-management",
                daemon=True,
            )
            self._management_thread.start()
            started: Future[None] = Future()
            self._thread = threading.Thread(
                target=lambda: asyncio.run(self._main(started)), name="websocket-api", daemon=True
            )
            self._thread.start()
            started.result(timeout=30)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Close every connection (``$disconnect`` is delivered, within `stop_grace`), stop
        serving, stop the execution environments."""
        loop, stopping = self._loop, self._stopping
        if loop is not None and stopping is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(stopping.set)
        if self._thread is not None:
            self._thread.join(self.stop_grace + 5)
        if self._management is not None:
            if self._management_thread is not None:
                self._management.shutdown()
                self._management_thread.join()
            self._management.close_connections()
            self._management.server_close()
        if self._listener is not None:
            self._listener.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._listener = self._management = self._management_thread = None
        self._thread = self._loop = self._stopping = self._executor = None
        with self._lock:
            self._open.clear()
        self.function.close()

    def __enter__(self) -> WebSocketApiEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the management API (any thread) --------------------------------------------------

    def post_to_connection(self, connection_id: str, data: bytes) -> None:
        """Send `data` to the client: a text frame when it is UTF-8, else a binary one."""
        if len(data) > self.max_message_bytes:
            raise ManagementApiError(413, "PayloadTooLargeException", "Message too long")
        live, loop = self._live(connection_id), self._loop
        if live.socket is None or loop is None:
            raise _gone(connection_id)
        try:
            message: str | bytes = data.decode("utf-8")
        except UnicodeDecodeError:
            message = data
        future = asyncio.run_coroutine_threadsafe(live.socket.send(message), loop)
        try:
            future.result(self.send_timeout)
        except ConnectionClosed:
            raise _gone(connection_id) from None
        except TimeoutError:
            future.cancel()
            raise ManagementApiError(
                429, "LimitExceededException", "the client is not reading"
            ) from None
        live.touch()

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        """The ``GetConnection`` answer, as it travels on the wire."""
        live = self._live(connection_id)
        return {
            "connectedAt": _iso_time(live.info.connected_at),
            "identity": {"sourceIp": live.info.source_ip, "userAgent": live.info.user_agent},
            "lastActiveAt": _iso_time(live.last_active),
        }

    def delete_connection(self, connection_id: str) -> None:
        """Close the connection (code 1000); ``$disconnect`` follows."""
        with self._lock:
            live = self._open.get(connection_id)
            if live is None or live.closing is not None:
                raise _gone(connection_id)
            live.closing = _DELETED
        if live.socket is not None and self._loop is not None:
            asyncio.run_coroutine_threadsafe(live.socket.close(*_DELETED), self._loop)

    def _live(self, connection_id: str) -> _Live:
        with self._lock:
            live = self._open.get(connection_id)
        if live is None or live.closing is not None:
            raise _gone(connection_id)
        return live

    # -- the WebSocket server (its own event loop) ----------------------------------------

    async def _main(self, started: Future[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            server: Server = await serve(
                self._serve,
                sock=self._listener,
                process_request=self._on_connect,
                process_response=self._on_response,
                compression=None,  # API Gateway does not negotiate permessage-deflate
                ping_interval=None,  # nor ping its clients
                open_timeout=self.integration_timeout + 5,
                close_timeout=5,
                max_size=(self.max_message_bytes, self.max_frame_bytes),
                server_header="agent-runtime-dev",
            )
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        await self._stopping.wait()
        with self._lock:
            for live in self._open.values():
                live.closing = live.closing or _GOING_AWAY
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.stop_grace):
                await server.wait_closed()

    async def _invoke(self, event: dict[str, Any]) -> Invocation:
        invoke = functools.partial(self.function.invoke, event, wait=self.integration_timeout)
        executor = self._executor
        try:
            if executor is None:
                raise RuntimeError("the emulator is stopping")
            return await asyncio.get_running_loop().run_in_executor(executor, invoke)
        except RuntimeError as exc:  # stopped while connections were still closing
            return Invocation("error", "", 0.0, error=exc)

    async def _on_connect(self, connection: ServerConnection, request: Request) -> Response | None:
        path, _, query = request.path.partition("?")
        if unquote(path).rstrip("/") != f"/{self.stage}":
            return handshake_response(403, [], b'{"message":"Forbidden"}')
        if "websocket" not in ",".join(request.headers.get_all("Upgrade")).lower():
            return None  # not an upgrade: websockets answers 426 without a $connect
        started = time.monotonic()
        user_agents = request.headers.get_all("User-Agent")
        info = ConnectionInfo(
            connection_id=new_connection_id(),
            source_ip=str(connection.remote_address[0]),
            user_agent=user_agents[0] if user_agents else "",
            connected_at=time.time(),
        )
        event = build_connect_event(
            self.stage_info,
            info,
            headers=request.headers.raw_items(),
            query=query,
            server_port=self.port,
        )
        invocation = await self._invoke(event)
        refusal = connect_refusal(invocation)
        log.info(
            "$connect %s -> %d (%.0f ms)",
            info.connection_id,
            refusal.status_code if refusal is not None else 101,
            (time.monotonic() - started) * 1000,
        )
        if refusal is None:
            self._accepted[connection] = _Live(info, subprotocol=chosen_subprotocol(invocation))
        return refusal

    def _on_response(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> None:
        live = self._accepted.get(connection)
        if live is not None and live.subprotocol and response.status_code == 101:
            response.headers["Sec-WebSocket-Protocol"] = live.subprotocol

    async def _serve(self, connection: ServerConnection) -> None:
        live = self._accepted.pop(connection, None)
        if live is None:
            return
        live.socket = connection
        with self._lock:
            self._open[live.info.connection_id] = live
        try:
            await self._read(live, connection)
        finally:
            with self._lock:
                self._open.pop(live.info.connection_id, None)
            await self._disconnect(live, connection)

    async def _read(self, live: _Live, connection: ServerConnection) -> None:
        """Deliver messages one at a time until the connection closes or times out."""
        while True:
            now = time.monotonic()
            deadline = min(
                live.idle_since + self.idle_timeout, live.opened + self.max_connection_seconds
            )
            if now >= deadline:
                await self._close(live, connection, *_GOING_AWAY)
                return
            try:
                async with asyncio.timeout(deadline - now):
                    message = await connection.recv()
            except TimeoutError:
                continue  # a post may have moved the idle deadline: look again
            except ConnectionClosed:
                return
            live.touch()
            if isinstance(message, bytes) and self.binary_frames == "close":
                await self._close(live, connection, 1003, "Binary frames are not supported")
                return
            await self._deliver(live, connection, message)

    async def _deliver(
        self, live: _Live, connection: ServerConnection, message: str | bytes
    ) -> None:
        event = build_message_event(self.stage_info, live.info, message)
        invocation = await self._invoke(event)
        if invocation.outcome == "ok":
            return
        text = "Endpoint request timed out" if invocation.outcome == "timeout" else None
        report = {
            "message": text or "Internal server error",
            "connectionId": live.info.connection_id,
            "requestId": event["requestContext"]["requestId"],
        }
        with contextlib.suppress(ConnectionClosed):
            await connection.send(json.dumps(report))

    async def _close(
        self, live: _Live, connection: ServerConnection, code: int, reason: str
    ) -> None:
        with self._lock:
            live.closing = live.closing or (code, reason)
        await connection.close(code, reason)

    async def _disconnect(self, live: _Live, connection: ServerConnection) -> None:
        await connection.wait_closed()
        code, reason = self._disconnect_status(live, connection)
        event = build_disconnect_event(self.stage_info, live.info, status_code=code, reason=reason)
        invocation = await self._invoke(event)
        log.info(
            "$disconnect %s (%d %s) -> %s",
            live.info.connection_id,
            code,
            reason,
            invocation.outcome,
        )

    @staticmethod
    def _disconnect_status(live: _Live, connection: ServerConnection) -> tuple[int, str]:
        protocol = connection.protocol
        received, sent = protocol.close_rcvd, protocol.close_sent
        if received is not None and protocol.close_rcvd_then_sent:
            if received.code == CloseCode.NO_STATUS_RCVD:
                return int(received.code), "Client-side close frame status not set"
            return int(received.code), received.reason
        if live.closing is not None:
            return live.closing
        if sent is not None:
            return int(sent.code), sent.reason or "Going away"
        return int(CloseCode.ABNORMAL_CLOSURE), "Connection closed abnormally"
