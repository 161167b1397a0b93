"""Ordering under load on moto, through the real worker handler and SQS FIFO, with
several workers taking batches from the queue at once.

Each worker thread stands for one Lambda container: its own runtime (store and history
cache), event loop and batch processor. The queue's visibility timeout is shorter than
an invocation's drain, so a wake-up is redelivered to another worker while the first
still holds the instance: only the ledger's lease keeps the two apart.
"""

from __future__ import annotations

import asyncio
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor
from aws_lambda_powertools.utilities.batch.exceptions import (
    BatchProcessingError,
    SQSFifoCircuitBreakerError,
    SQSFifoMessageGroupCircuitBreakerError,
)
from moto import mock_aws
from moto.sqs.responses import SQSResponse

import functions.worker as worker
from agent_runtime.adapters.aws.dynamodb import dynamodb_stores
from agent_runtime.definition import create_agent
from agent_runtime.errors import NotClaimable
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, last_user_text
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend, moto_backend
from agent_runtime.testing.lambda_events import LambdaContext, sqs_event
from agent_runtime.testing.moto_serial import serialize_moto_dynamodb

pytestmark = pytest.mark.slow

T = TypeVar("T")
WORKERS = 4
#: Real seconds: a wake-up in flight this long is delivered again, to any worker.
VISIBILITY_SECONDS = 2
SERVE_TIMEOUT_SECONDS = 1200
#: A record failed because a live attempt holds its instance, or skipped after one.
BUSY = (NotClaimable, SQSFifoMessageGroupCircuitBreakerError, SQSFifoCircuitBreakerError)


class PerThread:
    """A value per thread, made on first use: what one container keeps for itself."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._local = threading.local()

    def get(self) -> Any:
        if not hasattr(self._local, "value"):
            self._local.value = self._make()
        return self._local.value

    # The batch processor is called, then used, by `process_partial_response`.
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.get()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.get(), name)


class Locked:
    """Calls into one shared object, one at a time (Powertools keeps the metrics buffer
    per class, so every container of this process shares it)."""

    def __init__(self, target: Any, lock: threading.Lock) -> None:
        self._target = target
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


class ModelWatch:
    """What the model saw, from every worker thread: each prompt's count, each instance's
    prompts in the order the model got them, and any model call that began while another
    of the same instance was still running (two attempts at once: a broken head)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: Counter[str] = Counter()
        self.order: dict[str, list[str]] = {}
        self.active: set[str] = set()
        self.overlaps: list[str] = []

    def reply(self, request: ModelRequest) -> str:
        text = last_user_text(request)
        instance = "T-1" if text.startswith("t") else "I-" + text.split("-m")[0][1:]
        with self.lock:
            if instance in self.active:
                self.overlaps.append(text)
            self.active.add(instance)
            self.seen[text] += 1
            self.order.setdefault(instance, []).append(text)
        time.sleep(0.002)  # hold the call open: a second attempt on the instance would show
        with self.lock:
            self.active.discard(instance)
        return f"re: {text}"


@pytest.fixture
def loaded(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Backend, Runtime, ModelWatch]]:
    watch = ModelWatch()

    registry = Registry()
    registry.add("ticket", create_agent(model=FunctionModel(watch.reply)))
    serialize_moto_dynamodb()
    with mock_aws():
        backend = moto_backend(visibility_timeout=VISIBILITY_SECONDS)
        runtime = backend.runtime(registry)
        assert backend.resources
        table = backend.resources.table

        def container_runtime() -> Runtime:
            stores = dynamodb_stores(backend.clients["dynamodb"], table, backend.blobs)
            return Runtime(registry=registry, stores=stores, wakeups=backend.wakeups, events=backend.events)

        runtimes = PerThread(container_runtime)
        loops = PerThread(asyncio.new_event_loop)

        def run(coro: Coroutine[Any, Any, T]) -> T:
            return loops.get().run_until_complete(coro)

        monkeypatch.setattr(worker, "runtime", runtimes.get)
        monkeypatch.setattr(worker, "run", run)
        # As functions.worker builds it, one per container.
        monkeypatch.setattr(worker, "processor", PerThread(lambda: SqsFifoPartialProcessor(skip_group_on_error=True)))
        monkeypatch.setattr(worker, "metrics", Locked(worker.metrics, threading.Lock()))
        # moto's SQS is not thread-safe (a receive iterates a set a delete changes); the
        # service serialises each request itself, so moto's requests are made atomic here.
        sqs_lock = threading.RLock()
        original = SQSResponse.call_action

        def call_action(self: SQSResponse) -> Any:
            with sqs_lock:
                return original(self)

        monkeypatch.setattr(SQSResponse, "call_action", call_action)
        yield backend, runtime, watch


