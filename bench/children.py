"""One blocking child round trip, printed as figures.

1. AWS API calls the runtime makes for a coordinator whose one prompt delegates to a
   blocking child (moto, Step Functions executing the real state machine), beside a
   plain two-turn prompt that calls an ordinary tool instead: what a child adds. The
   state machine's own calls (its DynamoDB put and two SQS sends) are Step Functions
   state transitions, counted apart.
2. Wall time on the local stack (`LocalStack`, as `agent-runtime dev` runs it): median
   of ``--prompts`` prompts (wait=25) to the `coordinator` example, whose researcher runs
   as a child on Step Functions, beside the same number to `echo`.

    python bench/children.py [--prompts 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.pop("AWS_ENDPOINT_URL", None)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from moto import mock_aws
from overhead import Meter

from agent_runtime.adapters.aws.sqs import child_token, parse_wakeup
from agent_runtime.definition import create_agent, define_agent_profile
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, FunctionResult, ToolCall, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import MOTO_CONFIG, Backend, moto_backend
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb
from agent_runtime.tools import tool

ROOT = Path(__file__).resolve().parents[1]


@tool
def look_up(question: str) -> str:
    """Look something up."""
    return f"found {question}"


def answering(tool_name: str, arguments: dict[str, str]) -> FunctionModel:
    def respond(request: ModelRequest) -> FunctionResult:
        done = [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]
        return f"answer: {done[0].content}" if done else ToolCall(tool_name, {**arguments, **_prompt(request, tool_name)})

    return FunctionModel(respond)


def _prompt(request: ModelRequest, tool_name: str) -> dict[str, str]:
    return {"prompt" if tool_name == "task" else "question": last_user_text(request)}


def registry() -> Registry:
    child = define_agent_profile(
        name="researcher", description="Looks things up.", model=answering("look_up", {}), tools=[look_up]
    )
    agents = Registry()
    agents.add("delegating", create_agent(model=answering("task", {"agent": "researcher"}), subagents=[child]))
    agents.add("direct", create_agent(model=answering("look_up", {}), tools=[look_up]))
    return agents


async def round_trip(backend: Backend, runtime: Runtime, agent: str, instance_id: str) -> float:
    """Prompt, then play the worker Lambda on the queue until the prompt settles."""
    assert backend.resources
    sqs, url = backend.clients["sqs"], backend.resources.queue_url
    start = time.perf_counter()
    admitted = await runtime.prompt(agent, instance_id, "the refund policy")
    while not (await runtime.submission(agent, instance_id, admitted.record.id)).settled:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
        if not messages:
            await asyncio.sleep(0.01)  # the state machine runs on moto's threads
            continue
        for message in messages:
            instance = parse_wakeup(message["Body"])
            token = child_token(message["Body"])
            if token is not None:
                await runtime.accept_child(instance, *token)
            await runtime.drain(instance, deadline=time.time() + 60)
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return time.perf_counter() - start


def aws_figures() -> None:
    serialize_moto_dynamodb()
    with mock_aws(config=MOTO_CONFIG):
        backend = moto_backend()
        runtime = backend.runtime(registry())
        meter = Meter({k: v for k, v in backend.clients.items()})
        counts: dict[str, Counter[str]] = {}
        for agent in ("direct", "delegating"):
            asyncio.run(round_trip(backend, runtime, agent, "warm"))  # first use of each instance
            meter.take()
            asyncio.run(round_trip(backend, runtime, agent, "warm"))
            calls, _ = meter.take()
            counts[agent] = Counter({k: v for k, v in calls.items() if not k.startswith("sqs:ReceiveMessage") and k != "sqs:DeleteMessage"})
    direct, delegating = counts["direct"], counts["delegating"]
    added = delegating - direct
    print("AWS API calls of the runtime per prompt (steady state, moto; queue receives and deletes left out):")
    print(f"  two turns, an ordinary tool  {sum(direct.values()):>3}  {dict(sorted(direct.items()))}")
    print(f"  two turns, a blocking child  {sum(delegating.values()):>3}  {dict(sorted(delegating.items()))}")
    print(f"  added by the child           {sum(added.values()):>3}  {dict(sorted(added.items()))}")
    print("  plus Step Functions: 1 execution, 4 state transitions (WakeChild, RecordResult, WakeParent, end)")


def local_stack_figures(prompts: int) -> None:
    import httpx

    from agent_runtime.dev import LocalStack

    with tempfile.TemporaryDirectory() as state, LocalStack(
        port=0, state_dir=state, agents_dir=str(ROOT / "agents"), isolation="process"
    ) as stack, httpx.Client(base_url=stack.url, timeout=60) as client:
        times: dict[str, list[float]] = {"echo": [], "coordinator": []}
        for n in range(prompts + 1):
            for agent in times:
                start = time.perf_counter()
                reply = client.post(f"/agents/{agent}/bench-{n}", json={"message": "what is the refund policy?", "wait": 25})
                elapsed = time.perf_counter() - start
                body = reply.json()
                assert body["submission"]["outcome"] == "completed", json.dumps(body)
                if n:  # the first of each warms its execution environments
                    times[agent].append(elapsed)
    print(f"Wall time of one prompt on the local stack, median of {prompts} (wait=25):")
    for agent, samples in times.items():
        print(f"  {agent:<12} {statistics.median(samples) * 1000:7.0f} ms   max {max(samples) * 1000:.0f} ms")
    extra = statistics.median(times["coordinator"]) - statistics.median(times["echo"])
    print(f"  a blocking child round trip adds about {extra * 1000:.0f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=10)
    options = parser.parse_args()
    aws_figures()
    local_stack_figures(options.prompts)
