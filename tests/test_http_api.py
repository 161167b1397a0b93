"""The HTTP Lambda, called with real API Gateway payload 2.0 events.

The API runs on the memory backend; the core flow (prompt, dispatch, history) also on
the AWS adapters under moto. Tests are plain functions: the handler runs coroutines on
the container's one event loop (`bootstrap.run`), as it does in Lambda.
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
from agent_runtime.definition import create_agent
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


def model_down(request: ModelRequest) -> str:
    raise RuntimeError("model down")


@tool
def look_around() -> str:
    """Look around."""
    return "nothing here"


#: Holds the `slow` agent's model call until a test sets it (a fresh one per test).
model_gate = asyncio.Event()


async def gated(request: ModelRequest) -> str | ToolCall:
    """First turn: wait for the gate, then call a tool (so a checkpoint follows the model
    call, where an abort request is honoured). Second turn: answer."""
    if any(m.role == "assistant" for m in request.messages):
        return "done"
    await model_gate.wait()
    return ToolCall("look_around")


def registry() -> Registry:
    agents = Registry()
    agents.add("echo", create_agent(model="test/echo"), route=spy)
    agents.add("guarded", create_agent(model="test/echo"), route=bearer_only)
    agents.add("internal", create_agent(model="test/echo"))  # no route hook: not exposed
    agents.add("failing", create_agent(model=FunctionModel(model_down), durability={"retry": 1}), route=spy)
    agents.add("slow", create_agent(model=FunctionModel(gated), tools=[look_around]), route=spy)
    agents.add("broken", create_agent(model="test/echo"), route=explodes)
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
        raw = base64.b64decode(response["body"]).decode() if response.get("isBase64Encoded") else response["body"]
        return Reply(response["statusCode"], {k.lower(): v for k, v in response["headers"].items()}, raw)

    def submissions(self, agent: str, instance_id: str) -> list[SubmissionRecord]:
        return run(self.runtime.store.list_submissions(InstanceRef(agent, instance_id)))

    def settle(self, location: str, *, timeout: float = 10.0) -> dict[str, Any]:
        """Poll a submission's URL, letting the worker run between polls."""
        deadline = time.monotonic() + timeout
        while True:
            reply = self.call("GET", location)
            assert reply.status == 200, reply.body
            if reply.json["status"] == "settled" or time.monotonic() > deadline:
                return dict(reply.json)
            run(asyncio.sleep(0.01))


@pytest.fixture
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    global model_gate
    kind = getattr(request, "param", "memory")
    with contextlib.ExitStack() as stack:
        if kind == "moto":
            stack.enter_context(mock_aws())
            backend = moto_backend(visibility_timeout=30)
        else:
            backend = memory_backend()
        worker = BackgroundWorker(backend.wakeups)
        runtime = Runtime(registry=registry(), store=backend.store, wakeups=worker)
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


# --- prompt --------------------------------------------------------------------------------


@both_backends
def test_prompt_answers_with_the_result_when_it_settles_within_wait(api: Api) -> None:
    reply = api.call("POST", "/agents/echo/t-1", {"message": "hello there"})

    assert reply.status == 200, reply.body
    assert "location" not in reply.headers
    assert reply.headers["x-route-hook"] == "seen"
    body = reply.json
    assert body["result"]["text"] == "echo: hello there"
    assert body["result"]["usage"]["requests"] == 1
    submission = body["submission"]
    assert submission["status"] == "settled" and submission["outcome"] == "completed"
    assert submission["kind"] == "direct" and submission["session"] == "default" and submission["sequence"] == 0
    assert submission["result"] == body["result"] and submission["error"] is None
    assert submission["attempts"] == 1
    for stamp in ("accepted_at", "started_at", "settled_at"):
        assert ISO_UTC.match(submission[stamp]), submission[stamp]
    assert len(api.submissions("echo", "t-1")) == 1


def test_prompt_not_settled_within_wait_is_202_with_location(api: Api) -> None:
    reply = api.call("POST", "/agents/echo/t-2", {"message": "later", "wait": 0})

    assert reply.status == 202, reply.body
    submission = reply.json["submission"]
    assert "result" not in reply.json
    assert submission["status"] == "queued" and submission["outcome"] is None and submission["started_at"] is None
    assert reply.headers["location"] == f"/agents/echo/t-2/submissions/{submission['id']}"

    settled = api.settle(reply.headers["location"])
    assert settled["id"] == submission["id"]
    assert settled["outcome"] == "completed"
    assert settled["result"]["text"] == "echo: later"


