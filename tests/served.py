"""The worker Lambda on a test backend's queue, for tests of agent trees: each wake-up
goes through `functions.worker.record_handler`, as deployed (on moto, that includes the
state machine's wake-ups of children, which carry their task tokens)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable

from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

import functions.worker as worker
from agent_runtime.adapters.aws.sqs import wakeup_body
from agent_runtime.adapters.memory import MemoryWakeUps
from agent_runtime.errors import NotClaimable
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.testing.lambda_events import LambdaContext, sqs_event


class Crash(BaseException):
    """Process death: nothing in the runtime catches it."""


def crash_once(counter: Counter[str], key: str) -> None:
    counter[key] += 1
    if counter[key] == 1:
        raise Crash(key)


class Served:
    """The worker Lambda on the backend's queue: each wake-up through `record_handler`."""

    def __init__(self, backend: Backend, runtime: Runtime) -> None:
        self.backend = backend
        self.runtime = runtime
        self.handled = 0
        self.crashes = 0
        #: Wake-ups of instances this says yes to are lost (a worker that never runs them).
        self.drop: Callable[[InstanceRef], bool] = lambda instance: False
        #: A crashed invocation's wake-up is lost too (gone to the dead-letter queue, say).
        self.lose_on_crash = False
        self._empty_polls = 0

    def idle(self) -> bool:
        """True once a few polls in a row found nothing to do."""
        return self._empty_polls >= 5

    def batch(self) -> list[tuple[SQSRecord, Callable[[], None], Callable[[], None]]]:
        """Wake-ups to handle, each with how to delete it and how to make it come back."""
        wakeups = self.backend.wakeups
        if isinstance(wakeups, MemoryWakeUps):
            items = []
            while not wakeups.queue.empty():
                instance, reason = wakeups.queue.get_nowait()
                if self.drop(instance):
                    continue
                message = {"MessageId": "m", "ReceiptHandle": "r", "Body": wakeup_body(instance, reason)}
                record = SQSRecord(sqs_event([message], "arn:aws:sqs:::q.fifo")["Records"][0])
                items.append((record, lambda: None, lambda i=instance, r=reason: wakeups.queue.put_nowait((i, r))))
            return items
        assert self.backend.resources
        sqs, url = self.backend.clients["sqs"], self.backend.resources.queue_url
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get("Messages", [])
        items = []
        for m in messages:
            if self.drop(InstanceRef.parse(json.loads(m["Body"])["instance"])):
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
                continue
            items.append(
                (
                    SQSRecord(sqs_event([m], self.backend.resources.queue_arn)["Records"][0]),
                    lambda m=m: sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"]),
                    lambda m=m: sqs.change_message_visibility(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0),
                )
            )
        return items

    def until(self, done: Callable[[], bool], *, timeout: float = 30.0, crash_ok: bool = False) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "did not get there in time"
            batch = self.batch()
            if not batch:
                self._empty_polls += 1
                time.sleep(0.05)  # the state machine runs on moto's threads
                continue
            self._empty_polls = 0
            for record, delete, again in batch:
                try:
                    worker.record_handler(record, LambdaContext())
                except (Crash, NotClaimable) as exc:
                    if isinstance(exc, Crash) and not crash_ok:
                        raise
                    self.crashes += isinstance(exc, Crash)
                    if isinstance(exc, Crash) and self.lose_on_crash:
                        delete()
                        continue
                    # Not deleted: the wake-up comes back after its visibility timeout, which
                    # outlasts the lease of the attempt that died (as the stack configures it).
                    time.sleep(self.runtime.lease_seconds + 0.05)
                    again()
                    continue
                self.handled += 1
                delete()

    def record(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord:
        return asyncio.run(self.runtime.submission(instance.agent, instance.id, submission_id))

    def settled(self, instance: InstanceRef, submission_id: str) -> Callable[[], bool]:
        return lambda: self.record(instance, submission_id).settled
