"""The example `agents/asset_maker.py`, offline, on the memory backend: the Worker shortens
its tagline until the Reviewer approves it, ending the session with the file attached."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.registry import discover
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, memory_backend
from tests.served import Served

ROOT = InstanceRef("asset-maker", "A-1")


def test_the_example_asset_maker_gets_its_tagline_approved(serve: Callable[[Backend, Runtime], Served]) -> None:
    backend = memory_backend()
    runtime = backend.runtime(discover("agents"))
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt(ROOT.agent, ROOT.id, "a tagline for a coffee shop"))
    served.until(served.settled(ROOT, admitted.record.id))
    done = served.record(ROOT, admitted.record.id)
    assert done.outcome is Outcome.completed, done.error
    assert done.result and done.result["text"] == "Approved the tagline."
    assert done.result["data"] == {"message": "Approved the tagline.", "attachments": ["/asset/tagline.md"]}
    _, data = asyncio.run(runtime.read_file(ROOT.agent, ROOT.id, "/asset/tagline.md"))
    assert data == b"Fresh coffee brewed with care\n"
    state = asyncio.run(runtime.stores.sessions.get(ROOT, "default"))
    assert state.status == "draft too long (6 words)" and state.exchanges == 7
