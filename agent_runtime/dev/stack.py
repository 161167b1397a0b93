"""The local stack behind ``agent-runtime dev``: one process that stands in for the deployment.

`LocalStack` composes, in this order: the state folder (refused early if its format version is
unknown), moto on loopback with the runtime's resources (`aws.LocalAws`), the saved data put
back (`persistence.LocalState`: the snapshot, then the journal of writes since; from then on
every write is journaled before it is answered), the handlers' environment variables
(`settings` names), the HTTP API emulator calling the HTTP handler, the WebSocket API
emulator calling the WebSocket handler (when there is one), the SQS pollers calling the
worker handler, the dispatch function with its asynchronous event queue, the scheduler, and
the autosaver (which takes a snapshot when the journal has grown). `stop()` undoes it in
reverse and takes a snapshot on the way out.

The handlers are the deployed ones (``functions.http_api:handler``,
``functions.worker:handler``, ``functions.websocket:handler``) unless others are given;
nothing in them knows it is local. As the deployed stack adds its WebSocket API only when
``functions/websocket.py`` exists, so does this one (in the working directory), unless
`websocket_handler` says otherwise; its ``@connections`` endpoint goes to every handler in
``settings.ENV_WEBSOCKET_ENDPOINT``.

Events: dispatch events put on the local bus (``settings.LOCAL_EVENT_BUS``, any client, e.g.
boto3 ``put_events`` on the AWS endpoint) match the deployed rule's pattern and reach
``functions.dispatch_events:handler`` as an asynchronous invocation, retried as Lambda retries
(`dev.async_invoke`). One-time schedules in ``settings.LOCAL_SCHEDULE_GROUP`` fire on time
(`dev.scheduler`); every handler learns the group, the scheduler role and the dispatch
function's ARN (the schedules' target) from the `settings` variables, as deployed. The
dispatch function starts on its first event (events are rare; starting it costs a process).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from agent_runtime import settings
from agent_runtime.adapters.aws.provision import Resources
from agent_runtime.dev.apigw_http import API_GATEWAY_TIMEOUT, HttpApiEmulator
from agent_runtime.dev.apigw_websocket import WebSocketApiEmulator
from agent_runtime.dev.async_invoke import AsyncInvoker
from agent_runtime.dev.aws import EnvironmentChanges, LocalAws
from agent_runtime.dev.lambda_environment import prestart
from agent_runtime.dev.lambda_runtime import Handler, Isolation, LocalFunction
from agent_runtime.dev.persistence import Autosaver, LocalState, RestoreSummary
from agent_runtime.dev.recovery import Recovered, Sweeper, recover
from agent_runtime.dev.scheduler import AsyncTarget, LocalScheduler
from agent_runtime.dev.sqs_poller import SqsPoller

__all__ = [
    "DEFAULT_DISPATCH_HANDLER",
    "DEFAULT_HTTP_HANDLER",
    "DEFAULT_PORT",
    "DEFAULT_STATE_DIR",
    "DEFAULT_WEBSOCKET_HANDLER",
    "DEFAULT_WORKER_HANDLER",
    "WEBSOCKET_STAGE",
    "LocalStack",
    "default_websocket_handler",
    "run_dev",
]

log = logging.getLogger(__name__)

DEFAULT_PORT = 8787
DEFAULT_STATE_DIR = ".agent-runtime"
DEFAULT_HTTP_HANDLER = "functions.http_api:handler"
DEFAULT_WORKER_HANDLER = "functions.worker:handler"
DEFAULT_WEBSOCKET_HANDLER = "functions.websocket:handler"
DEFAULT_DISPATCH_HANDLER = "functions.dispatch_events:handler"
DISPATCH_FUNCTION = "agent-runtime-dispatch-events"
#: The deployed dispatch function's timeout (``infra/stack.py``).
DISPATCH_TIMEOUT = 30.0
WEBSOCKET_STAGE = "local"


def default_websocket_handler() -> str | None:
    """``functions.websocket:handler`` when ``functions/websocket.py`` exists in the working
    directory, else None (no WebSocket API), as the deployed stack decides."""
    return DEFAULT_WEBSOCKET_HANDLER if Path("functions", "websocket.py").is_file() else None


@dataclass(kw_only=True)
class LocalStack:
    """Everything `agent-runtime dev` serves. ``with LocalStack(port=0) as stack: stack.url``.

    `state_dir=None` keeps nothing between runs. `local_retry_delay` (local only) makes a
    failed SQS message visible again after that many seconds instead of the queue's
    visibility timeout; None keeps the deployed behaviour. `isolation` is how handlers run:
    ``"process"`` (execution environments as child processes, as Lambda has) or ``"thread"``
    (see `lambda_runtime`). `websocket_handler=None` leaves the WebSocket API out; it listens
    on `websocket_port`, by default the port after `port` (a free one when `port` is 0).
    `dispatch_handler=None` leaves dispatch events undelivered; `schedule_interval` is how
    often the scheduler looks for due schedules.
    """

    port: int = DEFAULT_PORT
    state_dir: str | Path | None = DEFAULT_STATE_DIR
    agents_dir: str = "agents"
    http_handler: str | Handler = DEFAULT_HTTP_HANDLER
    worker_handler: str | Handler = DEFAULT_WORKER_HANDLER
    websocket_handler: str | Handler | None = field(default_factory=default_websocket_handler)
    websocket_port: int | None = None
    dispatch_handler: str | Handler | None = DEFAULT_DISPATCH_HANDLER
    schedule_interval: float = 0.25
    http_routes: Sequence[str] = ()
    integration_timeout: float = API_GATEWAY_TIMEOUT
    http_function_timeout: float | None = None
    worker_timeout: float = settings.WORKER_TIMEOUT_SECONDS
    pollers: int = 2
    isolation: Isolation = "process"
    local_retry_delay: int | None = 2
    autosave_interval: float = 2.0
    #: The local sweeper's period (None: off) and how long work must sit idle to be re-woken.
    sweep_interval: float | None = settings.SWEEP_INTERVAL_SECONDS
    sweep_idle_seconds: float = settings.SWEEP_IDLE_SECONDS
    stop_grace: float = 10.0

    aws: LocalAws = field(default_factory=LocalAws, init=False)
    resources: Resources | None = field(default=None, init=False)
    http: HttpApiEmulator | None = field(default=None, init=False)
    websocket: WebSocketApiEmulator | None = field(default=None, init=False)
    poller: SqsPoller | None = field(default=None, init=False)
    dispatcher: AsyncInvoker | None = field(default=None, init=False)
    scheduler: LocalScheduler | None = field(default=None, init=False)
    state: LocalState | None = field(default=None, init=False)
    autosaver: Autosaver | None = field(default=None, init=False)
    sweeper: Sweeper | None = field(default=None, init=False)
    restored: RestoreSummary = field(default_factory=RestoreSummary, init=False)
    #: Work the previous run left running or unwoken (see `dev.recovery`).
    recovered: Recovered = field(default_factory=lambda: Recovered(0, 0), init=False)
    ready_seconds: float = field(default=0.0, init=False)
    phases: dict[str, float] = field(default_factory=dict, init=False)
    _env: EnvironmentChanges = field(default_factory=EnvironmentChanges, init=False, repr=False)

    @property
    def url(self) -> str:
        if self.http is None:
            raise RuntimeError("the local stack is not started")
        return self.http.url

    @property
    def ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/local``, where WebSocket clients connect."""
        if self.websocket is None:
            raise RuntimeError("the local stack is not started, or has no WebSocket API")
        return self.websocket.url

    def start(self) -> LocalStack:
        started = time.perf_counter()
        self.aws = LocalAws()
        try:
            if self.isolation == "process":
                prestart()  # the fork server's imports overlap moto's start
            if self.state_dir is not None:
                self.state = LocalState(Path(self.state_dir))
            resources = self.resources = self.aws.start()
            self.phases["aws"] = time.perf_counter() - started
            if self.state is not None:
                self.restored = self._restore(self.state)
                self.recovered = recover(**self._storage(resources))
            self.phases["restore"] = time.perf_counter() - started - self.phases["aws"]
            dispatch = LocalFunction(
                handler=self.dispatch_handler or DEFAULT_DISPATCH_HANDLER,
                name=DISPATCH_FUNCTION,
                timeout=DISPATCH_TIMEOUT,
                isolation=self.isolation,
                max_concurrency=2,
            )
            events = self.aws.events
            assert events is not None
            environment = {
                **resources.env(),
                **events.env(effect_target_arn=dispatch.arn),
                settings.ENV_AGENTS: self.agents_dir,
                "POWERTOOLS_SERVICE_NAME": settings.SERVICE_NAME,  # as the stack sets it
                # Spans kept in the table for the trace route, unless the shell says otherwise.
                settings.ENV_TRACING: os.environ.get(settings.ENV_TRACING, "table"),
            }
            if self.websocket_handler is not None:
                self.websocket = WebSocketApiEmulator(
                    self.websocket_handler,
                    port=self._websocket_port(),
                    stage=WEBSOCKET_STAGE,
                    isolation=self.isolation,
                )
                self.websocket.bind()  # the handlers' environment needs its endpoint
                environment[settings.ENV_WEBSOCKET_ENDPOINT] = self.websocket.callback_url
                environment[settings.ENV_WEBSOCKET_URL] = self.websocket.url  # for the console
            self._env.set(environment)
            self.http = HttpApiEmulator(
                self.http_handler,
                port=self.port,
                routes=self.http_routes,
                integration_timeout=self.integration_timeout,
                function_timeout=self.http_function_timeout,
                isolation=self.isolation,
            )
            self.poller = SqsPoller(
                sqs=self.aws.client("sqs"),
                queue_url=resources.queue_url,
                handler=self.worker_handler,
                timeout=self.worker_timeout,
                concurrency=self.pollers,
                local_retry_delay=self.local_retry_delay,
                isolation=self.isolation,
            )
            warming = time.perf_counter()
            functions = [self.http.function, self.poller.function]
            if self.websocket is not None:
                functions.append(self.websocket.function)
            _warm(*functions)
            self.phases["handler init"] = time.perf_counter() - warming
            self.http.start()
            self.port = self.http.port
            if self.websocket is not None:
                self.websocket.start()
            self.poller.start()
            self._start_events(dispatch)
            if self.sweep_interval is not None:
                self.sweeper = Sweeper(
                    interval=self.sweep_interval,
                    idle_seconds=self.sweep_idle_seconds,
                    **self._storage(resources),
                )
                self.sweeper.start()
            if self.state is not None and self.aws.gate is not None:
                self.autosaver = Autosaver(
                    self.state,
                    client=self.aws.client,
                    paused=self.aws.gate.paused,
                    interval=self.autosave_interval,
                )
                self.autosaver.start()
                # The restored messages are in the queue again: the folder lets go of them, so
                # a crash from now on cannot deliver them twice.
                self.state.forget_queues()
        except BaseException:
            self.stop(save=False)
            raise
        self.ready_seconds = time.perf_counter() - started
        return self

    def stop(self, *, save: bool = True) -> None:
        """Stop serving, save the state (DynamoDB, S3, waiting SQS messages), stop moto."""
        try:
            if self.http is not None:
                self.http.stop()
            if self.websocket is not None:
                self.websocket.stop()
            if self.sweeper is not None:
                self.sweeper.stop()
            if self.scheduler is not None:
                self.scheduler.stop()
            if self.dispatcher is not None:
                self.dispatcher.stop_receiving()  # its long poll ends while the poller's does
            if self.poller is not None:
                self.poller.stop(grace=self.stop_grace)
            if self.dispatcher is not None:
                self.dispatcher.stop(grace=self.stop_grace)
            if self.autosaver is not None:
                self.autosaver.stop()
            if save and self.state is not None and self.state.journal is not None:
                gate = self.aws.gate
                self.state.snapshot(
                    self.aws.client, paused=gate.paused if gate else contextlib.nullcontext
                )
                self.state.drain_queues(self.aws.client("sqs"))
        finally:
            if self.aws.gate is not None:
                self.aws.gate.attach(None)
            if self.state is not None:
                self.state.close()
            self.http = self.websocket = self.poller = self.autosaver = self.sweeper = None
            self.dispatcher, self.scheduler = None, None
            self.aws.stop()
            self.resources = None
            self._env.restore()

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _start_events(self, dispatch: LocalFunction) -> None:
        """The dispatch function's event queue (the bus's rule delivers there), then the
        scheduler, which invokes the dispatch function through the same queue."""
        events = self.aws.events
        assert events is not None
        sqs = self.aws.client("sqs")
        functions: dict[str, AsyncTarget] = {}
        if self.dispatch_handler is not None:
            self.dispatcher = AsyncInvoker(
                sqs=sqs,
                queue_url=events.dispatch_queue_url,
                function=dispatch,
                # Deployed, Lambda retries an asynchronous event after about a minute.
                retry_delay=self.local_retry_delay or 60,
            )
            self.dispatcher.start()
            functions[dispatch.arn] = self.dispatcher.invoke
        self.scheduler = LocalScheduler(
            scheduler=self.aws.client("scheduler"),
            sqs=sqs,
            groups=[events.schedule_group],
            functions=functions,
            interval=self.schedule_interval,
        )
        self.scheduler.start()

    def _restore(self, state: LocalState) -> RestoreSummary:
        """The snapshot, then the journal over it; from then on every write is journaled."""
        restored = state.restore(self.aws.client)
        replayed = state.replay(self.aws.replay)
        if self.aws.gate is not None:
            self.aws.gate.attach(state.journal)
        return dataclasses.replace(restored, replayed=replayed)

    def _storage(self, resources: Resources) -> dict[str, Any]:
        """Clients and names of the table, queue and bucket (for recovery and sweeps)."""
        return {
            "dynamodb": self.aws.client("dynamodb"),
            "sqs": self.aws.client("sqs"),
            "s3": self.aws.client("s3"),
            "table": resources.table,
            "queue_url": resources.queue_url,
            "bucket": resources.bucket,
        }

    def _websocket_port(self) -> int:
        if self.websocket_port is not None:
            return self.websocket_port
        return self.port + 1 if self.port else 0


