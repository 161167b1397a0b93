"""Asynchronous Lambda invocation for the local stack: what ``InvocationType=Event`` does.

Deployed, EventBridge (a rule's target) and EventBridge Scheduler invoke the dispatch function
asynchronously: Lambda keeps the event in its own queue, invokes the function with it, tries a
failed invocation twice more, then sends it to the on-failure destination. Here the event
queue is an SQS queue (`provision.provision_events` makes it, with the failures queue as its
dead-letter queue after `provision.ASYNC_INVOKE_ATTEMPTS` receives), which is also what the
local dispatch rule targets, since moto cannot invoke a function from a rule.

`AsyncInvoker` drains that queue on `concurrency` threads: each message's body is the event;
the function gets it as it is (one event per invocation, not an SQS batch). A success, or a
body that is not a JSON object (an event Lambda would never have accepted), deletes the
message. A failure (the handler raised, timed out, or its environment died) leaves it to come
back after a delay that doubles each attempt, starting at `retry_delay` seconds (Lambda
waits about one then two minutes; a local retry need not); after the last of `attempts`, at
once, so that the queue's redrive moves it to the failures queue. `invoke` puts an event in the
queue, as ``lambda:Invoke`` with ``InvocationType=Event`` would.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any

from agent_runtime.adapters.aws.provision import ASYNC_INVOKE_ATTEMPTS
from agent_runtime.dev.lambda_runtime import LocalFunction

__all__ = ["AsyncInvoker"]

log = logging.getLogger(__name__)


class AsyncInvoker:
    """Deliver the events waiting in `queue_url` to `function`, one invocation each."""

    def __init__(
        self,
        *,
        sqs: Any,
        queue_url: str,
        function: LocalFunction,
        concurrency: int = 2,
        retry_delay: int = 1,
        attempts: int = ASYNC_INVOKE_ATTEMPTS,
        long_poll_seconds: int = 1,
    ) -> None:
        if retry_delay < 1:
            raise ValueError("retry_delay must be at least 1 second")
        self.sqs = sqs
        self.queue_url = queue_url
        self.function = function
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self.attempts = attempts
        self.long_poll_seconds = long_poll_seconds
        self.invoked = 0
        self.failed = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def arn(self) -> str:
        return self.function.arn

    def invoke(self, event: Any) -> None:
        """Queue `event` for an asynchronous invocation (Lambda answers 202 and runs it later)."""
        self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=json.dumps(event))

    def start(self) -> None:
        self._stop.clear()
        for number in range(self.concurrency):
            thread = threading.Thread(
                target=self._run, name=f"async-invoke-{self.function.name}-{number}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def stop_receiving(self) -> None:
        """Receive no more events (the threads end after their current long poll); `stop`
        then waits for them. Lets a caller stopping several pollers overlap their polls."""
        self._stop.set()

    def stop(self, grace: float = 10.0) -> None:
        """Stop receiving; invocations still running after `grace` fail, so their events stay
        in the queue for the next start."""
        self._stop.set()
        for thread in self._threads:
            thread.join(grace)
        self.function.close()
        for thread in self._threads:
            thread.join(5.0)
        self._threads = []

    def _run(self) -> None:
        while not self._stop.is_set():
            for message in self._receive():
                self._deliver(message)

    def _receive(self) -> list[dict[str, Any]]:
        """At most one message (one invocation per thread); none after a failed receive,
        which is retried a second later."""
        try:
            messages: list[dict[str, Any]] = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=self.long_poll_seconds,
                AttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
        except Exception:
            if not self._stop.is_set():
                log.warning("ReceiveMessage failed; retrying", exc_info=True)
                self._stop.wait(1.0)
            return []
        return messages

    def _deliver(self, message: dict[str, Any]) -> None:
        try:
            event = json.loads(message["Body"])
        except ValueError:
            event = None
        if not isinstance(event, dict):
            log.error("dropped an event for %s that is not a JSON object", self.function.name)
            self._delete(message)
            return
        invocation = self.function.invoke(event)
        with self._lock:
            self.invoked += 1
            self.failed += not invocation.ok
        if invocation.ok:
            self._delete(message)
            return
        attempt = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
        log.warning(
            "%s failed on an asynchronous event (attempt %d, %s): %s",
            self.function.name,
            attempt,
            invocation.outcome,
            invocation.error,
        )
        if self._stop.is_set():
            return  # stopping: the event comes back after the queue's visibility timeout
        last = attempt >= self.attempts
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url,
            ReceiptHandle=message["ReceiptHandle"],
            VisibilityTimeout=0 if last else self.retry_delay * 2 ** (attempt - 1),
        )

    def _delete(self, message: dict[str, Any]) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