def test_prompt_that_fails_is_still_200_with_outcome_and_error_and_no_result(api: Api) -> None:
    reply = api.call("POST", "/agents/failing/t-3", {"message": "anything"})

    assert reply.status == 200, reply.body
    assert "result" not in reply.json
    submission = reply.json["submission"]
    assert submission["outcome"] == "failed" and submission["result"] is None
    assert submission["error"]["type"] == "retries_exhausted"


def test_idempotency_key_replays_the_first_submission(api: Api) -> None:
    key = {"Idempotency-Key": "order-42"}
    first = api.call("POST", "/agents/echo/t-4", {"message": "once"}, headers=key)
    again = api.call("POST", "/agents/echo/t-4", {"message": "once"}, headers=key)

    assert first.status == again.status == 200
    assert again.json["submission"]["id"] == first.json["submission"]["id"]
    assert again.json["result"]["text"] == "echo: once"
    assert len(api.submissions("echo", "t-4")) == 1

    other = api.call("POST", "/agents/echo/t-4", {"message": "something else"}, headers=key)
    assert_error(other, 409, "conflict")
    assert len(api.submissions("echo", "t-4")) == 1


def test_a_base64_encoded_body_is_decoded(api: Api) -> None:
    reply = api.call("POST", "/agents/echo/t-5", json.dumps({"message": "héllo"}).encode())
    assert reply.status == 200, reply.body
    assert reply.json["result"]["text"] == "echo: héllo"


# --- dispatch ------------------------------------------------------------------------------


@both_backends
def test_dispatch_receipts_are_idempotent_and_conflict_on_other_input(api: Api) -> None:
    request = {"input": {"order": 7, "items": ["a", "b"]}, "dispatch_id": "evt-1"}
    first = api.call("POST", "/agents/echo/t-6/dispatch", request)
    again = api.call("POST", "/agents/echo/t-6/dispatch", request)

    assert first.status == again.status == 202, first.body
    receipt = first.json
    assert set(receipt) == {"dispatch_id", "submission_id", "accepted_at"}
    assert receipt["dispatch_id"] == "evt-1" and ISO_UTC.match(receipt["accepted_at"])
    assert again.json == receipt
    assert first.headers["location"] == f"/agents/echo/t-6/submissions/{receipt['submission_id']}"

    conflict = api.call("POST", "/agents/echo/t-6/dispatch", {"input": {"order": 8}, "dispatch_id": "evt-1"})
    assert_error(conflict, 409, "conflict")

    settled = api.settle(first.headers["location"])
    assert settled["kind"] == "dispatch" and settled["outcome"] == "completed"
    assert json.loads(settled["result"]["text"].removeprefix("echo: ")) == request["input"]
    assert len(api.submissions("echo", "t-6")) == 1


def test_dispatch_without_an_id_gets_a_fresh_one_each_time(api: Api) -> None:
    first = api.call("POST", "/agents/echo/t-7/dispatch", {"input": "ping", "session": "events"})
    second = api.call("POST", "/agents/echo/t-7/dispatch", {"input": "ping", "session": "events"})

    assert first.status == second.status == 202
    assert first.json["dispatch_id"].startswith("d-")
    assert first.json["dispatch_id"] != second.json["dispatch_id"]
    assert first.json["submission_id"] != second.json["submission_id"]


# --- history -------------------------------------------------------------------------------


@both_backends
def test_history_pages_with_a_cursor(api: Api) -> None:
    assert api.call("POST", "/agents/echo/t-8", {"message": "one", "session": "s1"}).status == 200
    assert api.call("POST", "/agents/echo/t-8", {"message": "two", "session": "s1"}).status == 200

    texts: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        reply = api.call("GET", "/agents/echo/t-8/sessions/s1/messages", query=query)
        assert reply.status == 200, reply.body
        page = reply.json
        pages += 1
        for message in page["messages"]:
            assert set(message) == {"cursor", "role", "parts", "synthetic"}
            texts.append(f"{message['role']}:{message['parts'][0]['text']}")
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 2
    assert texts == ["user:one", "assistant:echo: one", "user:two", "assistant:echo: two"]

    whole = api.call("GET", "/agents/echo/t-8/sessions/s1/messages").json
    assert len(whole["messages"]) == 4 and whole["next_cursor"] is None
    assert api.call("GET", "/agents/echo/t-8/sessions/other/messages").json == {"messages": [], "next_cursor": None}


# --- abort ---------------------------------------------------------------------------------