def _warm(*functions: LocalFunction) -> None:
    """Init the functions: side by side when each has processes of its own (each cold
    start mostly waits on imports); one after the other in this process, where two
    threads importing the same packages at once can see a module half initialised."""
    if any(function.isolation == "thread" for function in functions):
        for function in functions:
            function.load()
        return
    with ThreadPoolExecutor(max_workers=len(functions)) as pool:
        for future in [pool.submit(function.load) for function in functions]:
            future.result()


def run_dev(
    port: int = DEFAULT_PORT,
    agents_dir: str = "agents",
    state_dir: str | Path | None = DEFAULT_STATE_DIR,
    *,
    http_handler: str | Handler = DEFAULT_HTTP_HANDLER,
    worker_handler: str | Handler = DEFAULT_WORKER_HANDLER,
    out: TextIO | None = None,
    stop: threading.Event | None = None,
    **options: Any,
) -> None:
    """Serve until Ctrl-C or SIGTERM (or `stop` is set), then save the state and return.

    Prints a start-up line, then exactly ``ready: http://127.0.0.1:PORT`` once requests are
    served, then ``websocket: ws://127.0.0.1:PORT/local`` when there is a WebSocket API, then
    ``console: http://127.0.0.1:PORT/console/``. The
    working directory goes on ``sys.path`` first, as ``python -m`` would put it, so the
    project's ``functions`` and ``agents`` import. `options` go to `LocalStack`.
    """
    out = out or sys.stdout
    stop = stop or threading.Event()
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    _show_logs()
    stack = LocalStack(
        port=port,
        agents_dir=agents_dir,
        state_dir=state_dir,
        http_handler=http_handler,
        worker_handler=worker_handler,
        **options,
    )
    previous = _on_signals(stop)
    try:
        _serve(stack, stop, state_dir=state_dir, out=out)
    finally:
        # Restored only now: a second SIGTERM while the state is saved must not end the process.
        _restore_signals(previous)


