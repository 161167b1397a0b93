"""An embedded AWS for the local stack: a moto server on loopback, the process pointed at it.

`LocalAws.start()` starts moto's server on 127.0.0.1 (`moto_server.MotoServer`, which keeps
connections open between requests; a free port unless one is asked for), points boto3 in this process at it through the standard environment
variables (`AWS_ENDPOINT_URL`, region, dummy credentials, `MOTO_PORT`, loopback in
`NO_PROXY`), and creates the
runtime's resources with `provision()`, and its event bus, dispatch rule and schedule group
with `provision_events()` (in `events`). `stop()` resets moto and puts the environment back.

moto keeps its state in process-wide backends, so one `LocalAws` runs per process at a time;
a second `start()` while one runs raises `LocalAwsError`.

Requests reach moto through `journal_wsgi.JournalGate`, a WSGI wrapper that, once the
persistence layer attaches a journal, writes each state-changing request to the disk before
its answer leaves the server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import socket
import threading
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

from agent_runtime.adapters.aws.provision import (
    EventResources,
    Resources,
    provision,
    provision_children,
    provision_events,
)
from agent_runtime.dev.journal_wsgi import JournalGate
from agent_runtime.dev.moto_sqs import lazy_queue_counts
from agent_runtime.errors import AgentRuntimeError
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb

__all__ = ["LOCAL_REGION", "LocalAws", "LocalAwsError"]

LOCAL_REGION = "us-east-1"
_DUMMY_KEY = "local"

# Settings that would send boto3 elsewhere or to other credentials: removed while we run.
_ENV_CLEARED = (
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
)

_running_lock = threading.Lock()
_running: LocalAws | None = None


class LocalAwsError(AgentRuntimeError):
    type = "local_aws_error"


class EnvironmentChanges:
    """Changes to ``os.environ`` that `restore` undoes: each variable goes back to the
    value it had before its first change (or away, if it had none)."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def _save(self, name: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))

    def set(self, values: dict[str, str]) -> None:
        for name, value in values.items():
            self._save(name)
            os.environ[name] = value

    def unset(self, names: tuple[str, ...]) -> None:
        for name in names:
            self._save(name)
            os.environ.pop(name, None)

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


