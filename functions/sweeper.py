"""Sweeper Lambda: on an EventBridge schedule, re-wake instances whose work sits idle.

The schedule's event carries nothing we need. One run queries the table's pending index
(`Ledger.pending_instances`, never a scan) and sends each instance idle longer than
`settings.SWEEP_IDLE_SECONDS` one wake-up, deduplicated per sweep window (see
`agent_runtime.sweep`). Its role may query that index and send to the wake-up queue only.
A run in which a send failed raises after trying every instance, so it shows in the
function's errors; sending again (a retry, the next run) is harmless.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

from agent_runtime import settings
from agent_runtime.adapters.aws.bootstrap import default_runtime, run
from agent_runtime.errors import AgentRuntimeError
from agent_runtime.runtime import Runtime
from agent_runtime.sweep import sweep
from functions import imports_done

imports_done()

logger = Logger()
_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    """Sweep with `runtime` instead of `default_runtime()` (tests, the local stack); None resets."""
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    # The sweeper runs no agent: it needs no discovery, and a broken agent cannot stop it.
    return _runtime if _runtime is not None else default_runtime(agents=False)


class SweepIncomplete(AgentRuntimeError):
    """Some wake-ups of a sweep could not be sent (each failure is logged with its instance)."""

    type = "sweep_incomplete"


@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, int]:
    rt = runtime()
    result = run(
        sweep(
            rt.stores.ledger,
            rt.wakeups,
            now=rt.clock(),
            idle_seconds=settings.SWEEP_IDLE_SECONDS,
            interval_seconds=settings.SWEEP_INTERVAL_SECONDS,
            limit=settings.SWEEP_LIMIT,
        )
    )
    logger.info("swept", pending=result.pending, woken=result.woken, failed=result.failed)
    if result.failed:
        raise SweepIncomplete(
            f"{result.failed} of {result.pending} sweep wake-ups failed",
            details={"pending": result.pending, "failed": result.failed},
        )
    return {"pending": result.pending, "woken": result.woken}
