"""The HTTP clients: `AgentClient` (blocking) and `AsyncAgentClient` (asyncio, plus `connect`)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import IO, Any
from urllib.parse import urlencode

import httpx

from agent_runtime.client.calls import (
    Flow,
    T,
    _abort,
    _agents,
    _Call,
    _cancel_effect,
    _delete_file,
    _delete_variable,
    _describe,
    _dispatch,
    _effects,
    _events,
    _get_file,
    _headers,
    _history,
    _instances,
    _list_files,
    _next_delay,
    _prompt,
    _put_file,
    _set_variable,
    _size_of,
    _submission,
    _submissions,
    _upload_file,
    _variables,
)
from agent_runtime.client.connection import Connection
from agent_runtime.protocol import (
    DEFAULT_SESSION,
    MAX_WAIT_SECONDS,
    AbortResponse,
    DispatchReceipt,
    EventsPage,
    HistoryMessage,
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
from agent_runtime.protocol_files import FilesPage, FileView, VariablesList, VariableView

ENV_WS_URL = "AGENT_RUNTIME_WS_URL"
#: API Gateway gives an integration 30 s: a request waiting 25 s is answered by then.
DEFAULT_TIMEOUT = httpx.Timeout(35.0, connect=5.0)
#: How much of a file the async client reads at a time when it uploads one.
UPLOAD_CHUNK_BYTES = 1024 * 1024


# --- the synchronous client -----------------------------------------------------------------


class AgentClient:
    """A blocking client of the HTTP API. ``with AgentClient(url, token) as client: ...``

    `timeout` applies to every request; one that the server may hold (a prompt's `wait`,
    an events long poll) gets a read timeout covering it. `transport` replaces the network
    (``httpx.MockTransport`` in tests).
    """

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ws_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or os.environ.get(ENV_WS_URL) or None
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.Client(base_url=self.base_url, headers=_headers(token), timeout=self._timeout, transport=transport)

    def __enter__(self) -> AgentClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        return call.result(self._http.send(call.request(self._http, self._timeout)))

    def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(self._send(call))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    def prompt(
        self,
        name: str,
        id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        wait: float = MAX_WAIT_SECONDS,
        idempotency_key: str | None = None,
        attachments: Sequence[str] = (),
        images: Sequence[tuple[str, bytes]] = (),
    ) -> PromptResponse:
        """Prompt an instance and wait up to `wait` seconds (at most 25) for the answer.

        Settled in time: ``submission.status == "settled"``, with `result` when the
        outcome is ``completed`` (else ``submission.error``). Otherwise only `submission`:
        follow it with `wait`. The same `idempotency_key` and message return the first
        submission, so a retry after a network failure is safe.

        `attachments` are paths of the instance's files (``put_file`` them first);
        `images` are small ``(media_type, bytes)`` images sent inline (PNG, JPEG, GIF or
        WebP), which the runtime stores under ``/attachments/`` first. At most 20 in all,
        and the request's JSON (the images in base64) at most 1 MiB.
        """
        return self._send(_prompt(name, id, message, session, wait, idempotency_key, attachments, images))

    def dispatch(
        self, name: str, id: str, input: Any, *, session: str = DEFAULT_SESSION, dispatch_id: str | None = None
    ) -> DispatchReceipt:
        """Queue any JSON `input` for the instance without waiting. The same `dispatch_id`
        and input return the first receipt; other input with it raises `Conflict`."""
        return self._send(_dispatch(name, id, input, session, dispatch_id))

    def submission(self, name: str, id: str, submission_id: str) -> Submission:
        return self._send(_submission(name, id, submission_id))

    def wait(self, name: str, id: str, submission_id: str, timeout: float = 60.0, *, poll: float = 0.2) -> Submission:
        """Poll the submission until it settles or `timeout` seconds pass; returns the
        latest read either way (check ``status``)."""
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            submission = self.submission(name, id, submission_id)
            left = deadline - time.monotonic()
            if submission.status == "settled" or left <= 0:
                return submission
            time.sleep(min(delay, left))
            delay = _next_delay(delay)

    def history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        """One page of a session's messages, oldest first; pass `next_cursor` on."""
        return self._send(_history(name, id, session, limit, cursor))

    def iter_history(self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100) -> Iterator[HistoryMessage]:
        """Every message of a session, oldest first, reading `limit` per request."""
        cursor: str | None = None
        while True:
            page = self.history(name, id, session, limit=limit, cursor=cursor)
            yield from page.messages
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def events(self, name: str, id: str, *, after: int = 0, limit: int = 100, wait: float = 0) -> EventsPage:
        """The instance's events after offset `after`; with `wait`, the server holds the
        request up to that many seconds for one to land. Pass `last` as the next `after`."""
        return self._send(_events(name, id, after, limit, wait))

    def abort(self, name: str, id: str, *, queued: bool = False) -> AbortResponse:
        """Ask the running submission to stop (and the queued ones, with `queued`)."""
        return self._send(_abort(name, id, queued))

    def agents(self) -> AgentsList:
        """The agents this client's credentials reach (each agent's route hook decides)."""
        return self._send(_agents())

    def describe(self, name: str) -> AgentDescription:
        """An agent as defined: tools, subagents, handoffs, skills, variables (names only)."""
        return self._send(_describe(name))

    def instances(self, name: str, *, limit: int = 50, cursor: str | None = None) -> InstancesPage:
        """One page of an agent's instances, latest admission first; pass `next_cursor` on."""
        return self._send(_instances(name, limit, cursor))

    def submissions(self, name: str, id: str, *, after: int = -1, limit: int = 50) -> SubmissionsPage:
        """One page of an instance's submissions in admission order; pass `next` as `after`."""
        return self._send(_submissions(name, id, after, limit))

    # --- files and variables -----------------------------------------------------------

    def put_file(self, name: str, id: str, path: str, data: bytes, *, media_type: str | None = None) -> FileView:
        """Write the instance's file at `path` (``/attachments/a.png``); replaces one there.

        Without `media_type` the API guesses it from the path's extension. Over
        `FILE_BODY_MAX_BYTES` (the most an API request carries) this is `upload_file`.
        """
        return self._run(_put_file(name, id, path, data, media_type))

    def upload_file(
        self, name: str, id: str, path: str, data: bytes | IO[bytes], *, media_type: str | None = None
    ) -> FileView:
        """Write a file of any size (up to 100 MB) straight to S3 with a presigned upload.

        `data` is bytes, or a binary file sent from where it stands to its end, in
        chunks. The S3 request carries none of this client's headers (not its token).
        Without `media_type` it is guessed from the path as the API guesses it.
        """
        return self._run(_upload_file(name, id, path, data, _size_of(data), media_type))

    def get_file(self, name: str, id: str, path: str) -> bytes:
        """The file's bytes; a big file comes from the presigned S3 URL the API redirects
        to, requested without this client's token."""
        return self._run(_get_file(name, id, path))

    def list_files(
        self, name: str, id: str, prefix: str = "/", *, after: str | None = None, limit: int = 100
    ) -> FilesPage:
        """One page of the files under `prefix`, in path order; pass `next` as `after`."""
        return self._send(_list_files(name, id, prefix, after, limit))

    def iter_files(self, name: str, id: str, prefix: str = "/", *, limit: int = 100) -> Iterator[FileView]:
        """Every file under `prefix`, in path order, reading `limit` per request."""
        after: str | None = None
        while True:
            page = self.list_files(name, id, prefix, after=after, limit=limit)
            yield from page.files
            if page.next is None:
                return
            after = page.next

    def delete_file(self, name: str, id: str, path: str) -> None:
        """Delete the file; `NotFound` (``file_not_found``) when there is none."""
        self._send(_delete_file(name, id, path))

    def variables(self, name: str, id: str) -> VariablesList:
        """Every variable the agent declares, set or not; a secret's value is never sent."""
        return self._send(_variables(name, id))

    def set_variable(self, name: str, id: str, variable: str, value: str) -> VariableView:
        """Set a declared variable (a secret is stored encrypted and never shown again)."""
        return self._send(_set_variable(name, id, variable, value))

    def delete_variable(self, name: str, id: str, variable: str) -> None:
        """Unset a variable; `NotFound` (``variable_not_set``) when it was not set."""
        self._send(_delete_variable(name, id, variable))

    def effects(self, name: str, id: str, *, status: str | None = None) -> EffectsList:
        """The instance's effects, soonest due first (``status="scheduled"``: those to run)."""
        return self._send(_effects(name, id, status))

    def cancel_effect(self, name: str, id: str, effect_id: str) -> EffectView:
        """Cancel a scheduled effect; `Conflict` once it fired, `NotFound` for an unknown id."""
        return self._send(_cancel_effect(name, id, effect_id))


