"""API Gateway's ``@connections`` management API over HTTP, for the WebSocket API emulator.

`ManagementServer` is a threaded HTTP server answering what boto3's
``apigatewaymanagementapi`` client sends to ``{endpoint_url}/@connections/{id}`` (the endpoint
ends with the stage, as API Gateway's ``https://{domain}/{stage}`` does): ``POST`` (body = the
data), ``GET`` and ``DELETE``, each handed to a `Connections` (the emulator). A refusal is a
`ManagementApiError`, sent the way API Gateway sends it: the status from the service model
(410 ``GoneException``, 413 ``PayloadTooLargeException``, 429 ``LimitExceededException``, 403
``ForbiddenException``) with the code in ``x-amzn-ErrorType``, which botocore turns into
``client.exceptions.<code>``. A path outside the stage's ``@connections`` is 403, as API
Gateway answers. Signatures are not checked.
"""

from __future__ import annotations

import json
import logging
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any, Protocol
from urllib.parse import unquote

from agent_runtime.dev.apigw_http import ClosableHTTPServer
from agent_runtime.errors import AgentRuntimeError

__all__ = ["Connections", "ManagementApiError", "ManagementServer"]

log = logging.getLogger(__name__)

_BODY_LIMIT = 16 * 1024 * 1024  # a request body past this is not read


class ManagementApiError(AgentRuntimeError):
    """A ``@connections`` call API Gateway would refuse: `status` and botocore's `code`."""

    type = "management_api_error"

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message, details={"status": status, "code": code})
        self.status = status
        self.code = code


class Connections(Protocol):
    """What the server serves: the stage's connections (`WebSocketApiEmulator`)."""

    stage: str

    def post_to_connection(self, connection_id: str, data: bytes) -> None: ...

    def get_connection(self, connection_id: str) -> dict[str, Any]: ...

    def delete_connection(self, connection_id: str) -> None: ...


class ManagementServer(ClosableHTTPServer):
    """Listens when made (``port`` 0 picks one); serves once `serve_forever` runs."""

    def __init__(self, address: tuple[str, int], *, connections: Connections) -> None:
        self.connections = connections
        super().__init__(address, _ManagementHandler)


class _ManagementHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "agent-runtime-dev"
    sys_version = ""
    timeout = 120
    server: ManagementServer

    def _dispatch(self) -> None:
        connections = self.server.connections
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._send(400, {"message": "Bad Request"}, "BadRequestException")
            self.close_connection = True
            return
        if length > _BODY_LIMIT:
            self._send(413, {"message": "Request Entity Too Large"}, "PayloadTooLargeException")
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        prefix = f"/{connections.stage}/@connections/"
        path = self.path.split("?", 1)[0]
        connection_id = unquote(path[len(prefix) :]) if path.startswith(prefix) else ""
        if not connection_id or "/" in connection_id:
            self._send(403, {"message": "Forbidden"}, "ForbiddenException")
            return
        try:
            if self.command == "POST":
                connections.post_to_connection(connection_id, body)
                self._send(200, None)
            elif self.command == "GET":
                self._send(200, connections.get_connection(connection_id))
            elif self.command == "DELETE":
                connections.delete_connection(connection_id)
                self._send(204, None)
            else:
                self._send(403, {"message": "Forbidden"}, "ForbiddenException")
        except ManagementApiError as exc:
            self._send(exc.status, {"message": exc.message}, exc.code)
        log.debug("@connections %s %s", self.command, connection_id)

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = _dispatch

    def _send(self, status: int, payload: Any, error_type: str | None = None) -> None:
        body = b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        if error_type is not None:
            self.send_header("x-amzn-ErrorType", error_type)
        self.end_headers()
        self.wfile.write(body)

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - " + format, self.client_address[0], *args)