def test_abort_leaves_queued_submissions_unless_asked(api: Api) -> None:
    api.worker.paused = True
    ids = [api.call("POST", "/agents/echo/t-9", {"message": m, "wait": 0}).json["submission"]["id"] for m in ("a", "b")]

    nothing = api.call("POST", "/agents/echo/t-9/abort")
    assert nothing.status == 200 and nothing.json == {"aborted": []}

    reply = api.call("POST", "/agents/echo/t-9/abort", query={"queued": "true"})
    assert reply.status == 200, reply.body
    aborted = reply.json["aborted"]
    assert [s["id"] for s in aborted] == ids
    assert all(s["status"] == "settled" and s["outcome"] == "aborted" for s in aborted)

    run(api.worker.resume())
    assert api.settle(f"/agents/echo/t-9/submissions/{ids[1]}")["outcome"] == "aborted"


def test_abort_stops_the_running_submission(api: Api) -> None:
    reply = api.call("POST", "/agents/slow/t-10", {"message": "take your time", "wait": 0.1})
    assert reply.status == 202, reply.body
    assert reply.json["submission"]["status"] == "running"

    aborted = api.call("POST", "/agents/slow/t-10/abort").json["aborted"]
    assert [s["id"] for s in aborted] == [reply.json["submission"]["id"]]
    assert aborted[0]["status"] == "running"  # asked to stop: it stops at its next checkpoint

    model_gate.set()

    assert api.settle(reply.headers["location"])["outcome"] == "aborted"


# --- the route hook ------------------------------------------------------------------------


def test_the_hook_answers_first_and_nothing_is_admitted(api: Api) -> None:
    denied = api.call("POST", "/agents/guarded/t-11", {"message": "let me in"})
    assert denied.status == 401
    assert denied.json == {"error": "Unauthorized"}
    assert api.call("POST", "/agents/guarded/t-11/dispatch", {"input": 1}).status == 401
    assert api.call("GET", "/agents/guarded/t-11/sessions/default/messages").status == 401
    assert api.submissions("guarded", "t-11") == []

    allowed = api.call("POST", "/agents/guarded/t-11", {"message": "let me in"}, headers={"authorization": "Bearer ok"})
    assert allowed.status == 200, allowed.body
    assert allowed.json["result"]["text"] == "echo: let me in"


def test_the_hook_sees_the_whole_request(api: Api) -> None:
    body = {"message": "look", "wait": 0}
    api.call("POST", "/agents/echo/t-12", body, headers={"X-Trace": "abc", "Cookie": "a=1; b=2"}, query={"tag": "x"})
    sid = api.submissions("echo", "t-12")[0].id
    api.call("GET", f"/agents/echo/t-12/submissions/{sid}")
    api.call("GET", "/agents/echo/t-12/sessions/main/messages?limit=5")

    prompt, read, history = seen
    assert prompt.method == "POST" and prompt.path == "/agents/echo/t-12"
    assert dict(prompt.params) == {"name": "echo", "id": "t-12"}
    assert prompt.headers["x-trace"] == prompt.headers["X-TRACE"] == "abc"
    assert prompt.headers.get("cookie") == "a=1; b=2"
    assert dict(prompt.query) == {"tag": "x"}
    assert prompt.json() == body
    assert prompt.event["requestContext"]["http"]["method"] == "POST"
    assert dict(read.params) == {"name": "echo", "id": "t-12", "submission_id": sid}
    assert read.body == ""
    assert dict(history.params) == {"name": "echo", "id": "t-12", "session": "main"}
    assert dict(history.query) == {"limit": "5"}


# --- errors --------------------------------------------------------------------------------


def test_malformed_json_is_invalid_json(api: Api) -> None:
    assert_error(api.call("POST", "/agents/echo/t-13", '{"message": '), 400, "invalid_json")
    assert_error(api.call("POST", "/agents/echo/t-13", '{"message": NaN}'), 400, "invalid_json")
    assert_error(api.call("POST", "/agents/echo/t-13", '{"message": "\\ud800"}'), 400, "invalid_json")
    assert_error(api.call("POST", "/agents/echo/t-13", b"\xff\xfe not utf-8"), 400, "invalid_json")
    assert api.submissions("echo", "t-13") == []


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/agents/echo/t-14", {}, ["body", "message"]),
        ("/agents/echo/t-14", None, ["body"]),
        ("/agents/echo/t-14", [], ["body"]),
        ("/agents/echo/t-14", {"message": ""}, ["body", "message"]),
        ("/agents/echo/t-14", {"message": 5}, ["body", "message"]),
        ("/agents/echo/t-14", {"message": "x" * 200_001}, ["body", "message"]),
        ("/agents/echo/t-14", {"message": "x", "wait": 25.5}, ["body", "wait"]),
        ("/agents/echo/t-14", {"message": "x", "wait": -1}, ["body", "wait"]),
        ("/agents/echo/t-14", {"message": "x", "surprise": 1}, ["body", "surprise"]),
        ("/agents/echo/t-14/dispatch", {"dispatch_id": "d1"}, ["body", "input"]),
        ("/agents/echo/t-14/dispatch", {"input": 1, "extra": True}, ["body", "extra"]),
    ],
)
def test_a_body_outside_its_schema_is_invalid_request_with_pydantic_errors(
    api: Api, path: str, body: Any, loc: list[str]
) -> None:
    error = assert_error(api.call("POST", path, body), 400, "invalid_request")
    errors = error["details"]["errors"]
    assert loc in [e["loc"] for e in errors]
    assert all({"type", "loc", "msg"} <= set(e) and "input" not in e for e in errors)
    assert api.submissions("echo", "t-14") == []


