"""``agent-runtime dev`` killed with SIGKILL while prompts stream in loses nothing it answered.

Three clients send prompts to one instance, each one after another, with ``wait=0``. Once some
have been acknowledged (202, or 200), the process is killed with SIGKILL mid-stream, then
started again on the same state folder. Every acknowledged prompt must be there and settle
exactly once, in the order each client sent them; a prompt whose answer the kill cut off may
or may not have been admitted, but never twice.
"""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.e2e.conftest import AGENTS
from tests.e2e.test_local_stack import (
    DevProcess,
    Json,
    all_messages,
    eventually,
    settled,
    submission_path,
)

CLIENTS, PER_CLIENT, KILL_AFTER = 3, 20, 15
NAME, INSTANCE = "echo", "durable"


def dev(state: Path) -> DevProcess:
    return DevProcess("-m", "agent_runtime", "dev", "--port", "0", "--agents", str(AGENTS), "--state", str(state))


def stream(url: str, client: int, acknowledged: list[Json], count: threading.Semaphore) -> None:
    """Send this client's prompts one after another until the server goes away."""
    with httpx.Client(base_url=url, timeout=httpx.Timeout(30.0, connect=5.0)) as http:
        for n in range(PER_CLIENT):
            try:
                response = http.post(f"/agents/{NAME}/{INSTANCE}", json={"message": f"c{client} m{n}", "wait": 0})
            except httpx.TransportError:
                return  # killed: this prompt's fate is unknown, and no later one was sent
            if response.status_code not in (200, 202):
                return
            acknowledged.append({**response.json()["submission"], "message": f"c{client} m{n}"})
            count.release()


def text(message: Json) -> str:
    return "".join(part.get("text", "") for part in message["parts"])


def test_acknowledged_prompts_survive_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = dev(state)
    acknowledged: list[list[Json]] = [[] for _ in range(CLIENTS)]
    count = threading.Semaphore(0)
    try:
        with ThreadPoolExecutor(CLIENTS) as pool:
            senders = [pool.submit(stream, first.url, c, acknowledged[c], count) for c in range(CLIENTS)]
            for _ in range(KILL_AFTER):
                assert count.acquire(timeout=30), "prompts were not acknowledged"
            first.process.send_signal(signal.SIGKILL)
            for sender in senders:
                sender.result(timeout=60)
    finally:
        first.close()
    acked = [s for mine in acknowledged for s in mine]
    assert KILL_AFTER <= len(acked) < CLIENTS * PER_CLIENT, "the kill did not come mid-stream"

    second = dev(state)
    try:
        with httpx.Client(base_url=second.url, timeout=35.0) as client:
            done = [settled(client, submission_path(NAME, INSTANCE, s["id"]), timeout=45) for s in acked]
            assert {s["outcome"] for s in done} == {"completed"}
            assert [s["result"]["text"] for s in done] == [f"echo: {s['message']}" for s in acked]
            assert [(s["id"], s["sequence"]) for s in done] == [(s["id"], s["sequence"]) for s in acked]
            for mine in acknowledged:  # each client's prompts in the order it sent them
                assert [s["sequence"] for s in mine] == sorted(s["sequence"] for s in mine)

            def whole_history() -> list[Json] | None:
                messages = all_messages(client, NAME, INSTANCE, "default", limit=100)
                # Prompts admitted but cut off before their answer settle too: wait for them.
                return messages if messages and messages[-1]["role"] == "assistant" else None

            history = eventually(whole_history, what="the history to end with an answer")
            prompts = [text(m) for m in history if m["role"] == "user"]
            answers = [text(m) for m in history if m["role"] == "assistant"]
            assert len(prompts) == len(set(prompts)), "a prompt is in the history twice"
            assert answers == [f"echo: {p}" for p in prompts], "each prompt answered exactly once"
            in_history = [p for p in prompts if p in {s["message"] for s in acked}]
            by_sequence = sorted(acked, key=lambda s: s["sequence"])
            assert in_history == [s["message"] for s in by_sequence]
    finally:
        second.process.send_signal(signal.SIGTERM)
        second.wait()
        second.close()
