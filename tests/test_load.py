"""Ordering under load on moto, through the real worker handler and SQS FIFO."""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Iterator

import pytest
from moto import mock_aws

import functions.worker as worker
from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, moto_backend
from agent_runtime.testing.lambda_events import pump
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb


@pytest.fixture
def loaded() -> Iterator[tuple[Backend, Runtime, Counter[str]]]:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def reply(request: ModelRequest) -> str:
        text = last_user_text(request)
        with lock:
            seen[text] += 1
        return f"re: {text}"

    registry = Registry()
    registry.add("ticket", create_agent(model=FunctionModel(reply)))
    serialize_moto_dynamodb()
    with mock_aws():
        backend = moto_backend(visibility_timeout=30)
        runtime = backend.runtime(registry)
        original = worker.runtime
        worker.runtime = lambda: runtime  # type: ignore[assignment]
        try:
            yield backend, runtime, seen
        finally:
            worker.runtime = original  # type: ignore[assignment]


def admit_from_threads(runtime: Runtime, jobs: list[tuple[str, str]], threads: int) -> None:
    errors: list[BaseException] = []

    def work(part: list[tuple[str, str]]) -> None:
        async def go() -> None:
            for instance_id, message in part:
                await runtime.prompt("ticket", instance_id, message)

        try:
            asyncio.run(go())
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(jobs[i::threads],)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors, errors


def check_instance(runtime: Runtime, instance_id: str, expected: int) -> None:
    async def go() -> None:
        records = await runtime.stores.ledger.list_submissions(InstanceRef("ticket", instance_id), limit=expected + 1)
        assert len(records) == expected
        assert all(r.outcome is Outcome.completed for r in records)
        assert [r.sequence for r in records] == list(range(expected))
        for earlier, later in itertools.pairwise(records):
            assert earlier.settled_at is not None and later.started_at is not None
            assert earlier.settled_at <= later.started_at, "one runnable head: no overlap"
        history: list[str] = []
        cursor = None
        while True:
            page = await runtime.history("ticket", instance_id, "default", limit=1000, cursor=cursor)
            history += [m.message.text for m in page.messages]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        prompts = [r.payload["message"] for r in records]
        assert history[0::2] == prompts, "history in admission order"
        assert history[1::2] == [f"re: {p}" for p in prompts]

    asyncio.run(go())


def test_thousand_submissions_from_sixteen_threads_into_one_instance(loaded) -> None:
    backend, runtime, seen = loaded
    jobs = [("T-1", f"t{i % 16}-m{i // 16}") for i in range(1000)]
    admit_from_threads(runtime, jobs, threads=16)
    assert backend.resources
    pump(backend.clients["sqs"], backend.resources.queue_url, backend.resources.queue_arn, worker.handler)
    check_instance(runtime, "T-1", 1000)
    assert len(seen) == 1000 and set(seen.values()) == {1}, "each processed once"
    # Each thread's own submissions keep their order too.
    records = asyncio.run(runtime.stores.ledger.list_submissions(InstanceRef("ticket", "T-1"), limit=1001))
    for t in range(16):
        mine = [int(r.payload["message"].split("-m")[1]) for r in records if r.payload["message"].startswith(f"t{t}-")]
        assert mine == sorted(mine)


def test_hundred_instances_by_ten_interleaved(loaded) -> None:
    backend, runtime, seen = loaded
    jobs = [(f"I-{i % 100}", f"i{i % 100}-m{i // 100}") for i in range(1000)]
    admit_from_threads(runtime, jobs, threads=16)
    assert backend.resources
    pump(backend.clients["sqs"], backend.resources.queue_url, backend.resources.queue_arn, worker.handler)
    for i in range(100):
        check_instance(runtime, f"I-{i}", 10)
    assert len(seen) == 1000 and set(seen.values()) == {1}
