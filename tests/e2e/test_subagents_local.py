"""Subagents on the local stack, over real HTTP: a blocking child runs on moto's Step
Functions (the state machine the stack deploys) while its parent waits."""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.test_local_stack import Json, eventually, get_submission, ok, prompt, settled


def test_a_blocking_child_runs_on_step_functions_while_the_parent_waits(
    stack: Any, client: httpx.Client, instance: str
) -> None:
    reply = prompt(client, "delegating", instance, "the refund policy", wait=0)
    path = reply.headers["location"]
    eventually(lambda: get_submission(client, path)["status"] == "waiting", what="the parent to wait on its child")
    sfn = stack.aws.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]

    def execution() -> Json | None:
        running = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
        mine = [e for e in running if e["name"].startswith("call_")]
        return mine[-1] if mine else None

    started = eventually(execution, what="an execution named after the call")
    done = settled(client, path)
    assert done["outcome"] == "completed", done
    assert done["result"]["text"] == "parent: child: looked up 'the refund policy'"
    final = eventually(
        lambda: (e := sfn.describe_execution(executionArn=started["executionArn"]))["status"] != "RUNNING" and e,
        what="the execution to finish",
    )
    assert final["status"] == "SUCCEEDED"
    events = ok(client.get(f"/agents/delegating/{instance}/events", params={"after": 0, "limit": 200}))["events"]
    types = [e["type"] for e in events]
    assert "task_start" in types and "task" in types
    (task,) = [e for e in events if e["type"] == "task"]
    assert task["status"] == "ok" and task["child"].startswith(f"slow-researcher/{instance}~")
    # The child is listed under its parent and read through the parent's routes.
    (child,) = ok(client.get(f"/agents/delegating/{instance}/children"))["children"]
    assert child["agent"] == "slow-researcher" and child["outcome"] == "completed"
    base = f"/agents/delegating/{instance}/children/{child['ref']}"
    assert ok(client.get(f"{base}/submissions/{child['submission_id']}"))["kind"] == "task"
    messages = ok(client.get(f"{base}/sessions/default/messages"))["messages"]
    assert messages[0]["parts"][0]["text"] == "the refund policy", "the child saw only its prompt"
    assert ok(client.get(f"{base}/events"))["events"]
    # The local stack keeps spans in the table: the parent's trace holds the child's
    # submission, run in other processes through Step Functions, below the task call.
    spans = ok(client.get(f"{path}/trace"))["spans"]
    (task_call,) = [s for s in spans if s["name"] == "execute_tool task"]
    (child_span,) = [s for s in spans if s["name"] == "invoke_agent slow-researcher"]
    assert child_span["parent_span_id"] == task_call["span_id"]
    assert child_span["attributes"]["agent_runtime.submission.id"] == child["submission_id"]
    assert spans[0]["name"] == "invoke_agent delegating" and spans[0]["parent_span_id"] is None
    assert {"execute_tool slow_lookup", "chat function"} <= {s["name"] for s in spans}
