"""HTTP requests, described once (`_Call`) for both clients and for the connection's fetches.

A request that takes more than one round trip (a download that redirects to S3, a
presigned upload) is a `Flow`: a generator that yields each `_Call` and receives its
result, so its steps are written once and each client only drives it (`_run`).
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterable, Callable, Generator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeAlias, TypeVar
from urllib.parse import quote

import httpx

from agent_runtime.client.errors import error_from_reply, error_from_storage
from agent_runtime.files import media_type_for
from agent_runtime.protocol import (
    AbortResponse,
    DispatchReceipt,
    EventsPage,
    HistoryPage,
    PromptResponse,
    Submission,
)
from agent_runtime.protocol_catalog import (
    AgentDescription,
    AgentsList,
    InstancesPage,
    SubmissionsPage,
)
from agent_runtime.protocol_effects import EffectsList, EffectView
from agent_runtime.protocol_files import (
    FILE_BODY_MAX_BYTES,
    FilesPage,
    FileView,
    UploadTicket,
    VariablesList,
    VariableView,
)

T = TypeVar("T")
#: A request body sent as is: bytes, a binary file (read from where it stands), or chunks.
Content: TypeAlias = "bytes | IO[bytes] | Iterable[bytes] | AsyncIterable[bytes]"
#: Several requests in a row: yields each `_Call`, is sent its result, returns the outcome.
Flow: TypeAlias = Generator["_Call[Any]", Any, T]


def _path(*segments: str) -> str:
    return "/" + "/".join(quote(s, safe="") for s in segments)


def _instance(name: str, instance_id: str, *rest: str) -> str:
    return _path("agents", name, instance_id, *rest)


def _file(name: str, instance_id: str, path: str) -> str:
    """A file's route: its path (``/attachments/a.png``) follows ``/files``, each segment
    percent-encoded (the route takes the rest of the URL, API Gateway's ``{path+}``).

    ``.`` and ``..`` segments are encoded too: left as they are, the URL would be
    normalised on the way (``/a/../b`` becoming ``/b``, another file); encoded, they
    reach the API, which refuses them."""
    segments = (path if path.startswith("/") else f"/{path}").split("/")
    encoded = ("%2E" * len(s) if s in (".", "..") else quote(s, safe="") for s in segments)
    return _instance(name, instance_id, "files") + "/".join(encoded)


@dataclass(frozen=True)
class _Call(Generic[T]):
    """One HTTP request and how to read its reply: `parse` gets the JSON body of a reply
    whose status is in `ok` (the `httpx.Response` itself when `raw`); any other status raises.

    `path` is relative to the API, unless `external`: then it is a URL elsewhere (a
    presigned S3 URL), sent with `headers` only, never the client's (its token above all).
    """

    method: str
    path: str
    parse: Callable[[Any], T]
    ok: tuple[int, ...] = (200,)
    params: dict[str, str] | None = None
    body: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds the server may hold the request (long polls): the read timeout covers it.
    holds: float = 0.0
    #: The body as is (a file's bytes), instead of `body` as JSON.
    content: Content | None = None
    raw: bool = False
    external: bool = False

    def request(self, client: httpx.Client | httpx.AsyncClient, default: httpx.Timeout) -> httpx.Request:
        timeout = self.timeout(default)
        if self.external:
            return httpx.Request(
                self.method, self.path, content=self.content, headers=self.headers, extensions={"timeout": timeout.as_dict()}
            )
        return client.build_request(
            self.method, self.path, params=self.params, json=self.body, content=self.content, headers=self.headers, timeout=timeout
        )

    def result(self, response: httpx.Response) -> T:
        if response.status_code not in self.ok:
            if self.external:
                raise error_from_storage(response.status_code, response.content)
            raise error_from_reply(response.status_code, response.content)
        return self.parse(response if self.raw else response.json())

    def timeout(self, default: httpx.Timeout) -> httpx.Timeout:
        if default.read is not None and self.holds + 5 > default.read:
            return httpx.Timeout(default.connect, read=self.holds + 10, write=default.write, pool=default.pool)
        return default


def _prompt(
    name: str,
    instance_id: str,
    message: str,
    session: str,
    wait: float,
    idempotency_key: str | None,
    attachments: Sequence[str] = (),
    images: Sequence[tuple[str, bytes]] = (),
) -> _Call[PromptResponse]:
    headers = {"idempotency-key": idempotency_key} if idempotency_key is not None else {}
    body: dict[str, Any] = {"message": message, "session": session, "wait": wait}
    if attachments:
        body["attachments"] = list(attachments)
    if images:
        body["images"] = [{"media_type": kind, "data": base64.b64encode(data).decode()} for kind, data in images]
    return _Call(
        "POST", _instance(name, instance_id), PromptResponse.model_validate, ok=(200, 202), body=body, headers=headers, holds=wait
    )


def _submission(name: str, instance_id: str, submission_id: str) -> _Call[Submission]:
    return _Call("GET", _instance(name, instance_id, "submissions", submission_id), Submission.model_validate)


def _dispatch(name: str, instance_id: str, input: Any, session: str, dispatch_id: str | None) -> _Call[DispatchReceipt]:
    body: dict[str, Any] = {"input": input, "session": session}
    if dispatch_id is not None:
        body["dispatch_id"] = dispatch_id
    return _Call("POST", _instance(name, instance_id, "dispatch"), DispatchReceipt.model_validate, ok=(202,), body=body)


def _history(name: str, instance_id: str, session: str, limit: int, cursor: str | None) -> _Call[HistoryPage]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor is not None else {})}
    path = _instance(name, instance_id, "sessions", session, "messages")
    return _Call("GET", path, HistoryPage.model_validate, params=params)


def _events(name: str, instance_id: str, after: int, limit: int, wait: float) -> _Call[EventsPage]:
    params = {"after": str(after), "limit": str(limit), "wait": repr(float(wait))}
    return _Call("GET", _instance(name, instance_id, "events"), EventsPage.model_validate, params=params, holds=wait)


def _fetch(path: str) -> _Call[EventsPage]:
    """A ``fetch`` reference of an event frame: an events path relative to the HTTP API."""
    return _Call("GET", path, EventsPage.model_validate)


def _agents() -> _Call[AgentsList]:
    return _Call("GET", "/agents", AgentsList.model_validate)


def _describe(name: str) -> _Call[AgentDescription]:
    return _Call("GET", _path("agents", name), AgentDescription.model_validate)


def _instances(name: str, limit: int, cursor: str | None) -> _Call[InstancesPage]:
    params = {"limit": str(limit), **({"cursor": cursor} if cursor is not None else {})}
    return _Call("GET", _path("agents", name, "instances"), InstancesPage.model_validate, params=params)


def _submissions(name: str, instance_id: str, after: int, limit: int) -> _Call[SubmissionsPage]:
    params = {"after": str(after), "limit": str(limit)}
    return _Call("GET", _instance(name, instance_id, "submissions"), SubmissionsPage.model_validate, params=params)


def _abort(name: str, instance_id: str, queued: bool) -> _Call[AbortResponse]:
    params = {"queued": "true"} if queued else None
    return _Call("POST", _instance(name, instance_id, "abort"), AbortResponse.model_validate, params=params)


# --- files and variables ----------------------------------------------------------------


@dataclass(frozen=True)
class _Redirect:
    location: str


def _bytes_or_redirect(response: httpx.Response) -> bytes | _Redirect:
    if response.status_code == 307:
        return _Redirect(response.headers["location"])
    return response.content


def _nothing(response: httpx.Response) -> None:
    return None


def _put_file(name: str, instance_id: str, path: str, data: bytes, media_type: str | None) -> Flow[FileView]:
    if len(data) > FILE_BODY_MAX_BYTES:  # the API refuses it (413): through S3 instead
        return (yield from _upload_file(name, instance_id, path, data, len(data), media_type))
    headers = {"content-type": media_type} if media_type is not None else {}
    return (yield _Call("PUT", _file(name, instance_id, path), FileView.model_validate, content=data, headers=headers))


def _get_file(name: str, instance_id: str, path: str) -> Flow[bytes]:
    """The bytes, from the API or, for a big file, from the presigned S3 URL it redirects to."""
    reply = yield _Call("GET", _file(name, instance_id, path), _bytes_or_redirect, ok=(200, 307), raw=True)
    if isinstance(reply, _Redirect):
        data: bytes = yield _Call("GET", reply.location, _content, raw=True, external=True)
        return data
    assert isinstance(reply, bytes)
    return reply


def _content(response: httpx.Response) -> bytes:
    return response.content


def _delete_file(name: str, instance_id: str, path: str) -> _Call[None]:
    return _Call("DELETE", _file(name, instance_id, path), _nothing, ok=(204,), raw=True)


def _list_files(name: str, instance_id: str, prefix: str, after: str | None, limit: int) -> _Call[FilesPage]:
    params = {"prefix": prefix, "limit": str(limit), **({"after": after} if after is not None else {})}
    return _Call("GET", _instance(name, instance_id, "files"), FilesPage.model_validate, params=params)


def _upload_file(
    name: str, instance_id: str, path: str, content: Content, size: int, media_type: str | None
) -> Flow[FileView]:
    """A presigned upload: ask for the URL, PUT the bytes there, make them the file.

    The URL signs the content type and length, so both are sent exactly as declared; the
    media type, when not given, is guessed from the path as the API would guess it."""
    kind = media_type if media_type is not None else media_type_for(path, None)
    body = {"path": path, "media_type": kind, "size": size}
    ticket: UploadTicket = yield _Call(
        "POST", _instance(name, instance_id, "uploads"), UploadTicket.model_validate, ok=(201,), body=body
    )
    headers = {**ticket.headers, "content-length": str(size)}
    yield _Call(ticket.method, ticket.url, _nothing, ok=(200, 201, 204), content=content, headers=headers, raw=True, external=True)
    stored: FileView = yield _Call("POST", ticket.complete, FileView.model_validate)
    return stored


def _variables(name: str, instance_id: str) -> _Call[VariablesList]:
    return _Call("GET", _instance(name, instance_id, "variables"), VariablesList.model_validate)


def _set_variable(name: str, instance_id: str, variable: str, value: str) -> _Call[VariableView]:
    path = _instance(name, instance_id, "variables", variable)
    return _Call("PUT", path, VariableView.model_validate, body={"value": value})


def _delete_variable(name: str, instance_id: str, variable: str) -> _Call[None]:
    return _Call("DELETE", _instance(name, instance_id, "variables", variable), _nothing, ok=(204,), raw=True)


def _effects(name: str, instance_id: str, status: str | None) -> _Call[EffectsList]:
    params = {"status": status} if status else None
    return _Call("GET", _instance(name, instance_id, "effects"), EffectsList.model_validate, params=params)


def _cancel_effect(name: str, instance_id: str, effect_id: str) -> _Call[EffectView]:
    return _Call("DELETE", _instance(name, instance_id, "effects", effect_id), EffectView.model_validate)


def _size_of(content: bytes | IO[bytes]) -> int:
    """Bytes left to send: all of `bytes`, the rest of a file from where it stands."""
    if isinstance(content, bytes | bytearray | memoryview):
        return len(content)
    start = content.tell()
    end = content.seek(0, 2)
    content.seek(start)
    return end - start


def _headers(token: str | None) -> dict[str, str]:
    headers = {"user-agent": "agent-runtime-client/1", "accept": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _next_delay(delay: float) -> float:
    return min(delay * 1.5, 2.0)