@pytest.mark.parametrize(
    ("method", "path", "body", "headers"),
    [
        ("POST", "/agents/Not_A_Name/t-15", {"message": "x"}, None),
        ("POST", "/agents/echo/" + "i" * 80, {"message": "x"}, None),
        ("POST", "/agents/echo/has space", {"message": "x"}, None),
        ("POST", "/agents/echo/t-15", {"message": "x", "session": "no spaces"}, None),
        ("POST", "/agents/echo/t-15", {"message": "x"}, {"Idempotency-Key": "not a key"}),
        ("POST", "/agents/echo/t-15/dispatch", {"input": 1, "dispatch_id": "bad/id"}, None),
        ("GET", "/agents/echo/t-15/sessions/bad!/messages", None, None),
        ("GET", "/agents/echo/t-15/sessions/default/messages?limit=0", None, None),
        ("GET", "/agents/echo/t-15/sessions/default/messages?limit=1001", None, None),
        ("GET", "/agents/echo/t-15/sessions/default/messages?limit=ten", None, None),
        ("GET", "/agents/echo/t-15/sessions/default/messages?cursor=zzz", None, None),
        ("POST", "/agents/echo/t-15/abort?queued=maybe", None, None),
    ],
)
def test_bad_names_ids_and_parameters_are_invalid_request(
    api: Api, method: str, path: str, body: Any, headers: dict[str, str] | None
) -> None:
    assert_error(api.call(method, path, body, headers), 400, "invalid_request")
    assert api.submissions("echo", "t-15") == []


def test_a_body_over_one_mebibyte_is_payload_too_large(api: Api) -> None:
    reply = api.call("POST", "/agents/echo/t-16", {"message": "x" * (1024 * 1024)})
    error = assert_error(reply, 413, "payload_too_large")
    assert error["details"]["limit"] == 1024 * 1024
    encoded = api.call("POST", "/agents/echo/t-16/dispatch", json.dumps({"input": "y" * (1024 * 1024)}).encode())
    assert_error(encoded, 413, "payload_too_large")
    assert api.submissions("echo", "t-16") == []


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/agents/echo"),
        ("DELETE", "/agents/echo/t-17"),
        ("GET", "/agents/echo/t-17/abort"),
    ],
)
def test_an_unknown_route_is_not_found(api: Api, method: str, path: str) -> None:
    assert_error(api.call(method, path), 404, "not_found")


def test_unknown_agents_and_agents_without_a_route_hook_are_not_found(api: Api) -> None:
    unknown = assert_error(api.call("POST", "/agents/nobody/t-18", {"message": "x"}), 404, "agent_not_found")
    internal = assert_error(api.call("POST", "/agents/internal/t-18", {"message": "x"}), 404, "agent_not_found")
    assert internal["message"] == unknown["message"].replace("nobody", "internal")
    assert_error(api.call("GET", "/agents/internal/t-18/sessions/default/messages"), 404, "agent_not_found")
    assert api.submissions("internal", "t-18") == []


def test_an_unknown_submission_is_not_found(api: Api) -> None:
    assert_error(api.call("GET", "/agents/echo/t-19/submissions/sub-0000000042-0123abcd"), 404, "submission_not_found")
    assert_error(api.call("GET", "/agents/echo/t-19/submissions/whatever"), 404, "submission_not_found")


