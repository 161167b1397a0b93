"""Payload format 2.0 events, routes and the response rules, without a socket."""

from __future__ import annotations

import base64

import pytest
from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model

from agent_runtime.dev.apigw_events import (
    Route,
    build_http_event,
    http_response,
    is_text_content,
    select_route,
)


def event(**overrides: object) -> dict:
    arguments: dict = {
        "method": "get",
        "target": "/a%20b/c?x=1&x=2&y=&z=%2F",
        "headers": [
            ("Host", "127.0.0.1:8787"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("Cookie", "s=1; t=2"),
            ("User-Agent", "tester"),
            ("Connection", "keep-alive"),
        ],
        "body": b"",
        "source_ip": "127.0.0.1",
        "server_port": 8787,
        "now": 1583348638.390,
        "request_id": "JKJaXmPLvHcESHA=",
    }
    arguments.update(overrides)
    return build_http_event(**arguments)


def test_event_has_the_2_0_shape() -> None:
    built = event()
    APIGatewayProxyEventV2Model.model_validate(built)
    assert built["version"] == "2.0"
    assert built["routeKey"] == "$default"
    assert built["rawPath"] == "/a b/c"
    assert built["rawQueryString"] == "x=1&x=2&y=&z=%2F"
    assert built["queryStringParameters"] == {"x": "1,2", "y": "", "z": "/"}
    assert built["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in built["headers"] and "connection" not in built["headers"]
    assert built["headers"]["x-multi"] == "a,b"
    assert built["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert built["headers"]["x-forwarded-proto"] == "http"
    assert "pathParameters" not in built and "body" not in built
    assert built["isBase64Encoded"] is False
    context = built["requestContext"]
    assert context["http"] == {
        "method": "GET",
        "path": "/a b/c",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tester",
    }
    assert context["time"] == "04/Mar/2020:19:03:58 +0000"
    assert context["timeEpoch"] == 1583348638390
    assert context["domainName"] == "127.0.0.1" and context["stage"] == "$default"
    assert context["requestId"] == "JKJaXmPLvHcESHA="


def test_bodies_are_text_or_base64_by_content_type() -> None:
    json_event = event(
        body=b'{"a": 1}', headers=[("Content-Type", "application/json; charset=utf-8")]
    )
    assert json_event["body"] == '{"a": 1}' and json_event["isBase64Encoded"] is False
    assert json_event["headers"]["content-length"] == "8"
    binary = event(body=b"\x00\xff", headers=[("Content-Type", "application/octet-stream")])
    assert base64.b64decode(binary["body"]) == b"\x00\xff" and binary["isBase64Encoded"] is True
    form = event(body=b"a=1", headers=[("Content-Type", "application/x-www-form-urlencoded")])
    assert form["isBase64Encoded"] is True
    assert is_text_content("text/plain") and is_text_content("application/vnd.api+json")
    assert not is_text_content("application/json", "gzip") and not is_text_content(None)


@pytest.mark.parametrize(
    ("result", "status", "headers", "body"),
    [
        ("hello", 200, [("content-type", "application/json")], b"hello"),
        ({"message": "hi"}, 200, [("content-type", "application/json")], b'{"message": "hi"}'),
        ([1, 2], 200, [("content-type", "application/json")], b"[1, 2]"),
        ({"statusCode": 204}, 204, [], b""),
        (
            {"statusCode": 200, "headers": {"X-A": "1"}, "cookies": ["c=1"], "body": "x"},
            200,
            [("x-a", "1"), ("set-cookie", "c=1")],
            b"x",
        ),
        (
            {
                "statusCode": 200,
                "body": base64.b64encode(b"\x00").decode(),
                "isBase64Encoded": True,
            },
            200,
            [],
            b"\x00",
        ),
        (
            {"statusCode": 200, "body": {"no": "dict"}},
            500,
            [("content-type", "application/json")],
            b'{"message":"Internal Server Error"}',
        ),
        (
            {"statusCode": 999},
            500,
            [("content-type", "application/json")],
            b'{"message":"Internal Server Error"}',
        ),
    ],
)
def test_response_rules(result: object, status: int, headers: list, body: bytes) -> None:
    response = http_response(result)
    assert (response.status, response.headers, response.body) == (status, headers, body)


def test_the_most_specific_route_wins() -> None:
    routes = [
        Route.parse(k)
        for k in (
            "ANY /{proxy+}",
            "GET /agents/{name}/{id}",
            "GET /agents/special/{id}",
            "POST /agents/{name}/{id}",
            "ANY /agents/{name}/{id}/files/{path+}",
        )
    ]
    assert select_route(routes, "GET", "/agents/a/b") == (routes[1], {"name": "a", "id": "b"})
    assert select_route(routes, "GET", "/agents/special/b") == (routes[2], {"id": "b"})
    assert select_route(routes, "POST", "/agents/a/b") == (routes[3], {"name": "a", "id": "b"})
    chosen = select_route(routes, "PUT", "/agents/a/b/files/x/y.txt")
    assert chosen == (routes[4], {"name": "a", "id": "b", "path": "x/y.txt"})
    assert select_route(routes, "DELETE", "/x/y") == (routes[0], {"proxy": "x/y"})
    assert select_route(routes, "GET", "/") is None
    with pytest.raises(ValueError):
        Route.parse("GET /{a+}/b")
