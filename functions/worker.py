"""Worker Lambda: SQS FIFO wake-ups in, each instance's head submissions run in order.

Per record: drain the instance while the invocation has time (less a safety margin),
send a continuation wake-up when work remains, fail the record when a live attempt
holds the instance (SQS redelivers it after the visibility timeout). A failed record
skips the rest of its group in the batch, keeping per-instance order.

Each settled submission is logged (agent, outcome, times, tokens) and counted in
CloudWatch metrics written to the log in the embedded metric format, flushed once per
invocation: ``Submissions{Completed,Failed,Aborted}``, ``SubmissionSeconds`` (accepted to
settled), ``QueueSeconds`` (accepted to first start), ``InputTokens``, ``OutputTokens``, ``CostUSD``.
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from agent_runtime import tracing
from agent_runtime.adapters.aws.bootstrap import default_runtime, run
from agent_runtime.adapters.aws.sqs import child_token, parse_wakeup
from agent_runtime.errors import NotClaimable
from agent_runtime.loop.settle import Settlement
from agent_runtime.settings import METRICS_NAMESPACE, SERVICE_NAME, WORKER_SAFETY_MARGIN_MS
from agent_runtime.worker import Worker
from functions import imports_done

imports_done()

logger = Logger()
# The stack sets both names; the defaults keep tests and the local stack on the same ones.
metrics = Metrics(
    namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", METRICS_NAMESPACE),
    service=os.environ.get("POWERTOOLS_SERVICE_NAME", SERVICE_NAME),
)
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


def runtime() -> Worker:
    """The worker of this container (tests replace it)."""
    return default_runtime()


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    rt = runtime()
    instance = parse_wakeup(record.body)
    token = child_token(record.body)
    if token is not None:  # a blocking child's execution woke it: keep the callback token
        run(rt.accept_child(instance, *token))
    budget_ms = lambda_context.get_remaining_time_in_millis() - WORKER_SAFETY_MARGIN_MS
    result = run(rt.drain(instance, deadline=rt.clock() + max(0, budget_ms) / 1000))
    logger.info("drained", instance=instance.key, state=result.state, settled=result.settled)
    for settlement in result.settlements:
        report(settlement)
    if result.state == "more":
        run(rt.continue_later(instance, dedupe_id=f"continue-{secrets.token_hex(8)}"))
    elif result.state == "busy":
        raise NotClaimable(f"{instance} is held by a live attempt; retry after its lease")


def report(settlement: Settlement) -> None:
    """Log one settled submission and add it to this invocation's metrics."""
    usage = settlement.usage
    logger.info(
        "settled",
        agent=settlement.agent,
        submission_id=settlement.submission_id,
        kind=settlement.kind,
        outcome=settlement.outcome.value,
        error_type=settlement.error_type,
        attempts=settlement.attempts,
        seconds=round(settlement.settled_at - settlement.accepted_at, 3),
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
    )
    metrics.add_metric(name=f"Submissions{settlement.outcome.value.capitalize()}", unit=MetricUnit.Count, value=1)
    metrics.add_metric(
        name="SubmissionSeconds", unit=MetricUnit.Seconds, value=settlement.settled_at - settlement.accepted_at
    )
    if settlement.started_at is not None:
        metrics.add_metric(
            name="QueueSeconds", unit=MetricUnit.Seconds, value=max(0.0, settlement.started_at - settlement.accepted_at)
        )
    if usage is not None:
        metrics.add_metric(name="InputTokens", unit=MetricUnit.Count, value=usage.input_tokens)
        metrics.add_metric(name="OutputTokens", unit=MetricUnit.Count, value=usage.output_tokens)
    if settlement.cost_usd is not None:
        metrics.add_metric(name="CostUSD", unit=MetricUnit.NoUnit, value=settlement.cost_usd)


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    try:
        return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    finally:
        if metrics.metric_set:  # an invocation that settled nothing writes no metrics line
            metrics.flush_metrics()
        tracing.flush()  # the spans buffered for X-Ray leave before the container freezes
