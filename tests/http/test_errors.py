"""The HTTP Lambda's error replies: each failure has its status and error type.

Called with real API Gateway payload 2.0 events through `tests.http.harness`; every
error body has the one shape `assert_error` checks.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.http.harness import (
    Api,
    assert_error,
)


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
        ("POST", "/agents/echo/instances/more"),
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
