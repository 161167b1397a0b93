"""The example `agents/coordinator.py`, offline, on the memory backend: a blocking
researcher answers a policy question; a resumable note keeper is created once, messaged
again, and its reports reach the coordinator's next turns."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_runtime.ids import InstanceRef
from agent_runtime.registry import discover
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, memory_backend
from tests.served import Served

ROOT = InstanceRef("coordinator", "T-1")


def test_the_example_coordinator_delegates_and_keeps_notes(serve: Callable[[Backend, Runtime], Served]) -> None:
    backend = memory_backend()
    runtime = backend.runtime(discover("agents"))
    served = serve(backend, runtime)

    def ask(text: str) -> str:
        admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, text))
        served.until(served.settled(ROOT, admitted.record.id))
        served.until(lambda: all(s.settled for s in asyncio.run(runtime.stores.ledger.list_submissions(ROOT))))
        served.until(served.idle)
        record = served.record(ROOT, admitted.record.id)
        assert record.result, record.error
        return str(record.result["text"])

    assert ask("is the refund allowed?") == (
        "From the policy researcher: Quote: 4.2 Refunds: purchases may be refunded within 30 days with a receipt."
    )
    assert ask("remember the customer prefers email").startswith("Passed to the note keeper: created note_keeper with ref ")
    assert ask("remember order 991").startswith("Passed to the note keeper: sent to note_keeper (ref ")
    assert ask("what do you remember?").endswith("Notes: the customer prefers email; order 991")
    children = asyncio.run(runtime.list_children(ROOT.agent, ROOT.id))
    assert sorted(e.child.agent for e, _ in children) == ["note-keeper", "policy-researcher"]
