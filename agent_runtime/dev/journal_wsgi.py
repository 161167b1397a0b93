"""Where requests enter moto: a WSGI middleware that journals the writes before answering.

`JournalGate` wraps the moto server's WSGI app. Until a journal is attached (while the saved
state is loaded) it only passes requests through. Then:

- A request that changes durable state (a DynamoDB write or transaction, a table created,
  an S3 put, delete, copy or multipart step, an EventBridge Scheduler schedule or group, an
  EventBridge bus, rule or target) is applied by moto and appended to the journal under one
  lock, so the journal's order is the order moto applied them (a conditional write replayed
  out of order would diverge); then, without the lock, it waits until its record is flushed,
  and only then is moto's answer returned. A request moto refuses (4xx) changed nothing and
  is not kept.
- Every other request, once moto has answered it, waits until every write applied before it
  is flushed: no answer, not even a read, shows a client state that a crash could take back.
- Not journaled: reads; SQS (a replay of receives and deletes would not be deterministic; the
  wake-ups a crash loses are sent again by the start-up sweep, see `dev.recovery`); Step
  Functions, whose executions would run twice (their DynamoDB writes come back through this
  gate and are journaled); KMS, whose keys moto makes with random material a replay cannot
  reproduce; ``PutEvents``, a delivery rather than state; moto's own ``/moto-api/``.

moto ships a request recorder (``moto/moto_api/_internal/recorder``); it is not used: it
records reads too, before moto applies a request (so concurrent requests land in arrival
order, not application order), without flushing, with no framing a torn last line could be
told apart by, and replays over HTTP with the recorded host; nor does it know a snapshot.

Replay feeds each record to moto's app in this process, as the same WSGI request. The one
identifier a later request refers to that moto makes up is a multipart upload's id: the id in
the record is mapped to the one the replay got.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs, unquote

from agent_runtime.dev.journal import Journal

__all__ = ["JournalGate", "is_journaled", "is_write", "service_of"]

_CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/")
_READ_PREFIXES = ("Get", "List", "Describe", "Query", "Scan", "BatchGet", "TransactGet", "Receive")
#: Services whose state is journaled ("unknown": an unsigned request, kept to be safe).
JOURNALED = frozenset({"dynamodb", "s3", "scheduler", "events", "unknown"})
_NOT_JOURNALED_TARGETS = frozenset({"AWSEvents.PutEvents"})
_KEPT_ENVIRON = (
    "REQUEST_METHOD",
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "CONTENT_TYPE",
    "REQUEST_URI",
    "RAW_URI",
)
_UPLOAD_ID = re.compile(rb"<UploadId>([^<]+)</UploadId>")
RECORD_VERSION = 1

WsgiApp = Callable[..., Iterable[bytes]]


def is_write(environ: dict[str, Any]) -> bool:
    if environ.get("REQUEST_METHOD", "GET") in ("GET", "HEAD", "OPTIONS"):
        return False
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return not target.rsplit(".", 1)[-1].startswith(_READ_PREFIXES)
    return True


def service_of(environ: dict[str, Any]) -> str:
    scope = environ.get("HTTP_AUTHORIZATION") or unquote(environ.get("QUERY_STRING", ""))
    match = _CREDENTIAL_SCOPE.search(scope)  # also finds a presigned URL's X-Amz-Credential
    return match.group(1) if match else "unknown"


def is_journaled(environ: dict[str, Any]) -> bool:
    if str(environ.get("PATH_INFO", "")).startswith("/moto-api/") or not is_write(environ):
        return False
    if environ.get("HTTP_X_AMZ_TARGET") in _NOT_JOURNALED_TARGETS:
        return False
    return service_of(environ) in JOURNALED


class JournalGate:
    """WSGI middleware in front of moto; see the module docstring."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app
        self.journal: Journal | None = None
        # Held while a journaled write is applied and appended, and by a snapshot. A write
        # never calls back into this server while holding it (Step Functions, which does, is
        # not journaled), so it cannot wait on itself.
        self._apply = threading.Lock()
        self._cond = threading.Condition()
        self._started = 0  # journaled writes that took the apply lock
        self._finished = 0  # ... and appended (or were refused)
        self._uploads: dict[str, str] = {}  # replay: recorded multipart upload id -> new

    def attach(self, journal: Journal | None) -> None:
        with self._apply:
            self.journal = journal

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No journaled write is applied meanwhile, and all before are flushed (a snapshot)."""
        with self._apply:
            if self.journal is not None:
                self.journal.wait_durable(self.journal.appended)
            yield

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        journal = self.journal
        if journal is None:
            return self.app(environ, start_response)
        if not is_journaled(environ):
            result = self.app(environ, start_response)
            self._wait_for_writes_before(journal)
            return result
        body = _read_body(environ)
        status: list[str] = []

        def recording(code: str, headers: Any, *exc_info: Any) -> Any:
            status.append(code)
            return start_response(code, headers, *exc_info)

        number = 0
        with self._apply:
            with self._cond:
                self._started += 1
            try:
                answer = _materialize(self.app(environ, recording))
                if status and not status[0].startswith("4"):
                    number = journal.append(_record(environ, body, answer))
            finally:
                with self._cond:
                    self._finished += 1
                    self._cond.notify_all()
        journal.wait_durable(number)
        return [answer]

    def _wait_for_writes_before(self, journal: Journal) -> None:
        with self._cond:
            started = self._started
            while self._finished < started:
                self._cond.wait()
        journal.wait_durable(journal.appended)

    def replay(self, payload: bytes, *, host: str) -> str:
        """Apply one journal record to moto (not journaled again); moto's status line."""
        record = json.loads(payload)
        if record.get("v") != RECORD_VERSION:
            raise ValueError(f"journal record version {record.get('v')!r} is not {RECORD_VERSION}")
        body = base64.b64decode(record["body"])
        environ = dict(record["environ"])
        for name in ("QUERY_STRING", "REQUEST_URI", "RAW_URI"):
            if name in environ:
                environ[name] = self._mapped_uploads(environ[name])
        server, _, port = host.partition(":")
        environ.update(
            {
                "SERVER_NAME": server,
                "SERVER_PORT": port or "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
                "REMOTE_ADDR": "127.0.0.1",
                "CONTENT_LENGTH": str(len(body)),
                "wsgi.version": (1, 0),
                "wsgi.url_scheme": "http",
                "wsgi.input": io.BytesIO(body),
                "wsgi.errors": sys.stderr,
                "wsgi.multithread": False,
                "wsgi.multiprocess": False,
                "wsgi.run_once": False,
            }
        )
        status: list[str] = []
        answer = _materialize(self.app(environ, lambda code, headers, *exc: status.append(code)))
        recorded = record.get("upload_id")
        if recorded and (found := _UPLOAD_ID.search(answer)):
            self._uploads[recorded] = found.group(1).decode()
        return status[0] if status else ""

    def _mapped_uploads(self, text: str) -> str:
        if "uploadId=" not in text:
            return text
        for old, new in self._uploads.items():
            text = text.replace(f"uploadId={old}", f"uploadId={new}")
        return text


def _read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once and put back for moto (dechunked, with its length)."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    length = environ.get("CONTENT_LENGTH")
    if length:
        body: bytes = stream.read(int(length))
    elif environ.get("wsgi.input_terminated"):  # chunked: the server dechunks to the end
        body = stream.read()
    else:  # no length and not chunked: no body (reading the socket would wait for more)
        body = b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    environ.pop("HTTP_TRANSFER_ENCODING", None)
    environ.pop("wsgi.input_terminated", None)
    return body


def _materialize(result: Iterable[bytes]) -> bytes:
    try:
        return b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()


def _record(environ: dict[str, Any], body: bytes, answer: bytes) -> bytes:
    kept = {k: v for k, v in environ.items() if k in _KEPT_ENVIRON or k.startswith("HTTP_")}
    kept.pop("HTTP_TRANSFER_ENCODING", None)
    record: dict[str, Any] = {
        "v": RECORD_VERSION,
        "environ": {k: v for k, v in kept.items() if isinstance(v, str)},
        "body": base64.b64encode(body).decode(),
    }
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if "uploads" in query and (found := _UPLOAD_ID.search(answer)):
        record["upload_id"] = found.group(1).decode()
    return json.dumps(record, separators=(",", ":")).encode()
