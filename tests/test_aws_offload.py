"""AWS calls run off the event loop: while one waits, other coroutines keep running."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from agent_runtime.adapters.aws.offload import AWS_THREADS, THREAD_NAME_PREFIX, executor, offload
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Draft
from agent_runtime.testing.backends import Backend, moto_backend

INST = InstanceRef("offload", "one")
#: How long a stalled call waits for the loop to prove it is alive before giving up.
DEADLINE_S = 10.0


@pytest.fixture
def moto() -> Iterator[Backend]:
    with mock_aws():
        yield moto_backend()


async def test_the_loop_runs_while_a_dynamodb_call_is_in_flight(moto: Backend) -> None:
    """A GetItem stalls in its calling thread until another coroutine has ticked five
    times. On the loop's own thread the ticks could never happen and the call would
    only give up at the deadline."""
    ticks = 0
    enough = threading.Event()
    stalled_in: list[str] = []
    released: list[bool] = []

    def stall(**_: Any) -> None:
        stalled_in.append(threading.current_thread().name)
        released.append(enough.wait(DEADLINE_S))

    async def ticker() -> None:
        nonlocal ticks
        while not enough.is_set():
            await asyncio.sleep(0.001)
            ticks += 1
            if ticks >= 5:
                enough.set()

    client = moto.clients["dynamodb"]
    client.meta.events.register("before-call.dynamodb.GetItem", stall)
    try:
        ticking = asyncio.create_task(ticker())
        assert await moto.stores.ledger.get(INST, "sub-0000000000-00000000") is None
        await ticking
    finally:
        client.meta.events.unregister("before-call.dynamodb.GetItem", stall)
    assert released == [True] and ticks >= 5
    assert stalled_in and all(name.startswith(THREAD_NAME_PREFIX) for name in stalled_in)


async def test_admission_and_reads_go_through_the_pool(moto: Backend) -> None:
    threads: set[str] = set()

    def seen(**_: Any) -> None:
        threads.add(threading.current_thread().name)

    for client in moto.clients.values():
        client.meta.events.register("before-call.*.*", seen)
    admission = await moto.stores.ledger.admit(INST, Draft(kind="direct", session="main", payload={"text": "hi"}), now=1.0)
    await moto.wakeups.send(INST, reason="test", dedupe_id=admission.record.id)
    await moto.stores.ledger.list_submissions(INST)
    assert threads and all(name.startswith(THREAD_NAME_PREFIX) for name in threads)


async def test_offload_keeps_the_context_and_the_pool_is_bounded() -> None:
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    var.set("span-1")
    assert await offload(var.get) == "span-1"
    assert executor() is executor() and executor()._max_workers == AWS_THREADS
