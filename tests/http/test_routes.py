"""The HTTP Lambda's routes, called with real API Gateway payload 2.0 events.

Prompt, dispatch, history, abort, the route hook, health, OpenAPI and events. The core
flow (prompt, dispatch, history) runs on the memory backend and under moto. The harness
is `tests.http.harness`; the error replies are in `test_errors.py`.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from agent_runtime.adapters.aws.bootstrap import run
from tests.http.harness import (
    ISO_UTC,
    Api,
    assert_error,
    both_backends,
    open_model_gate,
    seen,
)

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


def test_a_definition_broken_at_run_time_fails_the_submission_naming_agent_and_field(api: Api) -> None:
    reply = api.call("POST", "/agents/misconfigured/bad", {"message": "hello"})

    assert reply.status == 200, reply.body
    submission = reply.json["submission"]
    assert submission["outcome"] == "failed" and submission["attempts"] == 1
    error = submission["error"]
    assert error["type"] == "agent_definition_error"
    assert error["agent"] == "misconfigured" and error["field"] == "durability.timeuot"
    assert "timeuot" in error["message"]
    good = api.call("POST", "/agents/misconfigured/good", {"message": "hello"})
    assert good.status == 200 and good.json["result"]["text"] == "echo: hello"


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

    open_model_gate()

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


def test_a_busy_instance_rejects_a_prompt_that_asks_so(api: Api) -> None:
    api.worker.paused = True  # the first prompt stays queued: the instance is busy
    first = api.call("POST", "/agents/echo/busy-1", {"message": "one", "wait": 0})
    assert first.status == 202, first.body
    refused = api.call("POST", "/agents/echo/busy-1", {"message": "two", "concurrency": "reject", "wait": 0})
    error = assert_error(refused, 409, "busy")
    assert error["details"]["submission_id"] == first.json["submission"]["id"]
    assert len(api.submissions("echo", "busy-1")) == 1
    bad = api.call("POST", "/agents/echo/busy-1", {"message": "two", "concurrency": "sometimes"})
    assert_error(bad, 400, "invalid_request")
