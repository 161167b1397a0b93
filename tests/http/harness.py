"""The harness for the HTTP Lambda's tests: the application, a worker, and a caller.

The handler is called with real API Gateway payload 2.0 events. The API runs on the
memory backend, or on the AWS adapters under moto when a test asks for `both_backends`.
Tests are plain functions: the handler runs coroutines on the container's one event loop
(`bootstrap.run`), as it does in Lambda.

Tests get an `Api` from the `api` fixture (``conftest.py``, which also has pytest rewrite
this module's asserts, so `assert_error` reports its operands).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from moto import mock_aws

from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.definition import AgentContext, create_agent
from agent_runtime.effects import effect
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.ports import WakeUps
from agent_runtime.registry import Registry
from agent_runtime.routing import RouteRequest, RouteResponse
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, memory_backend, moto_backend
from agent_runtime.testing.events import http_event
from agent_runtime.tools import tool
from agent_runtime.variables import Secret, Variable, env
from functions import http_api

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


# --- the application under test ----------------------------------------------------------

seen: list[RouteRequest] = []


async def spy(req: RouteRequest, call_next: Any) -> RouteResponse:
    """Passes everything; records the request, calls `call_next` twice (the work must
    happen once) and marks the response."""
    seen.append(req)
    first = await call_next()
    assert await call_next() is first
    first.headers["x-route-hook"] = "seen"
    return first


def bearer_only(req: RouteRequest, call_next: Any) -> RouteResponse:
    """A plain function: it runs on a worker thread and its `call_next` returns directly."""
    if req.headers.get("Authorization") != "Bearer ok":
        return req.json({"error": "Unauthorized"}, status=401)
    response: RouteResponse = call_next()
    return response


async def explodes(req: RouteRequest, call_next: Any) -> RouteResponse:
    raise RuntimeError("secret detail from the hook")


def misconfigured(ctx: AgentContext) -> dict[str, Any]:
    """A definition whose `init(ctx)` breaks for one instance only, at run time."""
    if ctx.id == "bad":
        return {"model": "test/echo", "durability": {"retry": 3, "timeuot": 5}}
    return {"model": "test/echo"}


#: What the `shop` agent's model was asked (the system prompt, the messages).
shop_requests: list[ModelRequest] = []


def remember_system(request: ModelRequest) -> str:
    shop_requests.append(request)
    return "at your service"


def model_down(request: ModelRequest) -> str:
    raise RuntimeError("model down")


@tool
def look_around() -> str:
    """Look around."""
    return "nothing here"


#: Holds the `slow` agent's model call until a test opens it. The `api` fixture rebinds it
#: (a fresh one per test, from the `api` fixture in ``conftest.py``), so tests call
#: `open_model_gate()` rather than import the name.
model_gate = asyncio.Event()


def open_model_gate() -> None:
    model_gate.set()


async def gated(request: ModelRequest) -> str | ToolCall:
    """First turn: wait for the gate, then call a tool (so a checkpoint follows the model
    call, where an abort request is honoured). Second turn: answer."""
    if any(m.role == "assistant" for m in request.messages):
        return "done"
    await model_gate.wait()
    return ToolCall("look_around")


@effect
async def nudge(ctx: Any, text: str) -> str:
    return f"nudged: {text}"


async def schedule_nudge(ctx: Any) -> str:
    """`on_dispatch` of "reminders": schedules a nudge; its id is the result."""
    return await ctx.schedule("nudge", {"text": ctx.input["text"]}, delay=ctx.input["delay"])


def registry() -> Registry:
    agents = Registry()
    agents.add("reminders", create_agent(model="test/echo", effects=[nudge]), route=spy, on_dispatch=schedule_nudge)
    agents.add("echo", create_agent(model="test/echo"), route=spy)
    agents.add("guarded", create_agent(model="test/echo"), route=bearer_only)
    agents.add("internal", create_agent(model="test/echo"))  # no route hook: not exposed
    agents.add("failing", create_agent(model=FunctionModel(model_down), durability={"retry": 1}), route=spy)
    agents.add("slow", create_agent(model=FunctionModel(gated), tools=[look_around]), route=spy)
    agents.add("broken", create_agent(model="test/echo"), route=explodes)
    agents.add("misconfigured", create_agent(misconfigured), route=spy)
    agents.add(
        "shop",
        create_agent(
            model=FunctionModel(remember_system),
            instructions=["You sell shoes. Inventory:", env("INVENTORY")],
            variables=[Variable("INVENTORY", required=True), Secret("CRM_TOKEN", description="for the CRM tool")],
        ),
        route=spy,
    )
    return agents


# --- the worker beside the API -------------------------------------------------------------


class BackgroundWorker:
    """The worker Lambda, running beside the API on the container's event loop.

    The runtime's wake-ups go to the backend as usual (SQS under moto), and each also
    starts a drain of its instance as a task on the loop `bootstrap.run` drives. The
    task makes progress whenever that loop runs: while `runtime.wait` polls inside a
    prompt, or during later requests. That is the production interleaving (the API
    admits and waits, a worker settles the submission meanwhile) without threads
    sharing the stores. A drain that finds the head held by another (`busy`) tries
    again shortly, as SQS would redeliver its wake-up. `paused` holds wake-ups back so
    submissions stay queued.
    """

    def __init__(self, wakeups: WakeUps) -> None:
        self.wakeups = wakeups
        self.runtime: Runtime | None = None
        self.paused = False
        self.held: list[InstanceRef] = []
        self.tasks: set[asyncio.Task[None]] = set()

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        await self.wakeups.send(instance, reason=reason, dedupe_id=dedupe_id)
        if self.paused:
            self.held.append(instance)
        else:
            self._start(instance)

    def _start(self, instance: InstanceRef) -> None:
        task = asyncio.get_running_loop().create_task(self._drain(instance))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain(self, instance: InstanceRef) -> None:
        assert self.runtime is not None
        for _ in range(1000):
            result = await self.runtime.drain(instance, deadline=self.runtime.clock() + 60)
            if result.state == "idle":
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"{instance} never drained")

    async def resume(self) -> None:
        self.paused = False
        for instance in self.held:
            self._start(instance)
        self.held.clear()

    async def join(self) -> None:
        while self.tasks:
            await asyncio.gather(*self.tasks)


# --- calling the handler -------------------------------------------------------------------


@dataclass
class FakeLambdaContext:
    function_name: str = "http-api"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:http-api"
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@dataclass
class Reply:
    status: int
    #: names lower-cased
    headers: dict[str, str]
    body: str
    raw: bytes = b""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Api:
    runtime: Runtime
    backend: Backend
    worker: BackgroundWorker

    def call(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, query: dict[str, str] | None = None
    ) -> Reply:
        response = http_api.handler(http_event(method, path, body, headers, query), cast(Any, FakeLambdaContext()))
        assert set(response) >= {"statusCode", "body", "headers"}
        raw = base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()
        headers = {k.lower(): v for k, v in response["headers"].items()}
        return Reply(response["statusCode"], headers, raw.decode(errors="replace"), raw)

    def submissions(self, agent: str, instance_id: str) -> list[SubmissionRecord]:
        return run(self.runtime.stores.ledger.list_submissions(InstanceRef(agent, instance_id)))

    def settle(self, location: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Poll a submission's URL, letting the worker run between polls."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.call("GET", location)
            assert reply.status == 200, reply.body
            if reply.json["status"] == "settled" or time.monotonic() > deadline:
                return dict(reply.json)
            run(asyncio.sleep(0.01))


@contextlib.contextmanager
def serve(kind: str = "memory") -> Iterator[Api]:
    """The API on the `kind` backend ("memory" or "moto") with a worker beside it."""
    global model_gate
    with contextlib.ExitStack() as stack:
        if kind == "moto":
            stack.enter_context(mock_aws())
            backend = moto_backend(visibility_timeout=30)
        else:
            backend = memory_backend()
        worker = BackgroundWorker(backend.wakeups)
        runtime = Runtime(registry=registry(), stores=backend.stores, wakeups=worker)
        worker.runtime = runtime
        http_api.set_runtime(runtime)
        seen.clear()
        model_gate = asyncio.Event()
        try:
            yield Api(runtime, backend, worker)
        finally:
            model_gate.set()
            run(worker.resume())
            run(worker.join())
            http_api.set_runtime(None)


both_backends = pytest.mark.parametrize("api", ["memory", "moto"], indirect=True)


def assert_error(reply: Reply, status: int, type_: str) -> dict[str, Any]:
    assert reply.status == status, reply.body
    assert reply.headers["content-type"] == "application/json"
    body = reply.json
    assert set(body) == {"error"}
    assert set(body["error"]) <= {"type", "message", "details"}
    assert body["error"]["type"] == type_, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return dict(body["error"])
