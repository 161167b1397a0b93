"""A streamed JSON POST whose answer is server-sent events, over ``httpx2``: what the
``anthropic/`` and ``openai/`` providers share (each reads its own events' data).

``httpx2`` is imported by the functions, not by this module: the providers are imported
wherever agents are discovered, and only a model call needs the client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from agent_runtime.errors import ModelError, PermanentModelError, TransientModelError
from agent_runtime.models.base import ModelEvent, ModelResponse, ResponseDone
from agent_runtime.models.retrying import Retries

if TYPE_CHECKING:
    import httpx2

__all__ = ["ErrorResponse", "HttpClient", "StreamParser", "post_events", "sse_data", "stream_turn", "transport_error"]

#: An error response (status, body, headers) as the provider's error.
ErrorResponse = Callable[[int, bytes, Mapping[str, str]], ModelError]


class HttpClient:
    """A provider model's ``httpx2`` client: the one given (a test transport, say), else
    one built on the first request; `aclose` closes only one it built."""

    def __init__(self, given: httpx2.AsyncClient | None, *, timeout: float) -> None:
        self.timeout = timeout
        self._given = given
        self._client: httpx2.AsyncClient | None = None

    @property
    def built(self) -> bool:
        return self._client is not None

    def get(self) -> httpx2.AsyncClient:
        import httpx2

        if self._client is None:
            self._client = self._given or httpx2.AsyncClient(
                timeout=httpx2.Timeout(self.timeout, connect=10.0)
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None and self._given is None:
            await self._client.aclose()
        self._client = None


async def post_events(
    client: httpx2.AsyncClient,
    url: str,
    *,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    provider: str,
    error: ErrorResponse,
) -> AsyncIterator[str]:
    """POST `body` as JSON and yield the data of each event of the answer; a status of
    400 or more raises `error` of the response, any other answer than an event stream a
    `ModelError`."""
    async with client.stream("POST", url, json=body, headers=headers) as response:
        if response.status_code >= 400:
            await response.aread()
            raise error(response.status_code, response.content, response.headers)
        kind = response.headers.get("content-type", "")
        if "text/event-stream" not in kind:
            raise ModelError(
                f"{provider}: expected an event stream, got {kind or 'no content type'}",
                details={"status": response.status_code},
            )
        async for data in sse_data(response.aiter_lines()):
            yield data


class StreamParser(Protocol):
    """A provider's reading of one streamed answer: events from each event's data, the
    events its end completes, and the whole response."""

    def feed(self, data: str) -> list[ModelEvent]: ...
    def close(self) -> list[ModelEvent]: ...
    def response(self) -> ModelResponse: ...


async def stream_turn(
    http: HttpClient,
    url: str,
    *,
    body: Mapping[str, Any],
    headers: Mapping[str, str],
    provider: str,
    error: ErrorResponse,
    parser: Callable[[], StreamParser],
    retries: Retries,
) -> AsyncIterator[ModelEvent]:
    """One model call: its events as they stream, then `ResponseDone`; a failure before the
    first event is tried again as `retries` allow."""
    import httpx2

    client = http.get()
    attempt = 0
    while True:
        attempt += 1
        yielded = False
        try:
            turn = parser()
            async for data in post_events(client, url, body=body, headers=headers, provider=provider, error=error):
                for event in turn.feed(data):
                    yielded = True
                    yield event
            for event in turn.close():
                yielded = True
                yield event
            done = turn.response()
        except (ModelError, httpx2.HTTPError) as err:
            failure = err if isinstance(err, ModelError) else transport_error(provider, err)
            wait = retries.wait_after(attempt, failure, yielded=yielded)
            if wait is None:
                if failure is err:
                    raise
                raise failure from err
            await retries.sleep(wait)
            continue
        yield ResponseDone(response=done)
        return


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The data of each server-sent event, until ``[DONE]``: ``data:`` lines joined, an
    event ended by a blank line (or the end of the stream); comments and other fields
    (``event:``, ``id:``) skipped."""
    data: list[str] = []
    async for line in lines:
        if line:
            field, _, value = line.partition(":")
            if field == "data":
                data.append(value.removeprefix(" "))
            continue
        if data:
            payload, data = "\n".join(data), []
            if payload == "[DONE]":
                return
            yield payload
    if data and (payload := "\n".join(data)) != "[DONE]":
        yield payload


def transport_error(provider: str, err: Exception) -> ModelError:
    """An ``httpx2`` failure as our error: a bad URL permanent, a connection failure or
    timeout transient."""
    import httpx2

    if isinstance(err, httpx2.UnsupportedProtocol):
        return PermanentModelError(f"{provider}: bad base URL: {err}", details={"status": None})
    if isinstance(err, httpx2.TransportError):
        return TransientModelError(f"{provider} connection failed: {type(err).__name__}: {err}")
    return ModelError(f"{provider}: {type(err).__name__}: {err}", details={"status": None})
