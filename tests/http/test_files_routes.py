"""The instance's files and variables over the HTTP Lambda: raw file bodies in and out,
listing, deleting, presigned uploads (moto), prompts with attachments and inline images,
variables with a secret that never comes back, and every bad input as a clear 4xx with
nothing half-written."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
import requests

from tests.http.harness import Api, assert_error, both_backends, shop_requests

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # not UTF-8: must travel as bytes
FILES = "/agents/echo/f-1/files"


def put(api: Api, path: str, data: bytes, media_type: str = "image/png") -> object:
    return api.call("PUT", f"{FILES}{path}", data, headers={"content-type": media_type})


@both_backends
def test_a_file_round_trips_as_bytes(api: Api) -> None:
    reply = put(api, "/attachments/receipt.png", PNG)
    assert reply.status == 200, reply.body  # type: ignore[attr-defined]
    stored = reply.json  # type: ignore[attr-defined]
    assert stored["path"] == "/attachments/receipt.png" and stored["size"] == len(PNG)
    assert stored["sha256"] == hashlib.sha256(PNG).hexdigest() and stored["media_type"] == "image/png"
    got = api.call("GET", f"{FILES}/attachments/receipt.png")
    assert got.status == 200 and got.raw == PNG and got.headers["content-type"] == "image/png"
    listed = api.call("GET", FILES, query={"prefix": "/attachments"}).json
    assert [f["path"] for f in listed["files"]] == ["/attachments/receipt.png"] and listed["next"] is None
    assert api.call("DELETE", f"{FILES}/attachments/receipt.png").status == 204
    assert_error(api.call("GET", f"{FILES}/attachments/receipt.png"), 404, "file_not_found")
    assert_error(api.call("DELETE", f"{FILES}/attachments/receipt.png"), 404, "file_not_found")


@pytest.mark.parametrize(
    ("path", "status", "type_"),
    [
        ("/a/../b.png", 400, "invalid_request"),
        ("/a/%2e%2e/b.png", 400, "invalid_request"),
        ("/a%00b.png", 400, "invalid_request"),
        ("/a//b.png", 400, "invalid_request"),
        ("/" + "x" * 600, 400, "invalid_request"),
    ],
)
def test_bad_paths_are_refused_and_nothing_is_written(api: Api, path: str, status: int, type_: str) -> None:
    assert_error(put(api, path, PNG), status, type_)  # type: ignore[arg-type]
    assert api.call("GET", FILES).json["files"] == []


def test_bad_media_types_and_sizes_are_refused(api: Api) -> None:
    assert_error(put(api, "/x.bin", b"data", "foo/bar"), 415, "unsupported_media_type")  # type: ignore[arg-type]
    assert_error(put(api, "/x.bin", b"data", "not a type"), 415, "unsupported_media_type")  # type: ignore[arg-type]
    big = b"x" * (4 * 1024 * 1024 + 1)
    assert_error(put(api, "/big.bin", big, "application/octet-stream"), 413, "payload_too_large")  # type: ignore[arg-type]
    assert api.call("GET", FILES).json["files"] == []


@both_backends
def test_a_prompt_attaches_files_by_path_and_never_stores_their_bytes(api: Api) -> None:
    assert put(api, "/attachments/receipt.png", PNG).status == 200  # type: ignore[attr-defined]
    tiny = base64.b64encode(b"GIF89a-tiny").decode()
    body = {
        "message": "is this receipt valid?",
        "attachments": ["/attachments/receipt.png"],
        "images": [{"media_type": "image/gif", "data": tiny}],
    }
    reply = api.call("POST", "/agents/echo/f-1", body)
    assert reply.status == 200, reply.body
    history = api.call("GET", "/agents/echo/f-1/sessions/default/messages").json["messages"]
    parts = history[0]["parts"]
    assert parts[0] == {"type": "text", "text": "is this receipt valid?"}
    assert parts[1]["type"] == "file" and parts[1]["path"] == "/attachments/receipt.png"
    assert parts[1]["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert parts[2]["type"] == "file" and parts[2]["media_type"] == "image/gif"
    inline = api.call("GET", f"{FILES}{parts[2]['path']}")
    assert inline.raw == b"GIF89a-tiny"
    stored = json.dumps([r.payload for r in api.submissions("echo", "f-1")]) + json.dumps(history)
    assert base64.b64encode(PNG).decode()[:40] not in stored and tiny not in stored


def test_missing_and_too_many_attachments_are_refused(api: Api) -> None:
    missing = api.call("POST", "/agents/echo/f-2", {"message": "hi", "attachments": ["/attachments/nope.png"]})
    assert_error(missing, 404, "file_not_found")
    many = api.call("POST", "/agents/echo/f-2", {"message": "hi", "attachments": [f"/a{n}.png" for n in range(21)]})
    assert_error(many, 400, "invalid_request")
    bad = api.call("POST", "/agents/echo/f-2", {"message": "hi", "images": [{"media_type": "image/png", "data": "%%%"}]})
    assert_error(bad, 400, "invalid_request")
    assert api.submissions("echo", "f-2") == [], "nothing admitted"


@pytest.mark.parametrize("api", ["moto"], indirect=True)
def test_a_presigned_upload_becomes_a_file(api: Api) -> None:
    size = 20 * 1024 * 1024
    data = bytes(range(256)) * (size // 256)
    ticket = api.call("POST", "/agents/echo/f-3/uploads", {"path": "/big/video.bin", "media_type": "application/octet-stream", "size": size})
    assert ticket.status == 201, ticket.body
    t = ticket.json
    sent = requests.request(t["method"], t["url"], data=data, headers=t["headers"], timeout=60)
    assert sent.status_code == 200, sent.text
    done = api.call("POST", t["complete"])
    assert done.status == 200, done.body
    assert done.json["size"] == size and done.json["sha256"] == hashlib.sha256(data).hexdigest()
    listed = api.call("GET", "/agents/echo/f-3/files").json["files"]
    assert [f["path"] for f in listed] == ["/big/video.bin"]
    redirect = api.call("GET", "/agents/echo/f-3/files/big/video.bin")
    assert redirect.status == 307 and redirect.headers["location"].startswith("https://")
    again = api.call("POST", t["complete"])
    assert again.status == 200 and again.json == done.json, "completing twice is harmless"
    assert_error(api.call("POST", "/agents/echo/f-3/uploads/up-" + "0" * 32 + "/complete"), 404, "file_not_found")


@both_backends
def test_variables_are_declared_required_and_secrets_never_come_back(api: Api) -> None:
    shop_requests.clear()
    listed = api.call("GET", "/agents/shop/s-1/variables").json["variables"]
    assert [(v["name"], v["secret"], v["required"], v["set"]) for v in listed] == [
        ("INVENTORY", False, True, False),
        ("CRM_TOKEN", True, False, False),
    ]
    refused = api.call("POST", "/agents/shop/s-1", {"message": "hi"})
    error = assert_error(refused, 400, "missing_variables")
    assert error["details"]["missing"] == ["INVENTORY"]
    assert api.submissions("shop", "s-1") == []

    assert api.call("PUT", "/agents/shop/s-1/variables/INVENTORY", {"value": "red shoes: 3"}).status == 200
    secret = api.call("PUT", "/agents/shop/s-1/variables/CRM_TOKEN", {"value": "tok-very-secret-123"})
    assert secret.status == 200 and secret.json["secret"] and secret.json["value"] is None and secret.json["set"]
    listed = api.call("GET", "/agents/shop/s-1/variables")
    assert "tok-very-secret-123" not in listed.body
    assert [v["value"] for v in listed.json["variables"]] == ["red shoes: 3", None]

    reply = api.call("POST", "/agents/shop/s-1", {"message": "what is in stock?"})
    assert reply.status == 200, reply.body
    assert shop_requests[-1].system == "You sell shoes. Inventory:\nred shoes: 3"
    assert "tok-very-secret-123" not in reply.body

    assert_error(api.call("PUT", "/agents/shop/s-1/variables/OTHER", {"value": "x"}), 400, "unknown_variable")
    assert_error(api.call("PUT", "/agents/shop/s-1/variables/bad-name", {"value": "x"}), 400, "unknown_variable")
    assert api.call("DELETE", "/agents/shop/s-1/variables/CRM_TOKEN").status == 204
    assert_error(api.call("DELETE", "/agents/shop/s-1/variables/CRM_TOKEN"), 404, "variable_not_set")
