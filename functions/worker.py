"""Worker Lambda: SQS FIFO wake-ups in, each instance's head submissions run in order.

Per record: drain the instance while the invocation has time (less a safety margin),
send a continuation wake-up when work remains, fail the record when a live attempt
holds the instance (SQS redelivers it after the visibility timeout). A failed record
skips the rest of its group in the batch, keeping per-instance order.
"""

from __future__ import annotations

import secrets
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch import SqsFifoPartialProcessor, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from agent_runtime.adapters.aws.bootstrap import default_runtime, run
from agent_runtime.adapters.aws.sqs import parse_wakeup
from agent_runtime.errors import NotClaimable
from agent_runtime.runtime import Runtime
from agent_runtime.settings import WORKER_SAFETY_MARGIN_MS
from functions import imports_done

imports_done()

logger = Logger()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


def runtime() -> Runtime:
    """The runtime of this container (tests replace it)."""
    return default_runtime()


def record_handler(record: SQSRecord, lambda_context: LambdaContext) -> None:
    rt = runtime()
    instance = parse_wakeup(record.body)
    budget_ms = lambda_context.get_remaining_time_in_millis() - WORKER_SAFETY_MARGIN_MS
    result = run(rt.drain(instance, deadline=rt.clock() + max(0, budget_ms) / 1000))
    logger.info("drained", instance=instance.key, state=result.state, settled=result.settled)
    if result.state == "more":
        run(rt.wakeups.send(instance, reason="continue", dedupe_id=f"continue-{secrets.token_hex(8)}"))
    elif result.state == "busy":
        raise NotClaimable(f"{instance} is held by a live attempt; retry after its lease")


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
