"""Effects on the local stack, as deployed: the schedule is a one-time EventBridge Scheduler
schedule in the local AWS, the local scheduler fires it when due, the dispatch function
admits the effect, and its work is in the instance's history. Read through the SDK."""

from __future__ import annotations

import json
import time

import httpx

from agent_runtime.client import AgentClient
from agent_runtime.client.errors import Conflict
from agent_runtime.dev import LocalStack

DEADLINE = 30.0


def test_an_effect_with_a_delay_fires_once_and_its_work_is_in_history(
    stack: LocalStack, client: httpx.Client, instance: str
) -> None:
    sdk = AgentClient(stack.url)
    scheduled_at = time.time()
    receipt = client.post(f"/agents/reminder/{instance}/dispatch", json={"input": {"text": "call back", "delay": 2}})
    assert receipt.status_code == 202, receipt.text
    settled = sdk.wait("reminder", instance, receipt.json()["submission_id"], timeout=DEADLINE)
    assert settled.result is not None, settled
    effect_id = settled.result.text
    [pending] = sdk.effects("reminder", instance).effects
    assert (pending.id, pending.status, pending.name) == (effect_id, "scheduled", "nudge")

    deadline = time.monotonic() + DEADLINE
    answer = None
    while answer is None:
        assert time.monotonic() < deadline, "the effect never ran"
        messages = client.get(f"/agents/reminder/{instance}/sessions/default/messages").json()["messages"]
        answer = next((m for m in messages if m["role"] == "assistant" and "nudge: call back" in json.dumps(m)), None)
        time.sleep(0.1)
    assert time.time() - scheduled_at >= 2.0, "not before it was due"

    while (fired := sdk.effects("reminder", instance).effects[0]).submission_id is None:
        assert time.monotonic() < deadline, "the effect's submission was never noted"
        time.sleep(0.05)
    assert fired.status == "fired"
    record = sdk.submission("reminder", instance, fired.submission_id)
    assert record.kind == "effect" and record.result and record.result.text == "nudged: call back"
    kinds = [s.kind for s in sdk.submissions("reminder", instance).submissions]
    assert kinds == ["dispatch", "effect", "direct"], "one effect run, then the prompt it queued"
    try:
        sdk.cancel_effect("reminder", instance, fired.id)
    except Conflict as refused:
        assert "already fired" in str(refused)
    else:
        raise AssertionError("cancelling a fired effect must be refused")

