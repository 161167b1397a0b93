"""An API Gateway HTTP API on loopback that calls a Lambda handler in this process.

Every HTTP request becomes a payload format 2.0 event (`apigw_events.build_http_event`), the
handler (a ``"module:function"`` string) is called with a Lambda-like context, and its answer
is turned back into HTTP by the 2.0 response rules. What API Gateway itself would answer, the
emulator answers the same way:

- a body over `max_body_bytes` (API Gateway's 10 MB): 413 ``{"message":"Request Entity Too
  Large"}``, and the same when the event would exceed Lambda's 6 MB request payload;
- no answer within `integration_timeout` (API Gateway's 30 s): 503
  ``{"message":"Service Unavailable"}``; a handler error, a Lambda timeout shorter than that,
  or a malformed or oversized response: 500 ``{"message":"Internal Server Error"}``;
- with `routes` and no ``$default`` route (`default_route=False`), an unmatched request: 404
  ``{"message":"Not Found"}``.

``GET /health`` is answered by the emulator itself (200 ``{"status":"ok"}``), for scripts that
wait for the stack. Every response carries an ``apigw-requestid`` header like API Gateway's.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

from agent_runtime.dev.apigw_events import (
    HttpResponse,
    Route,
    build_http_event,
    error_response,
    http_response,
    new_request_id,
    select_route,
)
from agent_runtime.dev.lambda_runtime import Handler, Isolation, LocalFunction
from agent_runtime.errors import AgentRuntimeError

__all__ = ["API_GATEWAY_BODY_LIMIT", "API_GATEWAY_TIMEOUT", "HttpApiEmulator", "HttpApiError"]

log = logging.getLogger(__name__)

API_GATEWAY_BODY_LIMIT = 10 * 1024 * 1024
API_GATEWAY_TIMEOUT = 30.0
_DRAIN_LIMIT = 64 * 1024 * 1024  # an oversized body up to this size is read before the 413
_SKIPPED_RESPONSE_HEADERS = {"content-length", "connection", "transfer-encoding", "date", "server"}


class HttpApiError(AgentRuntimeError):
    """The emulator cannot serve (its port is taken, for one)."""

    type = "http_api_error"


class HttpApiEmulator:
    """Serve an HTTP API on ``http://127.0.0.1:<port>``; `port=0` picks a free port."""

    def __init__(
        self,
        handler: str | Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        routes: Sequence[str] = (),
        default_route: bool = True,
        integration_timeout: float = API_GATEWAY_TIMEOUT,
        function_timeout: float | None = None,
        function_name: str = "agent-runtime-http-api",
        memory_mb: int = 1024,
        max_body_bytes: int = API_GATEWAY_BODY_LIMIT,
        api_id: str = "local",
        region: str = "us-east-1",
        isolation: Isolation = "process",
        max_concurrency: int = 10,
    ) -> None:
        self.host = host
        self.port = port
        self.routes = [Route.parse(key) for key in routes]
        self.default_route = default_route
        self.integration_timeout = integration_timeout
        self.max_body_bytes = max_body_bytes
        self.api_id = api_id
        self.function = LocalFunction(
            handler=handler,
            name=function_name,
            timeout=integration_timeout if function_timeout is None else function_timeout,
            memory_mb=memory_mb,
            region=region,
            isolation=isolation,
            max_concurrency=max_concurrency,
        )
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Init the handler (`HandlerImportError` if it fails), then serve; `port` then holds
        the bound port."""
        self.function.load()
        try:
            self._server = _Server((self.host, self.port), _RequestHandler, emulator=self)
        except OSError as exc:
            self.function.close()
            raise HttpApiError(
                f"cannot listen on {self.host}:{self.port} for the HTTP API: {exc.strerror} "
                "(agent-runtime dev --port PORT picks another)"
            ) from exc
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="http-api",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close open connections, stop the execution environments.
        Requests in progress are abandoned."""
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None
        self.function.close()

    def __enter__(self) -> HttpApiEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def respond(
        self,
        *,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
        protocol: str,
        request_id: str,
    ) -> HttpResponse:
        """What API Gateway answers to one request whose body has been read."""
        path = target.split("?", 1)[0]
        route_key, params = "$default", None
        if self.routes:
            chosen = select_route(self.routes, method, unquote(path))
            if chosen is not None:
                route_key, params = chosen[0].key, chosen[1] or None
            elif not self.default_route:
                return error_response(404, "Not Found")
        event = build_http_event(
            method=method,
            target=target,
            headers=headers,
            body=body,
            source_ip=source_ip,
            server_port=self.port,
            protocol=protocol,
            route_key=route_key,
            path_parameters=params,
            api_id=self.api_id,
            account_id=self.function.account_id,
            request_id=request_id,
        )
        invocation = self.function.invoke(event, wait=self.integration_timeout)
        if invocation.outcome == "ok":
            return http_response(invocation.result)
        if invocation.outcome == "rejected":
            return error_response(413, "Request Entity Too Large")
        if invocation.outcome == "timeout" and self.integration_timeout <= self.function.timeout:
            return error_response(503, "Service Unavailable")
        return error_response(500, "Internal Server Error")


class ClosableHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that can wake its idle keep-alive connections on stop."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        try:
            super().finish_request(request, client_address)
        finally:
            with self._open_lock:
                self._open.discard(request)

    def close_connections(self) -> None:
        """Wake keep-alive connections blocked on a read so their threads end."""
        with self._open_lock:
            for connection in self._open:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)


class _Server(ClosableHTTPServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        *,
        emulator: HttpApiEmulator,
    ) -> None:
        self.emulator = emulator
        super().__init__(address, handler)


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agent-runtime-dev"
    sys_version = ""
    timeout = 120  # seconds an idle keep-alive connection stays open
    server: _Server

    @property
    def emulator(self) -> HttpApiEmulator:
        return self.server.emulator

    def handle_expect_100(self) -> bool:
        # Refuse an oversized upload before the client sends it.
        if self._declared_length() > self.emulator.max_body_bytes:
            self._send(
                error_response(413, "Request Entity Too Large"), new_request_id(), close=True
            )
            return False
        return super().handle_expect_100()

    def _dispatch(self) -> None:
        started = time.monotonic()
        request_id = new_request_id()
        if self.command in ("GET", "HEAD") and self.path.split("?", 1)[0] == "/health":
            self._send(
                HttpResponse(200, [("content-type", "application/json")], b'{"status":"ok"}'),
                request_id,
            )
            return
        try:
            body = self._read_body(self.emulator.max_body_bytes)
        except ValueError:
            self._send(error_response(400, "Bad Request"), request_id, close=True)
            return
        if body is None:
            self._send(error_response(413, "Request Entity Too Large"), request_id, close=True)
            return
        response = self.emulator.respond(
            method=self.command,
            target=self.path,
            headers=list(self.headers.items()),
            body=body,
            source_ip=self.client_address[0],
            protocol=self.request_version,
            request_id=request_id,
        )
        self._send(response, request_id)
        log.info(
            "%s %s -> %d (%.0f ms)",
            self.command,
            self.path,
            response.status,
            (time.monotonic() - started) * 1000,
        )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def _declared_length(self) -> int:
        try:
            return int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return 0

    def _read_body(self, limit: int) -> bytes | None:
        """The request body; None when it is over `limit`; ValueError when malformed."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline(1024).split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(1024).strip():  # trailers
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline(1024)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError("negative Content-Length")
        if length > limit:
            if length <= _DRAIN_LIMIT:
                # Read what the client is sending so it gets to read the 413 response.
                while length > 0:
                    chunk = self.rfile.read(min(length, 1 << 20))
                    if not chunk:
                        break
                    length -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _send(self, response: HttpResponse, request_id: str, *, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers:
            if name.lower() not in _SKIPPED_RESPONSE_HEADERS:
                self.send_header(name, value)
        self.send_header("content-length", str(len(response.body)))
        self.send_header("apigw-requestid", request_id)
        if close:
            self.send_header("connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.client_address[0], *args)
