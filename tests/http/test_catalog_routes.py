"""The catalog routes (`functions._http_catalog`): the agents a caller reaches, an agent's
description, its instances, an instance's submissions, and the console's files."""

from __future__ import annotations

from tests.http.harness import Api, assert_error, both_backends


def _prompt(api: Api, agent: str, instance: str, message: str = "hi") -> None:
    reply = api.call("POST", f"/agents/{agent}/{instance}", {"message": message})
    assert reply.status == 200, reply.body


def test_agents_lists_only_those_whose_hook_lets_the_caller_through(api: Api) -> None:
    names = [a["name"] for a in api.call("GET", "/agents").json["agents"]]
    assert "echo" in names and "shop" in names
    assert "internal" not in names  # no route hook: not exposed
    assert "guarded" not in names and "broken" not in names  # the hook answered itself, or failed
    with_token = api.call("GET", "/agents", headers={"authorization": "Bearer ok"}).json["agents"]
    assert "guarded" in [a["name"] for a in with_token]


def test_an_agents_description_names_variables_without_values(api: Api) -> None:
    reply = api.call("GET", "/agents/shop")
    assert reply.status == 200, reply.body
    assert reply.headers["x-route-hook"] == "seen"
    body = reply.json
    assert body["name"] == "shop" and body["concurrency"] == "queue" and body["websocket"] is False
    assert body["variables"] == [
        {"name": "INVENTORY", "secret": False, "required": True, "description": ""},
        {"name": "CRM_TOKEN", "secret": True, "required": False, "description": "for the CRM tool"},
    ]
    slow = api.call("GET", "/agents/slow").json
    assert [t["name"] for t in slow["tools"]] == ["look_around"] and slow["tools"][0]["description"]
    assert_error(api.call("GET", "/agents/internal"), 404, "agent_not_found")
    assert_error(api.call("GET", "/agents/Bad_Name"), 400, "invalid_request")
    assert api.call("GET", "/agents/guarded").status == 401


@both_backends
def test_instances_are_listed_newest_first_and_paged(api: Api) -> None:
    for n in range(3):
        _prompt(api, "echo", f"i-{n}")
    first = api.call("GET", "/agents/echo/instances", query={"limit": "2"})
    assert first.status == 200, first.body
    assert first.headers["x-route-hook"] == "seen"
    page = first.json
    assert [i["id"] for i in page["instances"]] == ["i-2", "i-1"]
    assert page["instances"][0]["status"] == "idle"
    assert page["instances"][0]["submissions"] == 1 and page["instances"][0]["settled"] == 1
    rest = api.call("GET", "/agents/echo/instances", query={"limit": "2", "cursor": page["next_cursor"]}).json
    assert [i["id"] for i in rest["instances"]] == ["i-0"] and rest["next_cursor"] is None
    assert api.call("GET", "/agents/shop/instances").json["instances"] == []
    assert_error(api.call("GET", "/agents/echo/instances", query={"cursor": "nope"}), 400, "invalid_request")
    assert api.call("GET", "/agents/guarded/instances").status == 401


@both_backends
def test_an_instances_submissions_are_paged_in_admission_order(api: Api) -> None:
    for message in ("a", "b", "c"):
        _prompt(api, "echo", "s-1", message)
    page = api.call("GET", "/agents/echo/s-1/submissions", query={"limit": "2"}).json
    assert [s["sequence"] for s in page["submissions"]] == [0, 1] and page["next"] == 1
    assert page["submissions"][0]["result"]["text"] == "echo: a"
    rest = api.call("GET", "/agents/echo/s-1/submissions", query={"after": "1"}).json
    assert [s["sequence"] for s in rest["submissions"]] == [2] and rest["next"] is None


def test_the_console_is_served_as_static_files(api: Api) -> None:
    root = api.call("GET", "/console")
    assert root.status == 308 and root.headers["location"] == "console/"
    page = api.call("GET", "/console/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    assert 'src="app.js"' in page.body
    script = api.call("GET", "/console/app.js")
    assert script.status == 200 and script.headers["content-type"].startswith("text/javascript")
    assert api.call("GET", "/console/config.json").json == {"websocket_url": None}
    assert_error(api.call("GET", "/console/../pyproject.toml"), 404, "not_found")
    assert_error(api.call("GET", "/console/nothing.js"), 404, "not_found")


def test_the_catalog_routes_are_in_the_openapi_document(api: Api) -> None:
    doc = api.call("GET", "/openapi.json").json
    assert {"/agents", "/agents/{name}", "/agents/{name}/instances", "/agents/{name}/{id}/submissions"} <= set(doc["paths"])
    assert not any(path.startswith("/console") for path in doc["paths"])
    instances = doc["paths"]["/agents/{name}/instances"]["get"]
    assert {p["name"] for p in instances["parameters"]} >= {"name", "limit", "cursor"}
    assert {"InstancesPage", "AgentDescription", "SubmissionsPage"} <= set(doc["components"]["schemas"])
