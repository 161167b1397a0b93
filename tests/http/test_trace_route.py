"""``GET /agents/{name}/{id}/submissions/{submission_id}/trace`` with spans kept in the
instance table on moto (the ``table`` sink, as the local stack runs it)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_runtime import tracing
from agent_runtime.adapters.aws.dynamodb_spans import DynamoDBSpans
from agent_runtime.tracing.setup import with_exporter
from tests.http.harness import Api, assert_error, seen, serve


@pytest.fixture
def api() -> Iterator[Api]:
    with serve("moto") as api:
        assert api.backend.resources is not None
        store = DynamoDBSpans(api.backend.clients["dynamodb"], api.backend.resources.table, ttl_seconds=3600)
        tracing.configure(with_exporter(store.exporter(), reader=store))
        try:
            yield api
        finally:
            tracing.reset()


def test_the_trace_of_a_settled_submission_is_its_spans_as_a_tree(api: Api) -> None:
    prompt = api.call("POST", "/agents/echo/t-1", {"message": "hello"})
    assert prompt.status == 200, prompt.body
    submission_id = prompt.json["submission"]["id"]
    seen.clear()

    reply = api.call("GET", f"/agents/echo/t-1/submissions/{submission_id}/trace")

    assert reply.status == 200, reply.body
    assert seen, "the agent's route hook saw the request"
    body = reply.json
    assert len(body["trace_id"]) == 32
    spans = body["spans"]
    assert [s["name"] for s in spans] == ["invoke_agent echo", "attempt 1", "turn 1", "chat echo"]
    root, attempt, turn, chat = spans
    assert root["parent_span_id"] is None
    assert (attempt["parent_span_id"], turn["parent_span_id"], chat["parent_span_id"]) == (
        root["span_id"],
        attempt["span_id"],
        turn["span_id"],
    )
    for span in spans:
        assert set(span) == {"span_id", "parent_span_id", "name", "start", "end", "attributes"}
        assert isinstance(span["start"], float) and span["start"] <= span["end"]
        assert span["attributes"]["agent_runtime.submission.id"] == submission_id
    # The submission ends when it settles, inside its last attempt (which then flushes).
    assert root["start"] <= attempt["start"] <= turn["start"] <= chat["start"] <= chat["end"] <= root["end"]
    assert chat["attributes"]["gen_ai.response.finish_reasons"] == ["end_turn"]


def test_no_trace_is_404(api: Api) -> None:
    tracing.configure(None)  # tracing off: nothing is kept
    prompt = api.call("POST", "/agents/echo/t-2", {"message": "hello"})
    submission_id = prompt.json["submission"]["id"]
    assert_error(api.call("GET", f"/agents/echo/t-2/submissions/{submission_id}/trace"), 404, "trace_not_found")
    assert_error(api.call("GET", "/agents/echo/t-2/submissions/nope/trace"), 404, "submission_not_found")


def test_the_route_hook_guards_the_trace(api: Api) -> None:
    reply = api.call("GET", "/agents/guarded/t-3/submissions/any/trace")
    assert reply.status == 401, reply.body
    assert_error(api.call("GET", "/agents/internal/t-3/submissions/any/trace"), 404, "agent_not_found")
