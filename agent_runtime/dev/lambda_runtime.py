"""Call a Python Lambda handler inside this process, the way the Lambda runtime would.

Both emulators (`apigw_http`, `sqs_poller`) invoke handlers through `LocalFunction`:

- the handler is named by a ``"module:function"`` string and imported once, by `load()`,
  after the stack has set the environment (Lambda's init phase reads it too);
- every call gets its own copy of the event, made by a JSON round-trip, and a `LambdaContext`
  whose `get_remaining_time_in_millis()` counts down from the function's timeout;
- the result is marshalled to JSON and back, so a value Lambda could not return (a set, a
  coroutine, a `Decimal`) fails here as it would there, and so does a payload over Lambda's
  6 MB synchronous limit;
- a call that outlives its timeout is abandoned: its result is dropped and the caller sees a
  timeout. Python cannot kill a thread, so the abandoned call keeps running in a daemon thread
  until it returns by itself (Lambda would have frozen it); it is logged.

All invocations share this process: module globals are shared between concurrent calls, where
Lambda would give each concurrent call its own execution environment.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from agent_runtime.errors import UserError

__all__ = [
    "LAMBDA_PAYLOAD_LIMIT",
    "HandlerImportError",
    "Invocation",
    "LambdaContext",
    "LocalFunction",
    "PayloadTooLargeError",
    "load_handler",
]

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]

# Lambda's synchronous invocation limit for the request and for the response payload.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_REGION = "us-east-1"


class HandlerImportError(UserError):
    """A ``"module:function"`` handler string does not name a callable."""

    type = "handler_import_error"


def load_handler(spec: str | Handler) -> Handler:
    """Import ``"package.module:function"``; a callable passes through unchanged."""
    if callable(spec):
        return spec
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerImportError(f"handler must look like 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise HandlerImportError(f"cannot import {module_name!r} for handler {spec!r}: {exc}") from exc
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise HandlerImportError(f"{spec!r} is not a callable")
    return target  # type: ignore[no-any-return]


@dataclass
class LambdaContext:
    """The attributes of the Lambda Python runtime's context object that handlers use.

    `memory_limit_in_mb` is a string, as the Python runtime gives it.
    """

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: str
    deadline: float  # time.monotonic() at which the function times out
    function_version: str = "$LATEST"
    log_group_name: str = ""
    log_stream_name: str = ""
    identity: Any = None
    client_context: Any = None

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass(frozen=True)
class Invocation:
    """What one call produced: a JSON-compatible `result`, an `error`, or a timeout.

    ``"rejected"`` means the event itself was refused (over the payload limit) and the
    handler never ran.
    """

    outcome: Literal["ok", "error", "timeout", "rejected"]
    request_id: str
    duration_ms: float
    result: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


class PayloadTooLargeError(Exception):
    """A payload over `LAMBDA_PAYLOAD_LIMIT`, which Lambda would refuse."""


@dataclass
class LocalFunction:
    """One Lambda function served from this process: handler, name, timeout, memory."""

    handler: str | Handler
    name: str
    timeout: float
    memory_mb: int = 1024
    account_id: str = LOCAL_ACCOUNT_ID
    region: str = LOCAL_REGION
    _resolved: Handler | None = field(default=None, init=False, repr=False)
    _log_stream: str = field(default="", init=False, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    def load(self) -> Handler:
        """Import the handler (once): the init phase of a cold start."""
        if self._resolved is None:
            self._resolved = load_handler(self.handler)
            day = datetime.now(UTC).strftime("%Y/%m/%d")
            self._log_stream = f"{day}/[$LATEST]{uuid.uuid4().hex}"
        return self._resolved

    def context(self, *, request_id: str | None = None, timeout: float | None = None) -> LambdaContext:
        return LambdaContext(
            function_name=self.name,
            aws_request_id=request_id or str(uuid.uuid4()),
            invoked_function_arn=self.arn,
            memory_limit_in_mb=str(self.memory_mb),
            deadline=time.monotonic() + (self.timeout if timeout is None else timeout),
            log_group_name=f"/aws/lambda/{self.name}",
            log_stream_name=self._log_stream,
        )

    def invoke(self, event: Any, *, wait: float | None = None) -> Invocation:
        """Call the handler with a copy of `event`; give up after `wait` (default: the timeout).

        `wait` shorter than the function's timeout models a caller that stops waiting first
        (API Gateway's 30 s integration timeout in front of a longer Lambda timeout).
        """
        handler = self.load()
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            payload = _marshal(event)
        except PayloadTooLargeError as exc:
            return Invocation("rejected", request_id, 0.0, error=exc)
        context = self.context(request_id=request_id)
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["result"] = _marshal(handler(json.loads(payload), context))
            except BaseException as exc:
                box["error"] = exc
            finally:
                done.set()

        thread = threading.Thread(target=run, name=f"{self.name}:{request_id[:8]}", daemon=True)
        thread.start()
        limit = self.timeout if wait is None else min(wait, self.timeout)
        finished = done.wait(limit)
        duration_ms = (time.monotonic() - started) * 1000
        if not finished:
            log.warning(
                "%s request %s timed out after %.1f s; the call is abandoned", self.name, request_id, limit
            )
            return Invocation("timeout", request_id, duration_ms)
        if "error" in box:
            error: BaseException = box["error"]
            log.error("%s request %s failed", self.name, request_id, exc_info=error)
            return Invocation("error", request_id, duration_ms, error=error)
        return Invocation("ok", request_id, duration_ms, result=json.loads(box["result"]))


def _marshal(value: Any) -> str:
    """Serialise a payload as the runtime does, refusing what Lambda would refuse."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        if hasattr(value, "close") and hasattr(value, "send"):
            value.close()  # an un-awaited coroutine: close it so it does not warn later
        raise TypeError(f"Runtime.MarshalError: unable to marshal the payload: {exc}") from None
    if len(text.encode()) > LAMBDA_PAYLOAD_LIMIT:
        raise PayloadTooLargeError(f"payload over Lambda's {LAMBDA_PAYLOAD_LIMIT} byte limit")
    return text
