"""Lambda execution environments as child processes, for ``isolation="process"``.

An `Environment` is one child process: it sets the environment variables and ``sys.path`` it
was given, imports the handler (the init phase), then handles invocations one at a time over a
pipe until it is stopped, like a warm Lambda container. An `EnvironmentPool` hands an idle
environment to each invocation and starts a new one (a cold start) when all are busy, up to
`max_concurrency`; past that, invocations wait for one to free up.

A timed-out invocation kills its environment, as Lambda does; so does an environment that
died (``os._exit``, a crash): the invocation fails with ``Runtime.ExitError`` and the pool
starts a fresh one next time.

Only the thread using an environment closes its pipe: the invoking thread while it is busy,
the pool while it is idle. Closing the pool while invocations run kills their child processes
and nothing more; each invoking thread then reads EOF, fails its invocation and closes its own
end. Were the closing thread to close the pipe too, the two would race to close one file
descriptor: the loser fails with EBADF, or closes whatever file took the number meanwhile.

Children come from multiprocessing's ``forkserver`` (``spawn`` where there is none): a clean
process that has imported the heavy libraries once, so a cold start is a fork plus the
handler's own imports, and no child inherits the threads or locks of the dev server. Children
ignore Ctrl-C (the dev server stops them) and exit when the dev server's end of the pipe closes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any

from agent_runtime.dev.lambda_runtime import (
    FunctionError,
    HandlerImportError,
    LambdaContext,
    load_handler,
    marshal,
    new_log_stream,
)

__all__ = ["INIT_TIMEOUT", "Environment", "EnvironmentPool", "prestart"]

log = logging.getLogger(__name__)

# Lambda allows 10 s for init; a loaded laptop may need longer to import an SDK.
INIT_TIMEOUT = 30.0
# Imported once by the fork server, shared by every environment (a missing one is skipped).
_PRELOAD = [
    "boto3",
    "botocore.session",
    "pydantic",
    "httpx",
    "httpx2",
    "aws_lambda_powertools",
    "aws_lambda_powertools.event_handler",
    "agent_runtime.dev.lambda_runtime",
]

_context_lock = threading.Lock()
_context: Any = None


def _multiprocessing() -> Any:
    global _context
    with _context_lock:
        if _context is None:
            if "forkserver" in multiprocessing.get_all_start_methods():
                _context = multiprocessing.get_context("forkserver")
                _context.set_forkserver_preload(_PRELOAD)
            else:
                _context = multiprocessing.get_context("spawn")
        return _context


def prestart() -> None:
    """Start the fork server now: it imports `_PRELOAD` while the caller does other work."""
    if _multiprocessing().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


class Environment:
    """One execution environment: a child process and the pipe to it."""

    def __init__(self, *, spec: str, function_name: str, memory_mb: int, arn: str) -> None:
        context = _multiprocessing()
        self._conn, child = context.Pipe()
        self.process = context.Process(
            target=environment_main,
            args=(child, spec, dict(os.environ), list(sys.path), function_name, memory_mb, arn),
            name=f"lambda:{function_name}",
            daemon=True,
        )
        self.process.start()
        child.close()
        self.started = time.monotonic()
        self.ready = False

    @property
    def alive(self) -> bool:
        return self.process.is_alive()

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to `timeout` for the init phase: True once done, False while still going.

        `HandlerImportError` (and the environment killed) when the init failed, or when it has
        taken `INIT_TIMEOUT` in all.
        """
        try:
            budget = min(timeout, max(0.0, self.started + INIT_TIMEOUT - time.monotonic()))
            if not self._conn.poll(budget):
                if time.monotonic() - self.started < INIT_TIMEOUT:
                    return False
                self.kill()
                raise HandlerImportError(
                    f"the handler's init took longer than {INIT_TIMEOUT:.0f} s"
                )
            message = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            raise HandlerImportError("the execution environment exited during init") from None
        if message[0] != "ready":
            self.kill()
            raise HandlerImportError(f"the handler's init failed:\n{message[1]}")
        self.ready = True
        return True

    def invoke(
        self, payload: str, *, request_id: str, timeout: float, wait: float
    ) -> tuple[str, Any]:
        """("ok", result JSON) | ("error", FunctionError) | ("timeout", None)."""
        try:
            self._conn.send(("invoke", payload, request_id, timeout))
            if not self._conn.poll(wait):
                self.kill()
                return "timeout", None
            message = self._conn.recv()
        except (EOFError, OSError):
            self.kill()
            return "error", FunctionError("Runtime.ExitError", "the execution environment exited")
        if message[0] == "ok":
            return "ok", message[1]
        return "error", FunctionError(message[1], message[2], message[3])

    def stop(self) -> None:
        """Ask an idle environment to exit, then `kill` it."""
        with contextlib.suppress(OSError, ValueError):
            self._conn.send(("stop",))
        self.process.join(1.0)
        self.kill()

    def kill(self) -> None:
        """Kill the child and close the pipe: only from the thread using this environment."""
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5.0)
        self._conn.close()

    def interrupt(self) -> None:
        """Kill the child of an environment another thread is invoking, leaving the pipe to
        that thread: its wait ends with EOF and it calls `kill` itself."""
        self.process.kill()


