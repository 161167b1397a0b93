"""moto's server on loopback, with the connection reuse a real AWS endpoint allows.

moto's `ThreadedMotoServer` runs werkzeug's development server, which closes the connection
after every response and starts a thread for every connection. Each boto3 call of every
handler then opened a new TCP connection and made the server start a thread: in the local
stack that was close to half of the server process's CPU under load, more than moto's own
DynamoDB work. `MotoServer` serves the same moto application, but keeps HTTP/1.1 connections
open between requests (as AWS endpoints do), so a boto3 client's pooled connections and
their server threads are reused.

To keep a connection usable after a request, the request's body is always read whole before
moto sees it (moto and the journal gate read it whole anyway), and the answer is collected
and sent with its ``Content-Length``. moto also looked for its service modules on the disk
(a directory listing) on every request; `cache_module_list` remembers the list.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import socket
import threading
from typing import Any

from moto import backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer

__all__ = ["MotoServer", "cache_module_list"]

log = logging.getLogger(__name__)

#: Headers the server sets itself from the collected answer.
_FRAMING = frozenset({"content-length", "transfer-encoding", "connection"})


def cache_module_list() -> None:
    """moto lists its own package folder for every request to find a service by name; the
    folder does not change while the process runs. Idempotent."""
    if isinstance(backends.list_of_moto_modules, functools._lru_cache_wrapper):
        return
    modules = tuple(backends.list_of_moto_modules())
    cached = functools.lru_cache(maxsize=1)(lambda: modules)
    backends.list_of_moto_modules = cached  # type: ignore[assignment]


class _KeepAliveHandler(MotoRequestHandler):
    """moto's request handler (its environ keeps S3 metadata headers' spelling), answering
    with a ``Content-Length`` and keeping the connection open unless the client closes it."""

    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: without TCP_NODELAY the body would wait for the
    # client's delayed ACK of the headers (40 ms on Linux) on a connection kept open.
    disable_nagle_algorithm = True
    server: _Server

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body = self._read_body(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # De-chunked here: moto must read the body by its length (werkzeug ignores the length
        # of a request that still says it is chunked).
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        reply: list[Any] = []

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            reply[:] = [status, headers]
            return lambda data: None  # the legacy write() callable: moto does not use it

        try:
            result = self.server.app(environ, start_response)
            try:
                payload = b"".join(result)
            finally:
                if hasattr(result, "close"):
                    result.close()
        except Exception:
            log.exception("moto failed on %s %s", self.command, self.path)
            reply, payload = ["500 INTERNAL SERVER ERROR", []], b""
            self.close_connection = True
        status, headers = reply
        code, _, message = status.partition(" ")
        self.send_response(int(code), message)
        for name, value in headers:
            if name.lower() not in _FRAMING:
                self.send_header(name, value)
        if self.command == "HEAD" or int(code) in (204, 304) or 100 <= int(code) < 200:
            length = next((v for n, v in headers if n.lower() == "content-length"), None)
            if length is not None and self.command == "HEAD":
                self.send_header("Content-Length", length)
            payload = b""
        else:
            self.send_header("Content-Length", str(len(payload)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self, environ: dict[str, Any]) -> bytes:
        """The whole body: up to Content-Length, or every chunk (werkzeug de-chunks it)."""
        if environ.get("wsgi.input_terminated"):
            return bytes(environ["wsgi.input"].read())
        length = int(environ.get("CONTENT_LENGTH") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if logging.getLogger("werkzeug").isEnabledFor(logging.INFO):
            super().log_request(code, size)


class _Server(BaseWSGIServer):
    """werkzeug's server with a thread per connection (not per request), which remembers
    its open connections, so that `stop` can end the threads waiting on idle ones."""

    multithread = True
    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self._serve_connection, args=(request, client_address), daemon=True
        )
        thread.start()

    def _serve_connection(self, request: socket.socket, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            with self.connections_lock:
                self.connections.discard(request)
            self.shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class MotoServer:
    """moto on ``127.0.0.1:port`` (0: a free port) in a thread, as `ThreadedMotoServer` is
    used: `start`, `get_host_and_port`, `stop`; `_server` is the WSGI server (its ``app``
    may be wrapped)."""

    def __init__(self, ip_address: str = "127.0.0.1", port: int = 0) -> None:
        cache_module_list()
        app = DomainDispatcherApplication(create_backend_app)
        self._server = _Server(ip_address, port, app, handler=_KeepAliveHandler)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="moto-server", daemon=True
        )
        self._thread.start()

    def get_host_and_port(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Stop accepting, then end the connections still open (their threads exit)."""
        self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        self._server.close_connections()