# --- the asynchronous client ----------------------------------------------------------------


class AsyncAgentClient:
    """`AgentClient` for asyncio, plus `connect` for the WebSocket surface."""

    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        *,
        ws_url: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.ws_url = ws_url or os.environ.get(ENV_WS_URL) or None
        self.token = token
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_headers(token), timeout=self._timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncAgentClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        if call.content is not None and hasattr(call.content, "read"):  # a file: read off the loop
            call = dataclasses.replace(call, content=_chunks(call.content))  # type: ignore[arg-type]
        return call.result(await self._http.send(call.request(self._http, self._timeout)))

    async def _run(self, flow: Flow[T]) -> T:
        try:
            call = next(flow)
            while True:
                call = flow.send(await self._send(call))
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]

    async def prompt(
        self,
        name: str,
        id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        wait: float = MAX_WAIT_SECONDS,
        idempotency_key: str | None = None,
        attachments: Sequence[str] = (),
        images: Sequence[tuple[str, bytes]] = (),
    ) -> PromptResponse:
        """See `AgentClient.prompt`."""
        return await self._send(_prompt(name, id, message, session, wait, idempotency_key, attachments, images))

    async def dispatch(
        self, name: str, id: str, input: Any, *, session: str = DEFAULT_SESSION, dispatch_id: str | None = None
    ) -> DispatchReceipt:
        """See `AgentClient.dispatch`."""
        return await self._send(_dispatch(name, id, input, session, dispatch_id))

    async def submission(self, name: str, id: str, submission_id: str) -> Submission:
        return await self._send(_submission(name, id, submission_id))

    async def wait(self, name: str, id: str, submission_id: str, timeout: float = 60.0, *, poll: float = 0.2) -> Submission:  # noqa: ASYNC109
        """See `AgentClient.wait`."""
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            submission = await self.submission(name, id, submission_id)
            left = deadline - time.monotonic()
            if submission.status == "settled" or left <= 0:
                return submission
            await asyncio.sleep(min(delay, left))
            delay = _next_delay(delay)

    async def history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        """See `AgentClient.history`."""
        return await self._send(_history(name, id, session, limit, cursor))

    async def iter_history(
        self, name: str, id: str, session: str = DEFAULT_SESSION, *, limit: int = 100
    ) -> AsyncIterator[HistoryMessage]:
        """See `AgentClient.iter_history`."""
        cursor: str | None = None
        while True:
            page = await self.history(name, id, session, limit=limit, cursor=cursor)
            for message in page.messages:
                yield message
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def events(self, name: str, id: str, *, after: int = 0, limit: int = 100, wait: float = 0) -> EventsPage:
        """See `AgentClient.events`."""
        return await self._send(_events(name, id, after, limit, wait))

    async def abort(self, name: str, id: str, *, queued: bool = False) -> AbortResponse:
        """See `AgentClient.abort`."""
        return await self._send(_abort(name, id, queued))

    async def agents(self) -> AgentsList:
        """See `AgentClient.agents`."""
        return await self._send(_agents())

    async def describe(self, name: str) -> AgentDescription:
        """See `AgentClient.describe`."""
        return await self._send(_describe(name))

    async def instances(self, name: str, *, limit: int = 50, cursor: str | None = None) -> InstancesPage:
        """See `AgentClient.instances`."""
        return await self._send(_instances(name, limit, cursor))

    async def submissions(self, name: str, id: str, *, after: int = -1, limit: int = 50) -> SubmissionsPage:
        """See `AgentClient.submissions`."""
        return await self._send(_submissions(name, id, after, limit))

    # --- files and variables -----------------------------------------------------------

    async def put_file(self, name: str, id: str, path: str, data: bytes, *, media_type: str | None = None) -> FileView:
        """See `AgentClient.put_file`."""
        return await self._run(_put_file(name, id, path, data, media_type))

    async def upload_file(
        self, name: str, id: str, path: str, data: bytes | IO[bytes], *, media_type: str | None = None
    ) -> FileView:
        """See `AgentClient.upload_file`."""
        return await self._run(_upload_file(name, id, path, data, _size_of(data), media_type))

    async def get_file(self, name: str, id: str, path: str) -> bytes:
        """See `AgentClient.get_file`."""
        return await self._run(_get_file(name, id, path))

    async def list_files(
        self, name: str, id: str, prefix: str = "/", *, after: str | None = None, limit: int = 100
    ) -> FilesPage:
        """See `AgentClient.list_files`."""
        return await self._send(_list_files(name, id, prefix, after, limit))

    async def iter_files(self, name: str, id: str, prefix: str = "/", *, limit: int = 100) -> AsyncIterator[FileView]:
        """See `AgentClient.iter_files`."""
        after: str | None = None
        while True:
            page = await self.list_files(name, id, prefix, after=after, limit=limit)
            for file in page.files:
                yield file
            if page.next is None:
                return
            after = page.next

    async def delete_file(self, name: str, id: str, path: str) -> None:
        """See `AgentClient.delete_file`."""
        await self._send(_delete_file(name, id, path))

    async def variables(self, name: str, id: str) -> VariablesList:
        """See `AgentClient.variables`."""
        return await self._send(_variables(name, id))

    async def set_variable(self, name: str, id: str, variable: str, value: str) -> VariableView:
        """See `AgentClient.set_variable`."""
        return await self._send(_set_variable(name, id, variable, value))

    async def delete_variable(self, name: str, id: str, variable: str) -> None:
        """See `AgentClient.delete_variable`."""
        await self._send(_delete_variable(name, id, variable))

    async def effects(self, name: str, id: str, *, status: str | None = None) -> EffectsList:
        """See `AgentClient.effects`."""
        return await self._send(_effects(name, id, status))

    async def cancel_effect(self, name: str, id: str, effect_id: str) -> EffectView:
        """See `AgentClient.cancel_effect`."""
        return await self._send(_cancel_effect(name, id, effect_id))

    def connect(
        self,
        name: str,
        id: str,
        *,
        session: str | None = None,
        after: int | None = None,
        reconnect_attempts: int = 10,
        open_timeout: float = 10.0,
    ) -> Connection:
        """A live connection to one instance: ``async with client.connect(...) as conn``.

        It yields the instance's events (only `session`'s and instance-wide ones, when
        given) after offset `after`, or from now when None. A dropped connection is
        reopened up to `reconnect_attempts` times in a row, with backoff; the first
        opening is not retried, so a refusal (`Unauthorized`, `NotFound`) or an
        unreachable server shows at once.
        """
        url = self.ws_url
        if not url:
            raise ValueError(f"no WebSocket URL: pass ws_url= or set {ENV_WS_URL} (the stack's WebSocketUrl output)")
        query = {"agent": name, "id": id, **({"token": self.token} if self.token is not None else {})}
        full = f"{url}{'&' if '?' in url else '?'}{urlencode(query)}"
        return Connection(
            self,
            full,
            name=name,
            instance_id=id,
            session=session,
            after=after,
            reconnect_attempts=reconnect_attempts,
            open_timeout=open_timeout,
        )


async def _chunks(file: IO[bytes]) -> AsyncIterator[bytes]:
    while chunk := await asyncio.to_thread(file.read, UPLOAD_CHUNK_BYTES):
        yield chunk


__all__ = ["DEFAULT_TIMEOUT", "ENV_WS_URL", "UPLOAD_CHUNK_BYTES", "AgentClient", "AsyncAgentClient"]