def _serve(
    stack: LocalStack, stop: threading.Event, *, state_dir: str | Path | None, out: TextIO
) -> None:
    """Start, print the start-up lines, wait for `stop`, and stop (saving the state)."""
    try:
        stack.start()
        where = f"state in {state_dir}/" if state_dir is not None else "no saved state"
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in stack.phases.items())
        print(
            f"started in {stack.ready_seconds:.2f} s ({phases}); {where} (restored {stack.restored}); "
            f"AWS endpoint {stack.aws.endpoint_url}",
            file=out,
        )
        print(f"ready: {stack.url}", file=out, flush=True)
        if stack.websocket is not None:
            print(f"websocket: {stack.ws_url}", file=out, flush=True)
        print(f"console: {stack.url}/console/", file=out, flush=True)
        # A timed wait: a signal delivered to another thread runs its handler only when the
        # main thread wakes up, which a wait without timeout would never do.
        while not stop.wait(0.2):
            pass
        print(
            "stopping; saving state" if state_dir is not None else "stopping", file=out, flush=True
        )
    finally:
        stack.stop()


def _on_signals(stop: threading.Event) -> dict[int, Any]:
    """Ctrl-C and SIGTERM set `stop`. A second Ctrl-C interrupts the shutdown itself; a second
    SIGTERM does not (a supervisor repeating it would lose the state)."""
    if threading.current_thread() is not threading.main_thread():
        return {}

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    return {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}


def _restore_signals(previous: dict[int, Any]) -> None:
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _show_logs() -> None:
    logger = logging.getLogger("agent_runtime")
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