class EnvironmentPool:
    """The warm environments of one function."""

    def __init__(
        self, *, spec: str, function_name: str, memory_mb: int, arn: str, max_concurrency: int
    ) -> None:
        self._config = {
            "spec": spec,
            "function_name": function_name,
            "memory_mb": memory_mb,
            "arn": arn,
        }
        self.max_concurrency = max_concurrency
        self._idle: list[Environment] = []
        self._all: set[Environment] = set()
        self._count = 0  # environments started or starting
        self._changed = threading.Condition()
        self._closed = False

    def _shutdown(self) -> FunctionError:
        return FunctionError("Runtime.Shutdown", f"{self._config['function_name']} is stopped")

    def warm(self) -> None:
        """Have one initialised environment ready (the first cold start, done before serving)."""
        with self._changed:
            if self._count:
                return
            self._count += 1
        try:
            environment = Environment(**self._config)  # type: ignore[arg-type]
            if not environment.wait_ready(INIT_TIMEOUT):
                environment.kill()
                raise HandlerImportError(
                    f"the handler's init took longer than {INIT_TIMEOUT:.0f} s"
                )
        except BaseException:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()
            raise
        with self._changed:
            closed = self._closed
            if not closed:
                self._all.add(environment)
                self._idle.append(environment)
                self._changed.notify_all()
        if closed:  # closed while it started: `close` never saw it
            self._end(environment, healthy=False)

    def invoke(
        self, payload: str, *, request_id: str, timeout: float, wait: float
    ) -> tuple[str, Any]:
        deadline = time.monotonic() + wait
        try:
            environment = self._acquire(deadline)
        except FunctionError as exc:
            return "error", exc
        if environment is None:
            return "timeout", None
        healthy = False
        try:
            if not environment.ready:
                try:
                    if not environment.wait_ready(max(0.0, deadline - time.monotonic())):
                        healthy = True  # still starting: it serves the next invocation
                        return "timeout", None
                except HandlerImportError as exc:
                    return "error", FunctionError("Runtime.ImportModuleError", str(exc))
            outcome, value = environment.invoke(
                payload,
                request_id=request_id,
                timeout=timeout,
                wait=max(0.0, deadline - time.monotonic()),
            )
            healthy = outcome != "timeout" and environment.alive
            return outcome, value
        finally:
            self._release(environment, healthy)

    def close(self, *, wait: float = 5.0) -> None:
        """Stop every environment; invocations still running fail (``Runtime.ExitError``).

        Idle environments are stopped here. Busy ones are only interrupted: the threads
        invoking them close them (see the module docstring). Returns once they have, or after
        `wait` seconds.
        """
        with self._changed:
            self._closed = True
            idle, self._idle = self._idle, []
            self._all.difference_update(idle)
            self._count -= len(idle)
            busy = list(self._all)
            self._changed.notify_all()
        for environment in idle:
            environment.stop()
        for environment in busy:
            environment.interrupt()
        with self._changed:
            if not self._changed.wait_for(lambda: self._count == 0, timeout=wait):
                log.warning(
                    "%d %s environments still busy %.0f s after the stop",
                    self._count,
                    self._config["function_name"],
                    wait,
                )

    def _acquire(self, deadline: float) -> Environment | None:
        """An environment for one invocation; None after `deadline`; `FunctionError`
        (``Runtime.Shutdown``) once the pool is closed."""
        with self._changed:
            while True:
                if self._closed:
                    raise self._shutdown()
                if self._idle:
                    return self._idle.pop()
                if self._count < self.max_concurrency:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
        try:
            environment = Environment(**self._config)  # type: ignore[arg-type]
        except BaseException:
            with self._changed:
                self._count -= 1
                self._changed.notify_all()
            raise
        with self._changed:
            closed = self._closed
            if not closed:
                self._all.add(environment)
        if closed:  # closed while it started: `close` never saw it
            self._end(environment, healthy=False)
            raise self._shutdown()
        return environment

    def _release(self, environment: Environment, healthy: bool) -> None:
        with self._changed:
            if healthy and not self._closed:
                self._idle.append(environment)
                self._changed.notify_all()
                return
            self._all.discard(environment)
        self._end(environment, healthy=healthy)  # broken, or the pool closed while it ran

    def _end(self, environment: Environment, *, healthy: bool) -> None:
        """End an environment the calling thread holds, and only then stop counting it, so
        that `close` returns once its pipe is closed."""
        if healthy:
            environment.stop()
        else:
            environment.kill()
        with self._changed:
            self._count -= 1
            self._changed.notify_all()


def environment_main(
    conn: Connection,
    spec: str,
    environ: dict[str, str],
    path: list[str],
    function_name: str,
    memory_mb: int,
    arn: str,
) -> None:
    """The child process: init, then one invocation at a time until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(environ)
    sys.path[:] = path
    try:
        handler = load_handler(spec)
    except BaseException:
        conn.send(("init_error", traceback.format_exc()))
        return
    conn.send(("ready",))
    log_stream = new_log_stream()
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the dev server is gone
        if message[0] == "stop":
            return
        _, payload, request_id, timeout = message
        context = LambdaContext(
            function_name=function_name,
            aws_request_id=request_id,
            invoked_function_arn=arn,
            memory_limit_in_mb=str(memory_mb),
            deadline=time.monotonic() + timeout,
            log_group_name=f"/aws/lambda/{function_name}",
            log_stream_name=log_stream,
        )
        try:
            reply: tuple[Any, ...] = ("ok", marshal(handler(json.loads(payload), context)))
        except BaseException as exc:
            reply = ("error", type(exc).__name__, str(exc), traceback.format_exc())
        try:
            conn.send(reply)
        except (OSError, ValueError):
            return
