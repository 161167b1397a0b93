"""EventBridge dispatch Lambda: ``agent-runtime.dispatch`` events become dispatched submissions.

The rule on the runtime's bus matches the detail-type (`settings.DISPATCH_DETAIL_TYPE`, any
source) and invokes this function asynchronously. The detail is
`protocol.DispatchEventDetail`; its `dispatch_id` defaults to the event's id, which
EventBridge keeps when it delivers an event again, so a redelivery returns the first
receipt and never admits a second submission.

It is also the target of effects' timers (`agent_runtime.effects`): an event of
detail-type `settings.EFFECT_DETAIL_TYPE` (`protocol.EffectEventDetail`) fires that
effect, which admits its submission once however often the timer delivers.

What happens to an event that cannot be admitted depends on whether trying again can help:

- dropped, with an error in the log: not a dispatch event, a detail that does not fit the
  model, an unknown agent, a bad instance id, session or dispatch id, input over the size
  limit, a dispatch id already used with other input. The same event fails the same way
  every time; raising would only retry it before parking it in the failure queue.
- raised: everything else (DynamoDB or SQS throttled or unreachable, a bug). Lambda
  retries the event, then keeps it in the dispatch failures queue for a redrive; every
  retry uses the same dispatch id, so none admits twice.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext

from agent_runtime.adapters.aws.bootstrap import default_service, run
from agent_runtime.errors import Conflict, InvalidInput, NotFound
from agent_runtime.protocol import DispatchEventDetail, EffectEventDetail, parse_detail
from agent_runtime.service import Service
from agent_runtime.settings import DISPATCH_DETAIL_TYPE, EFFECT_DETAIL_TYPE
from functions import imports_done

imports_done()

logger = Logger()
_runtime: Service | None = None

#: Errors a retry cannot fix: the event is logged and dropped.
PERMANENT = (InvalidInput, NotFound, Conflict)


def set_runtime(runtime: Service | None) -> None:
    """Dispatch with `runtime` instead of `default_service()` (tests, the local stack); None resets."""
    global _runtime
    _runtime = runtime


def runtime() -> Service:
    return _runtime if _runtime is not None else default_service()


@logger.inject_lambda_context(clear_state=True)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    envelope = EventBridgeEvent(event)
    logger.append_keys(event_id=envelope.get_id, source=envelope.source)
    try:
        if envelope.detail_type == EFFECT_DETAIL_TYPE:
            return _fire(parse_detail(EffectEventDetail, event.get("detail")))
        if envelope.detail_type != DISPATCH_DETAIL_TYPE:
            raise InvalidInput(f"not a dispatch event: detail-type {envelope.detail_type!r}")
        detail = parse_detail(DispatchEventDetail, event.get("detail"))
        admission = run(
            runtime().dispatch(
                detail.agent,
                detail.id,
                detail.input,
                session=detail.session,
                dispatch_id=detail.dispatch_id or envelope.get_id,
            )
        )
    except PERMANENT as exc:
        logger.error("dispatch event dropped", error_type=exc.type, error=exc.message, details=exc.details)
        return {"status": "dropped", "error": exc.type}
    record = admission.record
    logger.info(
        "dispatch event admitted",
        instance=record.instance,
        submission_id=record.id,
        dispatch_id=record.dispatch_id,
        replayed=admission.replayed,
    )
    return {"status": "admitted", "submission_id": record.id, "dispatch_id": record.dispatch_id, "replayed": admission.replayed}


def _fire(detail: EffectEventDetail) -> dict[str, Any]:
    """An effect's timer went off: admit its submission (once; none if it was cancelled)."""
    admission = run(runtime().fire_effect(detail.agent, detail.id, detail.effect_id))
    if admission is None:
        logger.info("cancelled effect not run", effect_id=detail.effect_id)
        return {"status": "cancelled", "effect_id": detail.effect_id}
    record = admission.record
    logger.info("effect admitted", instance=record.instance, submission_id=record.id, effect_id=detail.effect_id)
    return {"status": "admitted", "submission_id": record.id, "effect_id": detail.effect_id, "replayed": admission.replayed}
