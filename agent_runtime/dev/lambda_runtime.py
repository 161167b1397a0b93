"""Call a Python Lambda handler from the local stack, the way the Lambda service would.

Both emulators (`apigw_http`, `sqs_poller`) invoke handlers through `LocalFunction`:

- the handler is named by a ``"module:function"`` string and imported once per execution
  environment, after the stack has set the environment variables (Lambda's init phase);
- every call gets its own copy of the event, made by a JSON round-trip, and a `LambdaContext`
  whose `get_remaining_time_in_millis()` counts down from the function's timeout;
- the result is marshalled to JSON and back, so a value Lambda could not return (a set, a
  coroutine, a `Decimal`) fails here as it would there, and so does a payload over Lambda's
  6 MB synchronous limit.

Isolation (``isolation=``):

- ``"process"`` (the default, what ``agent-runtime dev`` uses): each execution environment is
  a child process that handles one invocation at a time and is reused while warm, as Lambda
  reuses a container. Concurrent invocations get separate environments (up to
  `max_concurrency`), so module-level state such as a per-container event loop or client is
  never shared between two running invocations. A timed-out invocation kills its
  environment, as Lambda does; the next call starts a new one (a cold start). See
  `lambda_environment`.
- ``"thread"``: the handler runs in a thread of this process. Cheap, and a test can look at
  the handler's module state; but concurrent invocations share module globals, and a call
  that outlives its timeout cannot be stopped: it is abandoned and runs on in a daemon thread.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from agent_runtime.errors import UserError

__all__ = [
    "LAMBDA_PAYLOAD_LIMIT",
    "FunctionError",
    "Handler",
    "HandlerImportError",
    "Invocation",
    "Isolation",
    "LambdaContext",
    "LocalFunction",
    "PayloadTooLargeError",
    "handler_spec",
    "load_handler",
]

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]
Isolation = Literal["process", "thread"]

# Lambda's synchronous invocation limit for the request and for the response payload.
LAMBDA_PAYLOAD_LIMIT = 6 * 1024 * 1024
LOCAL_ACCOUNT_ID = "123456789012"  # moto's default account
LOCAL_REGION = "us-east-1"


class HandlerImportError(UserError):
    """A ``"module:function"`` handler string does not name a callable, or its init failed."""

    type = "handler_import_error"


class PayloadTooLargeError(Exception):
    """A payload over `LAMBDA_PAYLOAD_LIMIT`, which Lambda would refuse."""


class FunctionError(Exception):
    """An invocation failed inside an execution environment (the handler raised, or the
    environment died). `error_type` is the exception's class name, or a Lambda-style
    ``Runtime.*`` name; `trace` is the formatted traceback when there is one."""

    def __init__(self, error_type: str, message: str, trace: str = "") -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.trace = trace


def load_handler(spec: str | Handler) -> Handler:
    """Import ``"package.module:function"``; a callable passes through unchanged."""
    if callable(spec):
        return spec
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise HandlerImportError(f"handler must look like 'module:function', got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # the module's own init failing is an init error too
        raise HandlerImportError(
            f"cannot import {module_name!r} for handler {spec!r}: {type(exc).__name__}: {exc}"
        ) from exc
    target: Any = module
    for part in attribute.split("."):
        target = getattr(target, part, None)
    if not callable(target):
        raise HandlerImportError(f"{spec!r} is not a callable")
    return target  # type: ignore[no-any-return]


def handler_spec(handler: str | Handler) -> str:
    """The ``"module:function"`` string of a handler, so another process can import it."""
    if isinstance(handler, str):
        return handler
    module, qualname = getattr(handler, "__module__", None), getattr(handler, "__qualname__", "")
    if not module or not qualname or "<" in qualname:
        raise HandlerImportError(
            f"{handler!r} cannot be imported by name: pass a 'module:function' string, or use isolation='thread'"
        )
    return f"{module}:{qualname}"


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


@dataclass
class LocalFunction:
    """One Lambda function of the local stack: handler, name, timeout, memory, isolation."""

    handler: str | Handler
    name: str
    timeout: float
    memory_mb: int = 1024
    isolation: Isolation = "process"
    max_concurrency: int = 10
    account_id: str = LOCAL_ACCOUNT_ID
    region: str = LOCAL_REGION
    _resolved: Handler | None = field(default=None, init=False, repr=False)
    _pool: Any = field(default=None, init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _log_stream: str = field(default="", init=False, repr=False)
    #: What the callers of thread-isolated invocations wait on; `close` wakes them.
    _waiting: set[threading.Event] = field(default_factory=set, init=False, repr=False)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"

    def load(self) -> None:
        """The init phase, done before serving: import the handler (thread isolation) or start
        one warm execution environment (process isolation). Raises `HandlerImportError`."""
        self._closed = False
        if self.isolation == "thread":
            self._import()
            return
        self._environments().warm()

    def _import(self) -> Handler:
        if self._resolved is None:
            self._resolved = load_handler(self.handler)
            self._log_stream = new_log_stream()
        return self._resolved

    def close(self) -> None:
        """Stop every execution environment; later calls fail until `load()`.

        Invocations still running fail with ``Runtime.ExitError`` (process isolation: their
        environments are killed) or ``Runtime.Shutdown`` (thread isolation: their threads
        cannot be stopped, so they are abandoned, as on a timeout). Either way their callers
        return at once.
        """
        with self._lock:
            pool, self._pool, self._closed = self._pool, None, True
            waiting, self._waiting = self._waiting, set()
        for done in waiting:
            done.set()
        if pool is not None:
            pool.close()

    def _environments(self) -> Any:
        with self._lock:
            if self._pool is None:
                from agent_runtime.dev.lambda_environment import EnvironmentPool

                self._pool = EnvironmentPool(
                    spec=handler_spec(self.handler),
                    function_name=self.name,
                    memory_mb=self.memory_mb,
                    arn=self.arn,
                    max_concurrency=self.max_concurrency,
                )
            return self._pool

    def context(
        self, *, request_id: str | None = None, timeout: float | None = None
    ) -> LambdaContext:
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
        request_id = str(uuid.uuid4())
        started = time.monotonic()
        try:
            payload = marshal(event)
        except PayloadTooLargeError as exc:
            return Invocation("rejected", request_id, 0.0, error=exc)
        limit = self.timeout if wait is None else min(wait, self.timeout)
        outcome: str
        value: Any
        if self._closed:
            outcome, value = "error", FunctionError("Runtime.Shutdown", f"{self.name} is stopped")
        elif self.isolation == "thread":
            outcome, value = self._invoke_in_thread(payload, request_id, limit)
        else:
            outcome, value = self._environments().invoke(
                payload, request_id=request_id, timeout=self.timeout, wait=limit
            )
        duration_ms = (time.monotonic() - started) * 1000
        if outcome == "timeout":
            log.warning("%s request %s timed out after %.1f s", self.name, request_id, limit)
            return Invocation("timeout", request_id, duration_ms)
        if outcome == "error":
            log.error(
                "%s request %s failed: %s\n%s",
                self.name,
                request_id,
                value,
                getattr(value, "trace", "") or "",
            )
            return Invocation("error", request_id, duration_ms, error=value)
        return Invocation("ok", request_id, duration_ms, result=json.loads(value))

    def _invoke_in_thread(self, payload: str, request_id: str, limit: float) -> tuple[str, Any]:
        handler = self._import()
        context = self.context(request_id=request_id)
        box: dict[str, Any] = {}
        done = threading.Event()

        def run() -> None:
            try:
                box["result"] = marshal(handler(json.loads(payload), context))
            except BaseException as exc:
                box["error"] = FunctionError(type(exc).__name__, str(exc), traceback.format_exc())
            finally:
                done.set()

        with self._lock:
            if self._closed:
                return "error", FunctionError("Runtime.Shutdown", f"{self.name} is stopped")
            self._waiting.add(done)
        try:
            threading.Thread(target=run, name=f"{self.name}:{request_id[:8]}", daemon=True).start()
            finished = done.wait(limit)
        finally:
            with self._lock:
                self._waiting.discard(done)
        if "error" in box:
            return "error", box["error"]
        if "result" in box:
            return "ok", box["result"]
        # Abandoned, as a thread cannot be stopped: timed out, or woken by `close`.
        if not finished:
            return "timeout", None
        return "error", FunctionError("Runtime.Shutdown", f"{self.name} is stopped")


def marshal(value: Any) -> str:
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


def new_log_stream() -> str:
    return f"{datetime.now(UTC).strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