def test_an_unexpected_exception_is_a_500_without_its_details(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    reply = api.call("POST", "/agents/broken/t-20", {"message": "x"})
    error = assert_error(reply, 500, "internal_error")
    assert "details" not in error
    assert "secret" not in reply.body and "Traceback" not in reply.body
    [logged] = [r for r in caplog.records if r.getMessage() == "request failed"]  # the trace goes to the log
    assert logged.exc_info is not None and str(logged.exc_info[1]) == "secret detail from the hook"

    async def history_fails(*args: Any, **kwargs: Any) -> Any:
        raise KeyError("secret store detail")

    monkeypatch.setattr(api.runtime, "history", history_fails)
    reply = api.call("GET", "/agents/echo/t-20/sessions/default/messages")
    assert_error(reply, 500, "internal_error")
    assert "secret" not in reply.body


# --- the rest ------------------------------------------------------------------------------


def test_health(api: Api) -> None:
    reply = api.call("GET", "/health")
    assert reply.status == 200 and reply.json == {"ok": True}


def test_openapi_document_publishes_routes_and_wire_models(api: Api) -> None:
    reply = api.call("GET", "/openapi.json")
    assert reply.status == 200, reply.body
    doc = reply.json
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    assert set(paths) >= {
        "/agents/{name}/{id}",
        "/agents/{name}/{id}/submissions/{submission_id}",
        "/agents/{name}/{id}/dispatch",
        "/agents/{name}/{id}/sessions/{session}/messages",
        "/agents/{name}/{id}/abort",
        "/health",
    }
    prompt = paths["/agents/{name}/{id}"]["post"]
    request_schema = prompt["requestBody"]["content"]["application/json"]["schema"]
    assert request_schema == {"$ref": "#/components/schemas/PromptRequest"}
    assert {"200", "202", "400", "404", "409", "413", "500"} <= set(prompt["responses"])
    assert "Location" in prompt["responses"]["202"]["headers"]
    assert {p["name"] for p in prompt["parameters"]} == {"name", "id", "Idempotency-Key"}
    history = paths["/agents/{name}/{id}/sessions/{session}/messages"]["get"]
    parameters = {(p["name"], p["in"]) for p in history["parameters"]}
    assert parameters >= {("limit", "query"), ("cursor", "query"), ("session", "path")}
    schemas = doc["components"]["schemas"]
    published = {"PromptRequest", "DispatchRequest", "Submission", "PromptResponse", "DispatchReceipt"}
    assert published | {"HistoryPage", "AbortResponse", "ErrorBody"} <= set(schemas)
    assert "HTTPValidationError" not in schemas
    assert schemas["PromptRequest"]["additionalProperties"] is False


def test_events_page_by_offset_and_refuse_bad_queries(api: Api) -> None:
    for text in ("one", "two"):
        assert api.call("POST", "/agents/echo/ev", {"message": text}).status == 200
    first = api.call("GET", "/agents/echo/ev/events", query={"limit": "3"})
    assert first.status == 200, first.body
    page = first.json
    assert len(page["events"]) == 3 and page["last"] == page["events"][-1]["offset"]
    assert page["events"][0]["type"] == "submission_queued"
    assert all(ISO_UTC.match(e["at"]) and e["agent"] == "echo" and e["id"] == "ev" for e in page["events"])
    rest = api.call("GET", "/agents/echo/ev/events", query={"after": str(page["last"]), "limit": "1000"}).json
    offsets = [e["offset"] for e in page["events"] + rest["events"]]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    text = "".join(e["text"] for e in page["events"] + rest["events"] if e["type"] == "text_delta")
    assert text == "echo: oneecho: two"
    empty = api.call("GET", "/agents/echo/ev/events", query={"after": str(rest["last"])}).json
    assert empty == {"events": [], "last": rest["last"]}
    for query in ({"after": "-1"}, {"after": "x"}, {"limit": "0"}, {"wait": "26"}):
        reply = api.call("GET", "/agents/echo/ev/events", query=query)
        assert reply.status == 400 and reply.json["error"]["type"] == "invalid_request", (query, reply.body)
    assert api.call("GET", "/agents/internal/ev/events").status == 404


def test_events_long_poll_answers_when_an_event_lands(api: Api) -> None:
    async def later() -> None:
        await asyncio.sleep(0.3)
        await api.runtime.prompt("echo", "lp", "late")

    # The handler runs its coroutines on the container's loop, so the admission is
    # scheduled on that loop and the long poll, running on it, sees it land.
    run(api.runtime.events_after("echo", "lp", after=0))
    loop_task = run(_schedule(later()))
    started = time.monotonic()
    reply = api.call("GET", "/agents/echo/lp/events", query={"wait": "10"})
    waited = time.monotonic() - started
    assert loop_task.done()
    assert reply.status == 200 and [e["type"] for e in reply.json["events"]][:1] == ["submission_queued"]
    assert 0.2 < waited < 5


async def _schedule(coro: Any) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(coro)
