"""An SQS event source for the local stack: what Lambda's event source mapping does for a queue.

Each poller thread receives up to 10 messages, builds the SQS event Lambda would send
(``{"Records": [...]}`` with messageId, receiptHandle, body, attributes, messageAttributes,
md5OfBody, eventSource, eventSourceARN, awsRegion), invokes the worker handler with a
Lambda-like context, then applies Lambda's partial batch response rules
(``ReportBatchItemFailures``):

- a ``None`` or empty response, or an empty or missing ``batchItemFailures``: all succeeded;
- an ``itemIdentifier`` that is empty, missing, or not a message of the batch, a handler
  exception or a timeout: the whole batch failed;
- otherwise the listed messages failed and the others succeeded.

Succeeded messages are deleted; failed ones stay in the queue and come back after their
visibility timeout (the DLQ takes them after ``maxReceiveCount`` receives). Several poller
threads run batches in parallel, as Lambda runs concurrent batches; SQS FIFO keeps a message
group's messages in order because a group with a message in flight is not delivered again.

Local-only setting: ``local_retry_delay`` (whole seconds, at least 1) sets the visibility of
failed messages to a few seconds, so a local retry does not wait the queue's visibility timeout
(90 minutes for the runtime's queue, sized for 15-minute workers). Deployed, failed messages
wait the full timeout.

How the threads receive, and why: moto's long poll decides once, when it starts, which FIFO
groups are busy. A long poll running while another thread takes a message could therefore
return the next message of the same group, breaking FIFO order; and while a busy group has
messages waiting it spins until the poll ends. So receives are serialised by a lock, and a
thread long-polls (`long_poll_seconds`) only when no batch is in flight and no failed message
awaits its retry; otherwise it polls without waiting. When nothing came, it waits until a
batch in flight finishes (its group may have more) or, for messages of other groups, for
`idle_wait`, doubled after each empty receive up to `long_poll_seconds`: a thread beside a
long batch of one busy group would otherwise receive ten times a second, every one empty
(in a stream of prompts to one instance, two empty receives per submission).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from agent_runtime import settings
from agent_runtime.dev.lambda_runtime import Handler, Invocation, Isolation, LocalFunction

__all__ = ["PollerStats", "SqsPoller", "batch_failures", "sqs_record"]

log = logging.getLogger(__name__)

#: How long a poller thread may take to settle its batch once its invocation has been ended.
_AFTER_CLOSE = 5.0


@dataclass
class PollerStats:
    batches: int = 0
    messages: int = 0
    deleted: int = 0
    failed: int = 0


class SqsPoller:
    """Deliver a queue's messages to a handler in batches, on `concurrency` threads."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        handler: str | Handler,
        function_name: str = "agent-runtime-worker",
        timeout: float = settings.WORKER_TIMEOUT_SECONDS,
        concurrency: int = 2,
        batch_size: int = 10,
        local_retry_delay: int | None = None,
        long_poll_seconds: int = 1,
        idle_wait: float = 0.1,
        region: str = "us-east-1",
        isolation: Isolation = "process",
    ) -> None:
        if local_retry_delay is not None and local_retry_delay < 1:
            raise ValueError("local_retry_delay must be at least 1 second (or None)")
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1-10 (SQS ReceiveMessage)")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.sqs = sqs
        self.queue_url = queue_url
        self.function = LocalFunction(
            handler=handler,
            name=function_name,
            timeout=timeout,
            region=region,
            isolation=isolation,
            max_concurrency=concurrency,
        )
        self.concurrency = concurrency
        self.batch_size = batch_size
        self.local_retry_delay = local_retry_delay
        self.long_poll_seconds = long_poll_seconds
        self.idle_wait = idle_wait
        self.region = region
        self.stats = PollerStats()
        self._queue_arn = ""
        self._visibility = float(settings.QUEUE_VISIBILITY_SECONDS)
        self._stop = threading.Event()
        self._receive_lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._in_flight = 0
        #: Batches finished so far; a change wakes the threads waiting after an empty receive.
        self._finished = 0
        self._batch_done = threading.Condition(self._state_lock)
        self._retry_until = 0.0  # monotonic time until which a failed message may be invisible
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Init the handler (`HandlerImportError` if it fails), read the queue's ARN, start
        the threads."""
        self.function.load()
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.queue_url, AttributeNames=["QueueArn", "VisibilityTimeout"]
        )["Attributes"]
        self._queue_arn = attributes["QueueArn"]
        self._visibility = float(attributes.get("VisibilityTimeout", self._visibility))
        self._stop.clear()
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._run, name=f"sqs-poller-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, grace: float = 10.0) -> None:
        """Stop receiving; wait up to `grace` seconds for batches in progress to finish, then
        end those still running (they fail, so their messages stay in the queue) and return once
        no thread calls SQS any more."""
        self._stop.set()
        with self._batch_done:
            self._batch_done.notify_all()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.warning("%s still runs a batch after %.0f s; stopping it", thread.name, grace)
        self.function.close()  # the invocations still running fail at once
        for thread in self._threads:
            thread.join(_AFTER_CLOSE)
            if thread.is_alive():
                log.warning("%s did not stop", thread.name)
        self._threads = []

    def __enter__(self) -> SqsPoller:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- one thread ----------------------------------------------------------------------------

    def _run(self) -> None:
        empty = 0  # empty receives in a row that did not wait
        while not self._stop.is_set():
            try:
                messages, waited, finished = self._receive()
            except Exception:
                if self._stop.is_set():
                    return
                log.warning("ReceiveMessage failed; retrying", exc_info=True)
                self._stop.wait(1.0)
                continue
            if not messages:
                empty = 0 if waited else empty + 1
                if not waited:
                    self._pause(finished, empty)
                continue
            empty = 0
            try:
                self._process(messages)
            except Exception:
                log.exception("handling a batch of %d messages failed", len(messages))
            finally:
                with self._batch_done:
                    self._in_flight -= 1
                    self._finished += 1
                    self._batch_done.notify_all()

    def _pause(self, finished: int, empty: int) -> None:
        """After the `empty`-th empty receive in a row: wait until a batch finishes (after
        `finished` had) or the backoff passes."""
        cap = max(self.idle_wait, float(self.long_poll_seconds))
        delay = min(cap, self.idle_wait * 2 ** min(empty - 1, 16))
        with self._batch_done:
            self._batch_done.wait_for(lambda: self._stop.is_set() or self._finished != finished, timeout=delay)

    def _receive(self) -> tuple[list[dict[str, Any]], bool, int]:
        """The messages, whether the receive long-polled, and how many batches had finished
        before it."""
        with self._receive_lock:
            if self._stop.is_set():
                return [], True, 0
            with self._state_lock:
                quiet = self._in_flight == 0 and time.monotonic() >= self._retry_until
                finished = self._finished
            wait = self.long_poll_seconds if quiet else 0
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=self.batch_size,
                WaitTimeSeconds=wait,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if messages:
                with self._state_lock:
                    self._in_flight += 1
            return messages, wait > 0, finished

    def _process(self, messages: list[dict[str, Any]]) -> None:
        records = [sqs_record(m, queue_arn=self._queue_arn, region=self.region) for m in messages]
        invocation = self.function.invoke({"Records": records})
        failed = batch_failures(invocation, [m["MessageId"] for m in messages])
        succeeded = [m for m in messages if m["MessageId"] not in failed]
        if succeeded:
            result = self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(succeeded)
                ],
            )
            if result.get("Failed"):
                log.warning("could not delete processed messages: %s", result["Failed"])
        if failed:
            self._return_for_retry([m for m in messages if m["MessageId"] in failed])
        with self._state_lock:
            self.stats.batches += 1
            self.stats.messages += len(messages)
            self.stats.deleted += len(succeeded)
            self.stats.failed += len(failed)

    def _return_for_retry(self, failed: list[dict[str, Any]]) -> None:
        """Leave failed messages to come back after the retry delay, in their group's order.

        moto only releases a FIFO group when none of its messages is still marked in flight,
        and it checks that while walking the queue in order: were all of a group's failed
        messages to turn visible at once, a later one would be released before the first. So
        the first failed message of each group turns visible one second after the others.
        """
        delay = int(self._visibility) if self.local_retry_delay is None else self.local_retry_delay
        entries = []
        first_seen: set[str] = set()
        for index, message in enumerate(failed):
            group = (message.get("Attributes") or {}).get("MessageGroupId", "")
            first = group not in first_seen
            first_seen.add(group)
            entries.append(
                {
                    "Id": str(index),
                    "ReceiptHandle": message["ReceiptHandle"],
                    "VisibilityTimeout": delay if first else delay - 1,
                }
            )
        result = self.sqs.change_message_visibility_batch(QueueUrl=self.queue_url, Entries=entries)
        if result.get("Failed"):
            log.warning("could not set the retry delay of failed messages: %s", result["Failed"])
        with self._state_lock:
            self._retry_until = max(self._retry_until, time.monotonic() + delay)


def batch_failures(invocation: Invocation, message_ids: list[str]) -> set[str]:
    """The ids of the messages Lambda would keep for a retry after this invocation."""
    everything = set(message_ids)
    if not invocation.ok:
        return everything
    response = invocation.result
    if not response:
        return set()
    if not isinstance(response, dict):
        log.warning(
            "worker returned %s, not a batch response: treated as success", type(response).__name__
        )
        return set()
    reported = response.get("batchItemFailures")
    if not reported:
        return set()
    if not isinstance(reported, list):
        log.warning("batchItemFailures is not a list: the whole batch failed")
        return everything
    failed: set[str] = set()
    for item in reported:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            log.warning("invalid itemIdentifier %r: the whole batch failed", identifier)
            return everything
        failed.add(identifier)
    return failed


def sqs_record(message: dict[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One record of Lambda's SQS event, from a ReceiveMessage result."""
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {k: str(v) for k, v in (message.get("Attributes") or {}).items()},
        "messageAttributes": {
            name: _message_attribute(value)
            for name, value in (message.get("MessageAttributes") or {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if message.get("MD5OfMessageAttributes"):
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


def _message_attribute(value: dict[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {
        "stringListValues": [],
        "binaryListValues": [],
        "dataType": value.get("DataType", "String"),
    }
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    return attribute
