"""Wake-ups: the SQS FIFO queue that is each instance's mutex, and its dead-letter queue.

A message says "instance X has work" (``MessageGroupId`` = instance), never carries the
work itself. The runtime always sends an explicit ``MessageDeduplicationId``, so
content-based deduplication is off; deduplication per message group with throughput
per group id is FIFO's high-throughput mode (instances are independent).
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from agent_runtime import settings

# FIFO keeps order per message group within a batch; ten is SQS's largest FIFO batch.
WORKER_BATCH_SIZE = 10


class Wakeups(Construct):
    """``queue``: the FIFO wake-up queue. ``dead_letter_queue``: where poison wake-ups end."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.dead_letter_queue = sqs.Queue(
            self,
            "DeadLetterQueue",
            fifo=True,
            content_based_deduplication=False,
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            fifo=True,
            content_based_deduplication=False,
            deduplication_scope=sqs.DeduplicationScope.MESSAGE_GROUP,
            fifo_throughput_limit=sqs.FifoThroughputLimit.PER_MESSAGE_GROUP_ID,
            # Six times the worker's timeout: a live worker's message is never redelivered.
            visibility_timeout=Duration.seconds(settings.QUEUE_VISIBILITY_SECONDS),
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letter_queue, max_receive_count=settings.DLQ_MAX_RECEIVE_COUNT
            ),
        )

    def add_consumer(self, function: lambda_.IFunction, *, max_concurrency: int = 0) -> None:
        """Deliver wake-ups to `function` in batches with per-message failure reporting
        (the worker returns ``batchItemFailures``; the rest of the batch is deleted), at
        most `max_concurrency` invocations at a time (0: as many as the queue needs).
        Wake-ups beyond it wait in the queue, in order per instance."""
        function.add_event_source(
            sources.SqsEventSource(
                self.queue,
                batch_size=WORKER_BATCH_SIZE,
                report_batch_item_failures=True,
                max_concurrency=max_concurrency or None,
            )
        )
