"""The example `agents/front_desk.py`, offline, on the memory backend: triage hands a
billing question to BillingAgent, which owns the session for the next prompt, keeps notes
in the session's context, and hands back on "thanks"."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_runtime.ids import InstanceRef
from agent_runtime.registry import discover
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, memory_backend
from tests.served import Served

ROOT = InstanceRef("front-desk", "C-1")


def test_the_example_front_desk_hands_over_and_back(serve: Callable[[Backend, Runtime], Served]) -> None:
    backend = memory_backend()
    runtime = backend.runtime(discover("agents"))
    served = serve(backend, runtime)

    def ask(text: str) -> str:
        admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, text))
        served.until(served.settled(ROOT, admitted.record.id))
        record = served.record(ROOT, admitted.record.id)
        assert record.result, record.error
        return str(record.result["text"])

    assert ask("hello").startswith("Front desk here")
    assert ask("I was charged twice") == "Billing here: I have noted it (noted (1 issue(s) so far)). Anything else on billing?"
    assert ask("and my invoice is wrong") == "Billing here: I have noted it (noted (2 issue(s) so far)). Anything else on billing?"
    assert ask("thanks") == "Welcome back to the front desk. Anything else?"
    state = asyncio.run(runtime.stores.sessions.get(ROOT, "default"))
    assert state.owner is None and state.context == {"issues": ["I was charged twice", "and my invoice is wrong"]}
