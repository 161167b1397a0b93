"""Compaction on both adapters: a session driven past the threshold keeps working on a
summary plus its recent messages, requests stay bounded as the history grows, the history
still returns every original message, and a crash while summarising (or just after the
summary is written) neither loses the summary nor writes a second one."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

from agent_runtime.compaction import (
    SUMMARY_INSTRUCTIONS,
    SUMMARY_PREFIX,
    Compaction,
    estimate_tokens,
)
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome, Phase, SubmissionRecord
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from tests.served import Served, crash_once

INST = InstanceRef("ticket", "T-1")
POLICY = Compaction(context_window=2000, threshold=0.5, keep_recent=4)


def build(backend: Backend, seen: list[ModelRequest], calls: Counter[str], crash: Callable[[], None] | None = None, **options: Any) -> Runtime:
    def model(request: ModelRequest) -> str:
        if request.system == SUMMARY_INSTRUCTIONS:
            calls["summaries"] += 1
            if crash is not None:
                crash()
            return f"the customer asked {request.messages[0].text.count('user: ')} things"
        calls["turns"] += 1
        seen.append(request)
        return f"noted: {last_user_text(request)[:20]}"

    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(model), compaction=POLICY))
    return backend.runtime(registry, **options)


def ask(runtime: Runtime, served: Served, text: str, *, crash_ok: bool = False) -> SubmissionRecord:
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, text))
    served.until(served.settled(INST, admitted.record.id), crash_ok=crash_ok)
    return served.record(INST, admitted.record.id)


def history(runtime: Runtime) -> list[Any]:
    messages, cursor = [], None
    while True:
        page = asyncio.run(runtime.history(INST.agent, INST.id, "default", limit=100, cursor=cursor))
        messages += [m.message for m in page.messages]
        if page.next_cursor is None:
            return messages
        cursor = page.next_cursor


def test_a_long_session_keeps_working_on_a_summary(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen: list[ModelRequest] = []
    calls: Counter[str] = Counter()
    runtime = build(backend, seen, calls)
    served = serve(backend, runtime)
    for n in range(30):
        record = ask(runtime, served, f"question {n}: " + "details " * 40)
        assert record.outcome is Outcome.completed, record.error
    sizes = [estimate_tokens(r.messages, r.system) for r in seen]
    assert max(sizes) <= 1000 + 400, "requests stay near the threshold however long the session grows"
    assert calls["summaries"] >= 3
    assert SUMMARY_PREFIX in (seen[-1].messages[0].text or "") and len(seen[-1].messages) <= 12
    stored = history(runtime)
    originals = [m for m in stored if m.compacts is None]
    assert len(originals) == 60, "every original message is still readable"
    assert len([m for m in stored if m.compacts is not None]) == calls["summaries"]
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    kinds = Counter(e.type for e in events)
    assert kinds["compaction_start"] == kinds["compaction_end"] == calls["summaries"]


def test_a_crash_while_summarising_writes_one_summary(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen: list[ModelRequest] = []
    calls: Counter[str] = Counter()
    crashes: Counter[str] = Counter()
    runtime = build(backend, seen, calls, crash=lambda: crash_once(crashes, "summarising"), lease_seconds=0.3)
    served = serve(backend, runtime)
    for n in range(14):
        ask(runtime, served, f"question {n}: " + "details " * 40, crash_ok=True)
    assert served.crashes == 1
    summaries = [m for m in history(runtime) if m.compacts is not None]
    assert len(summaries) == calls["summaries"] - 1, "the crashed summary was asked again, written once"
    assert calls["turns"] == 14, "no turn answered twice"


def test_a_crash_after_the_summary_is_written_keeps_it(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    seen: list[ModelRequest] = []
    calls: Counter[str] = Counter()
    crashes: Counter[str] = Counter()

    def checkpoint(phase: Phase, record: SubmissionRecord) -> None:
        if calls["summaries"] == 1 and not crashes:
            crash_once(crashes, "after-summary")

    runtime = build(backend, seen, calls, checkpoint=checkpoint, lease_seconds=0.3)
    served = serve(backend, runtime)
    for n in range(14):
        ask(runtime, served, f"question {n}: " + "details " * 40, crash_ok=True)
    assert served.crashes == 1
    summaries = [m for m in history(runtime) if m.compacts is not None]
    assert len(summaries) == calls["summaries"], "each summary made was written exactly once"


def test_sums_over_a_history_follow_every_change_to_it() -> None:
    """A `MessageSum` adds only what was appended since it last saw a history, and sums
    again whatever else it is given: histories cut, filtered, reordered, or as tuples."""
    import random

    from agent_runtime.message_sums import MessageSum
    from agent_runtime.messages import Message

    rng = random.Random(3)
    pool = [Message.user("x" * rng.randint(0, 30)) for _ in range(40)]
    chars = MessageSum(lambda message: len(message.text), remembered=4)
    history: list[Message] = []
    for _ in range(3000):
        change = rng.random()
        if change < 0.6:
            history.append(rng.choice(pool))
        elif change < 0.7 and history:
            history.pop(rng.randrange(len(history)))
        elif change < 0.8:
            history = [rng.choice(pool), *history]
        elif change < 0.82:
            history = []
        given: Any = history if rng.random() < 0.7 else tuple(history)
        if history and rng.random() < 0.2:
            given = history[: rng.randrange(len(history))]
        assert chars(given) == sum(len(m.text) for m in given)
