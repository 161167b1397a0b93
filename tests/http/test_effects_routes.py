"""Effects over the HTTP Lambda, behind the route hook: listed, cancelled once (200), then
409 for a cancelled or fired one, 404 for an unknown id, 400 for a malformed one."""

from __future__ import annotations

from typing import Any

from agent_runtime.adapters.aws.bootstrap import run
from agent_runtime.testing.effects import fire_due
from tests.http.harness import ISO_UTC, Api, assert_error, both_backends

EFFECTS = "/agents/reminders/r-1/effects"


def schedule(api: Api, text: str, delay: float) -> str:
    reply = api.call("POST", "/agents/reminders/r-1/dispatch", {"input": {"text": text, "delay": delay}})
    assert reply.status == 202, reply.body
    settled = api.settle(reply.headers["location"])
    assert settled["outcome"] == "completed", settled
    effect_id: str = settled["result"]["text"]
    return effect_id


@both_backends
def test_effects_are_listed_and_cancelled_once(api: Api) -> None:
    later = schedule(api, "later", 3600)
    sooner = schedule(api, "sooner", 60)
    listed = api.call("GET", EFFECTS)
    assert listed.status == 200 and listed.headers["x-route-hook"] == "seen"
    effects: list[dict[str, Any]] = listed.json["effects"]
    assert [e["id"] for e in effects] == [sooner, later], "soonest due first"
    assert effects[0]["name"] == "nudge" and effects[0]["args"] == {"text": "sooner"}
    assert effects[0]["status"] == "scheduled" and ISO_UTC.match(effects[0]["due_at"])

    cancelled = api.call("DELETE", f"{EFFECTS}/{later}")
    assert cancelled.status == 200 and cancelled.json["status"] == "cancelled"
    assert cancelled.json["cancelled_at"] is not None
    assert_error(api.call("DELETE", f"{EFFECTS}/{later}"), 409, "effect_not_pending")
    assert [e["id"] for e in api.call("GET", EFFECTS, query={"status": "scheduled"}).json["effects"]] == [sooner]

    # Once it fired, cancelling is a clear 409 too.
    fired = run(fire_due(api.runtime, api.runtime.clock() + 120))
    assert len(fired) == 1
    api.settle(f"/agents/reminders/r-1/submissions/{fired[0]}")
    gone = assert_error(api.call("DELETE", f"{EFFECTS}/{sooner}"), 409, "effect_not_pending")
    assert gone["details"]["status"] == "fired"
    assert "already fired" in gone["message"]


def test_unknown_and_malformed_effect_ids(api: Api) -> None:
    assert_error(api.call("DELETE", f"{EFFECTS}/eff-{'a' * 26}"), 404, "effect_not_found")
    assert_error(api.call("DELETE", f"{EFFECTS}/nope"), 400, "invalid_request")
    assert_error(api.call("GET", EFFECTS, query={"status": "late"}), 400, "invalid_request")
    assert_error(api.call("GET", "/agents/internal/r-1/effects"), 404, "agent_not_found")
    assert api.call("GET", EFFECTS).json == {"effects": []}
