"""The HTTP API emulator over real sockets: events in, responses out, API Gateway's limits."""

from __future__ import annotations

import base64
import os
import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from agent_runtime.dev.apigw_http import HttpApiEmulator, HttpApiError
from agent_runtime.dev.lambda_runtime import HandlerImportError
from tests.dev.handlers import PNG


@pytest.fixture
def echo() -> Iterator[HttpApiEmulator]:
    with HttpApiEmulator("tests.dev.handlers:echo", routes=["GET /agents/{name}/{id}"]) as emulator:
        yield emulator


@pytest.fixture
def responses() -> Iterator[HttpApiEmulator]:
    with HttpApiEmulator(
        "tests.dev.handlers:responses", integration_timeout=0.3, max_body_bytes=1000
    ) as emulator:
        yield emulator


def test_a_request_becomes_a_2_0_event(echo: HttpApiEmulator) -> None:
    response = httpx.post(
        f"{echo.url}/some/path?a=1&a=2&b=x%20y",
        content=b'{"hello": "world"}',
        headers=[
            ("content-type", "application/json"),
            ("X-Multi", "1"),
            ("X-Multi", "2"),
            ("cookie", "session=abc; theme=dark"),
            ("user-agent", "tests"),
        ],
    )
    assert response.status_code == 200
    assert response.headers["apigw-requestid"]
    seen = response.json()
    event = seen["event"]
    APIGatewayProxyEventV2Model.model_validate(event)
    assert event["routeKey"] == "$default"
    assert event["rawPath"] == "/some/path"
    assert event["rawQueryString"] == "a=1&a=2&b=x%20y"
    assert event["queryStringParameters"] == {"a": "1,2", "b": "x y"}
    assert event["headers"]["x-multi"] == "1,2"
    assert event["headers"]["content-type"] == "application/json"
    assert event["cookies"] == ["session=abc", "theme=dark"]
    assert event["body"] == '{"hello": "world"}' and event["isBase64Encoded"] is False
    http = event["requestContext"]["http"]
    assert (http["method"], http["path"], http["sourceIp"], http["userAgent"]) == (
        "POST",
        "/some/path",
        "127.0.0.1",
        "tests",
    )
    assert event["requestContext"]["requestId"] == response.headers["apigw-requestid"]
    context = seen["context"]
    assert context["function_name"] == "agent-runtime-http-api"
    assert context["invoked_function_arn"].endswith(":function:agent-runtime-http-api")
    assert context["memory_limit_in_mb"] == "1024"
    assert 25_000 < context["remaining_ms"] <= 30_000