def serve(backend: Backend, *, workers: int = WORKERS) -> int:
    """Run `workers` threads that each receive batches and call the worker handler, as
    Lambda's event source does with concurrency: delete what succeeded, leave reported
    failures for redelivery. Stops once the queue holds no message, visible or in
    flight (a drain sends its continuation before its message is deleted, so work
    left always has one). Returns how many records were reported failed (busy)."""
    assert backend.resources
    sqs = backend.clients["sqs"]
    url, arn = backend.resources.queue_url, backend.resources.queue_arn
    stop = threading.Event()
    errors: list[BaseException] = []
    failures = Counter[str]()
    deadline = time.monotonic() + SERVE_TIMEOUT_SECONDS

    def drained() -> bool:
        names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
        counts = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
        return all(int(counts[name]) == 0 for name in names)

    def work() -> None:
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                messages = sqs.receive_message(
                    QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
                ).get("Messages", [])
                if not messages:
                    if drained():
                        stop.set()
                    else:
                        time.sleep(0.05)  # wake-ups in flight elsewhere, or waiting to be redelivered
                    continue
                try:
                    response = worker.handler(sqs_event(messages, arn), LambdaContext())
                    failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
                except BatchProcessingError as exc:
                    # Every record failed (the first was busy, the rest of its group
                    # skipped): Lambda retries the whole batch. Anything else is a bug.
                    unexpected = [e for e, *_ in exc.child_exceptions if not issubclass(e, BUSY)]
                    if unexpected:
                        raise
                    failed = {m["MessageId"] for m in messages}
                failures["records"] += len(failed)
                done = [m for m in messages if m["MessageId"] not in failed]
                if done:
                    # A handle from before a redelivery still deletes the message.
                    sqs.delete_message_batch(
                        QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)]
                    )
        except BaseException as exc:
            errors.append(exc)
            traceback.print_exc()
            stop.set()

    pool = [threading.Thread(target=work, name=f"worker-{n}") for n in range(workers)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert not errors, errors
    assert stop.is_set(), f"the queue did not drain in {SERVE_TIMEOUT_SECONDS} s"
    return failures["records"]


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


def check_instance(runtime: Runtime, watch: ModelWatch, instance_id: str, expected: int) -> None:
    async def go() -> None:
        records = await runtime.stores.ledger.list_submissions(InstanceRef("ticket", instance_id), limit=expected + 1)
        assert len(records) == expected
        assert all(r.outcome is Outcome.completed for r in records)
        assert [r.sequence for r in records] == list(range(expected))
        prompts = [r.payload["message"] for r in records]
        # One runnable head: the model got the instance's prompts one at a time, in
        # admission order. (Times taken by different workers' clocks cannot show this:
        # a claim's `now` may be read before the settle it waits behind commits.)
        assert watch.order[instance_id] == prompts, "the model saw the instance's prompts in admission order"
        history: list[str] = []
        cursor = None
        while True:
            page = await runtime.history("ticket", instance_id, "default", limit=1000, cursor=cursor)
            history += [m.message.text for m in page.messages]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert history[0::2] == prompts, "history in admission order"
        assert history[1::2] == [f"re: {p}" for p in prompts]

    asyncio.run(go())


def test_thousand_submissions_from_sixteen_threads_into_one_instance(loaded) -> None:
    backend, runtime, watch = loaded
    jobs = [("T-1", f"t{i % 16}-m{i // 16}") for i in range(1000)]
    admit_from_threads(runtime, jobs, threads=16)
    assert backend.resources
    busy = serve(backend)
    check_instance(runtime, watch, "T-1", 1000)
    assert busy > 0, "no redelivery met a live lease: the workers never overlapped"
    assert watch.overlaps == [], "two attempts of one instance ran at once"
    assert len(watch.seen) == 1000 and set(watch.seen.values()) == {1}, "each processed once"
    # Each thread's own submissions keep their order too.
    records = asyncio.run(runtime.stores.ledger.list_submissions(InstanceRef("ticket", "T-1"), limit=1001))
    for t in range(16):
        mine = [int(r.payload["message"].split("-m")[1]) for r in records if r.payload["message"].startswith(f"t{t}-")]
        assert mine == sorted(mine)


def test_hundred_instances_by_ten_interleaved(loaded) -> None:
    backend, runtime, watch = loaded
    jobs = [(f"I-{i % 100}", f"i{i % 100}-m{i // 100}") for i in range(1000)]
    admit_from_threads(runtime, jobs, threads=16)
    assert backend.resources
    serve(backend)
    assert watch.overlaps == [], "two attempts of one instance ran at once"
    for i in range(100):
        check_instance(runtime, watch, f"I-{i}", 10)
    assert len(watch.seen) == 1000 and set(watch.seen.values()) == {1}, "each processed once"