@dataclass
class LocalAws:
    """moto on loopback plus the provisioned resources. Use `start()` / `stop()` or `with`."""

    port: int = 0
    region: str = LOCAL_REGION
    quiet: bool = True
    resources: Resources | None = field(default=None, init=False)
    events: EventResources | None = field(default=None, init=False)
    gate: JournalGate | None = field(default=None, init=False)
    _server: Any = field(default=None, init=False, repr=False)
    _env: EnvironmentChanges = field(default_factory=EnvironmentChanges, init=False, repr=False)
    _endpoint: str = field(default="", init=False, repr=False)
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False)
    _clients_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def endpoint_url(self) -> str:
        if not self._endpoint:
            raise LocalAwsError("the local AWS is not started")
        return self._endpoint

    def client(self, service: str) -> Any:
        """A boto3 client for `service` on the local endpoint (one per service, thread-safe)."""
        endpoint = self.endpoint_url
        with self._clients_lock:
            key = (service, endpoint)
            if key not in self._clients:
                if self._session is None:
                    self._session = boto3.session.Session()
                self._clients[key] = self._session.client(
                    service,
                    endpoint_url=endpoint,
                    region_name=self.region,
                    aws_access_key_id=_DUMMY_KEY,
                    aws_secret_access_key=_DUMMY_KEY,
                    config=Config(retries={"max_attempts": 2, "mode": "standard"}),
                )
            return self._clients[key]

    def start(self) -> Resources:
        """Start moto, point this process at it, create the resources; returns them."""
        global _running
        with _running_lock:
            if _running is not None:
                raise LocalAwsError(
                    "a local AWS already runs in this process (moto state is global)"
                )
            _running = self
        try:
            from agent_runtime.dev.moto_server import MotoServer  # heavy import: only when starting

            # Handlers call DynamoDB concurrently; moto's transactions are not thread-safe.
            serialize_moto_dynamodb()
            lazy_queue_counts()  # each SQS request would count the queue's messages a dozen times
            if self.quiet:
                logging.getLogger("werkzeug").setLevel(logging.WARNING)
            self._server = MotoServer(ip_address="127.0.0.1", port=self.port)
            self._server.start()
            host, port = self._server.get_host_and_port()
            self.port = int(port)
            self._endpoint = f"http://{host}:{self.port}"
            self.gate = _install_gate(self._server)
            self._reset_moto()  # start from nothing even if this process used moto before
            self._set_environment()
            resources = provision(
                dynamodb=self.client("dynamodb"), sqs=self.client("sqs"), s3=self.client("s3"), kms=self.client("kms")
            )
            # Step Functions runs the blocking-child state machine, as deployed.
            self._configure_moto({"stepfunctions": {"execute_state_machine": True}})
            machine = provision_children(self.client("stepfunctions"), resources)
            self.events = provision_events(
                events=self.client("events"), sqs=self.client("sqs"), scheduler=self.client("scheduler")
            )
            self.resources = dataclasses.replace(resources, state_machine_arn=machine)
            return self.resources
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Forget moto's state, stop the server and restore the environment. Idempotent."""
        global _running
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._reset_moto()
            self._stop_server()
            self._server = None
        self._env.restore()
        self.events = None
        self._endpoint = ""
        with self._clients_lock:
            self._clients.clear()
        with _running_lock:
            if _running is self:
                _running = None

    def replay(self, record: bytes) -> str:
        """Apply one journal record to moto, as the request it was (see `journal_wsgi`)."""
        if self.gate is None:
            raise LocalAwsError("the local AWS is not started")
        return self.gate.replay(record, host=f"127.0.0.1:{self.port}")

    def __enter__(self) -> LocalAws:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _stop_server(self) -> None:
        # werkzeug looks for the shutdown request between polls (every 0.5 s); a connection
        # wakes it at once, so stopping takes milliseconds.
        stopper = threading.Thread(target=self._server.stop, name="moto-stop", daemon=True)
        stopper.start()
        while stopper.is_alive():
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            stopper.join(0.02)
        wsgi_server = getattr(self._server, "_server", None)
        if wsgi_server is not None:
            wsgi_server.server_close()

    def _configure_moto(self, config: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/config",
            data=json.dumps(config).encode(),
            headers={"content-type": "application/json"},
            method="POST",
        )
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(request, timeout=10) as response:
            response.read()

    def _reset_moto(self) -> None:
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with direct.open(request, timeout=10) as response:
            response.read()

    def _set_environment(self) -> None:
        values = {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ACCESS_KEY_ID": _DUMMY_KEY,
            "AWS_SECRET_ACCESS_KEY": _DUMMY_KEY,
            "MOTO_PORT": str(self.port),
        }
        # Loopback must never go through a proxy a developer has configured.
        no_proxy = os.environ.get("NO_PROXY") or os.environ.get("no_proxy") or ""
        loopback = ",".join(h for h in ("127.0.0.1", "localhost") if h not in no_proxy.split(","))
        values["NO_PROXY"] = values["no_proxy"] = ",".join(p for p in (no_proxy, loopback) if p)
        per_service = tuple(name for name in os.environ if name.startswith("AWS_ENDPOINT_URL_"))
        self._env.unset((*_ENV_CLEARED, *per_service))
        self._env.set(values)


def _install_gate(server: Any) -> JournalGate:
    """Wrap the WSGI app of moto's werkzeug server (the journal needs every request)."""
    wsgi_server: Any = getattr(server, "_server", None)
    app = getattr(wsgi_server, "app", None)
    if wsgi_server is None or app is None:
        raise LocalAwsError("moto's server has no WSGI app where one was expected")
    gate = JournalGate(app)
    wsgi_server.app = gate
    return gate
