"""The SDK's errors: `AgentClientError` and its subclasses, and which one a reply raises.

The tree is drawn in the package's docstring (`agent_runtime.client`).
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from agent_runtime.errors import AgentRuntimeError


class AgentClientError(AgentRuntimeError):
    """A reply outside 2xx (or a WebSocket ``error`` frame): `status` (None when no reply
    came), the error's `type` and `message`, and its `details`."""

    def __init__(self, status: int | None, type: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details=details)
        self.status = status
        self.type = type

    def __str__(self) -> str:
        return f"{self.status or '-'} {self.type}: {self.message}"


class InvalidRequest(AgentClientError):
    """The request was refused as given (400): fix it, do not retry it."""


class PayloadTooLarge(InvalidRequest):
    """Over a documented size limit (413)."""


class UnsupportedMediaType(InvalidRequest):
    """A file's media type is malformed or not accepted for files (415)."""


class Unauthorized(AgentClientError):
    """The agent's hook refused the credentials (401 or 403)."""


class NotFound(AgentClientError):
    """No such agent (or one not exposed on this surface), submission, file or set
    variable (404)."""


class Conflict(AgentClientError):
    """An idempotency key or dispatch id was used before with other input (409)."""


class RateLimited(AgentClientError):
    """Throttled (429): retry later."""


class ServerError(AgentClientError):
    """The server failed (5xx): the request may or may not have taken effect."""


class ConnectionLost(AgentClientError):
    """The WebSocket connection dropped and could not be reopened (or was closed)."""


_BY_TYPE: dict[str, type[AgentClientError]] = {
    "invalid_json": InvalidRequest,
    "invalid_request": InvalidRequest,
    "payload_too_large": PayloadTooLarge,
    "file_too_large": PayloadTooLarge,
    "files_quota_exceeded": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "not_found": NotFound,
    "agent_not_found": NotFound,
    "submission_not_found": NotFound,
    "child_not_found": NotFound,
    "file_not_found": NotFound,
    "variable_not_set": NotFound,
    "conflict": Conflict,
}
_BY_STATUS: dict[int, type[AgentClientError]] = {
    400: InvalidRequest,
    401: Unauthorized,
    403: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: RateLimited,
}


def error_for(status: int, type: str, message: str, details: dict[str, Any] | None = None) -> AgentClientError:
    """The `AgentClientError` subclass for an error: by its type first, then by status."""
    cls = _BY_TYPE.get(type) or _BY_STATUS.get(status) or (ServerError if status >= 500 else AgentClientError)
    return cls(status, type, message, details)


def error_from_reply(status: int, body: bytes | str) -> AgentClientError:
    """An error from a reply's status and body. The runtime's own errors have the
    ``{"error": {...}}`` shape; a hook's or API Gateway's may be ``{"error": "text"}``,
    ``{"message": "text"}`` or not JSON at all: the type then comes from the status."""
    fallback = httpx.codes.get_reason_phrase(status).lower().replace(" ", "_") or f"http_{status}"
    try:
        data = json.loads(body)
    except ValueError:
        text = body.decode(errors="replace") if isinstance(body, bytes) else body
        return error_for(status, fallback, text[:500] or fallback)
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        details = error.get("details") if isinstance(error.get("details"), dict) else None
        return error_for(status, error["type"], str(error.get("message", "")), details)
    if isinstance(error, str):
        return error_for(status, fallback, error)
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return error_for(status, fallback, data["message"])
    return error_for(status, fallback, json.dumps(data)[:500])


_S3_CODE = re.compile(rb"<Code>([^<]{1,100})</Code>")
_S3_MESSAGE = re.compile(rb"<Message>([^<]{0,500})</Message>")


def error_from_storage(status: int, body: bytes) -> AgentClientError:
    """An error from S3 answering a presigned URL: its XML ``<Code>`` is the type (an
    expired URL is a 403 ``AccessDenied``, a body of another size ``SignatureDoesNotMatch``)."""
    code, message = _S3_CODE.search(body), _S3_MESSAGE.search(body)
    if code is None:
        return error_from_reply(status, body)
    text = message.group(1).decode(errors="replace") if message else code.group(1).decode(errors="replace")
    return error_for(status, code.group(1).decode(errors="replace"), f"S3: {text}")


__all__ = [
    "AgentClientError",
    "Conflict",
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