def test_binary_bodies_arrive_base64_encoded(echo: HttpApiEmulator) -> None:
    response = httpx.put(f"{echo.url}/upload", content=PNG, headers={"content-type": "image/png"})
    event = response.json()["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == PNG


def test_a_matching_route_gives_its_key_and_path_parameters(echo: HttpApiEmulator) -> None:
    event = httpx.get(f"{echo.url}/agents/support/ticket-1").json()["event"]
    assert event["routeKey"] == event["requestContext"]["routeKey"] == "GET /agents/{name}/{id}"
    assert event["pathParameters"] == {"name": "support", "id": "ticket-1"}


def test_health_is_answered_by_the_emulator(echo: HttpApiEmulator) -> None:
    response = httpx.get(f"{echo.url}/health")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_responses_map_back_to_http(responses: HttpApiEmulator) -> None:
    with httpx.Client(base_url=responses.url) as client:
        plain = client.get("/string")
        assert (plain.status_code, plain.headers["content-type"], plain.text) == (
            200,
            "application/json",
            "hello",
        )
        inferred = client.get("/dict")
        assert inferred.json() == {"message": "hi"}
        binary = client.get("/binary")
        assert binary.status_code == 201
        assert binary.content == PNG
        assert binary.headers["content-type"] == "image/png"
        assert binary.headers["x-multi"] == "a,b" and binary.headers["x-number"] == "7"
        assert binary.headers.get_list("set-cookie") == [
            "session=abc; Path=/; HttpOnly",
            "theme=dark",
        ]
        empty = client.get("/empty")
        assert (empty.status_code, empty.content) == (204, b"")
        head = client.head("/dict")
        assert head.status_code == 200 and head.content == b""


def test_handler_failures_are_api_gateway_errors(responses: HttpApiEmulator) -> None:
    with httpx.Client(base_url=responses.url) as client:
        for path in ("/boom", "/malformed", "/unmarshallable"):
            response = client.get(path)
            assert (response.status_code, response.json()) == (
                500,
                {"message": "Internal Server Error"},
            ), path


def test_a_body_over_the_limit_is_413(responses: HttpApiEmulator) -> None:
    with httpx.Client(base_url=responses.url) as client:
        response = client.post("/string", content=b"x" * 1001)
        assert (response.status_code, response.json()) == (
            413,
            {"message": "Request Entity Too Large"},
        )
        assert client.post("/string", content=b"x" * 1000).status_code == 200
        # A chunked upload is counted as it arrives.
        chunked = client.post("/string", content=iter([b"x" * 600, b"x" * 600]))
        assert chunked.status_code == 413


def test_the_real_limit_is_api_gateways_10_mb() -> None:
    with HttpApiEmulator("tests.dev.handlers:responses") as emulator:
        response = httpx.post(f"{emulator.url}/string", content=b"x" * (10 * 1024 * 1024 + 1))
        assert response.status_code == 413


def test_expect_100_continue_is_refused_before_the_upload(responses: HttpApiEmulator) -> None:
    with socket.create_connection(("127.0.0.1", responses.port), timeout=5) as connection:
        connection.sendall(
            b"POST /string HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        assert connection.recv(1024).startswith(b"HTTP/1.1 413")


def test_no_answer_within_the_integration_timeout_is_503(responses: HttpApiEmulator) -> None:
    started = time.monotonic()
    response = httpx.get(f"{responses.url}/slow?seconds=1")
    assert (response.status_code, response.json()) == (503, {"message": "Service Unavailable"})
    assert time.monotonic() - started < 0.9
    assert httpx.get(f"{responses.url}/slow?seconds=0").text == "late"


def test_a_lambda_timeout_shorter_than_the_integration_is_500() -> None:
    with HttpApiEmulator(
        "tests.dev.handlers:responses", integration_timeout=5, function_timeout=0.2
    ) as emulator:
        assert httpx.get(f"{emulator.url}/slow?seconds=1").status_code == 500


def test_environments_are_reused_and_one_per_concurrent_invocation() -> None:
    with HttpApiEmulator("tests.dev.handlers:responses") as emulator:
        with httpx.Client(base_url=emulator.url) as client:
            first, second = (client.get("/pid").json()["pid"] for _ in range(2))
            assert first == second != os.getpid()  # a warm environment, not this process
        with ThreadPoolExecutor(max_workers=3) as pool:
            pids = set(
                pool.map(
                    lambda _: httpx.get(f"{emulator.url}/pid?seconds=0.2").json()["pid"], range(3)
                )
            )
        assert len(pids) == 3  # two cold starts beside the warm one


def test_a_timeout_kills_the_environment_and_a_crash_is_contained(
    responses: HttpApiEmulator,
) -> None:
    with httpx.Client(base_url=responses.url) as client:
        before = client.get("/pid").json()["pid"]
        assert client.get("/slow?seconds=5").status_code == 503
        after = client.get("/pid").json()["pid"]
        assert after != before  # a cold start after the timeout
        assert client.get("/exit").status_code == 500
        assert client.get("/pid").status_code == 200


def test_a_failing_init_stops_the_start() -> None:
    for handler in ("tests.dev.broken_handler:handler", "tests.dev.handlers:missing"):
        with pytest.raises(HandlerImportError):
            HttpApiEmulator(handler).start()


def test_a_taken_port_is_a_clear_error(echo: HttpApiEmulator) -> None:
    with pytest.raises(HttpApiError, match=f"cannot listen on 127.0.0.1:{echo.port} for the HTTP API") as taken:
        HttpApiEmulator("tests.dev.handlers:echo", port=echo.port, isolation="thread").start()
    assert "agent-runtime dev --port PORT picks another" in str(taken.value)


def test_thread_isolation_runs_in_this_process() -> None:
    with HttpApiEmulator("tests.dev.handlers:responses", isolation="thread") as emulator:
        assert httpx.get(f"{emulator.url}/pid").json()["pid"] == os.getpid()


def test_unmatched_requests_are_404_without_a_default_route() -> None:
    with HttpApiEmulator(
        "tests.dev.handlers:echo", routes=["GET /only"], default_route=False
    ) as emulator:
        assert httpx.get(f"{emulator.url}/only").status_code == 200
        missing = httpx.get(f"{emulator.url}/other")
        assert (missing.status_code, missing.json()) == (404, {"message": "Not Found"})


def test_powertools_http_resolver_runs_unchanged() -> None:
    with (
        HttpApiEmulator("tests.dev.handlers:powertools") as emulator,
        httpx.Client(base_url=emulator.url) as client,
    ):
        assert client.get("/items/42?q=x").json() == {"id": "42", "q": "x"}
        created = client.post("/items", json={"name": "n"})
        assert (created.status_code, created.json()) == (201, {"created": {"name": "n"}})
        assert client.get("/nothing").status_code == 404


def test_stop_closes_keep_alive_connections() -> None:
    emulator = HttpApiEmulator("tests.dev.handlers:responses")
    emulator.start()
    client = httpx.Client(base_url=emulator.url)
    assert client.get("/string").status_code == 200
    started = time.monotonic()
    emulator.stop()
    assert time.monotonic() - started < 2
    with pytest.raises(httpx.HTTPError):
        client.get("/string")
    client.close()
