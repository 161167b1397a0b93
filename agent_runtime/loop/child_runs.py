"""How children start and how their endings reach their parents (DESIGN section 5).

A blocking child is started and answered through the `Children` driver (in process, or a
Step Functions execution that wakes the parent). A non-blocking child just gets a wake-up;
when it settles, its outcome is admitted to the parent's ledger as a submission of kind
``child_report`` (receipt ``report:<child submission>``: a report made twice is admitted
once), queued behind whatever the parent is doing. That submission is silent: it adds
the report to the parent's history, where the model reads it on its next turn, and
settles without a model call.

Both are told right after the child's terminal write. A worker that dies in between
never deletes its wake-up, so the child instance is woken again; finding nothing to run,
the worker tells the parent again (`Worker._tell_parent_again`): the report's receipt and
the driver's idempotent answer make a second telling harmless.
"""

from __future__ import annotations

from typing import Any

from agent_runtime.children import ChildLink
from agent_runtime.ledger import Draft, Outcome, SubmissionRecord, input_hash
from agent_runtime.ports import Children, Ledger, WakeUps


def report_payload(link: ChildLink, child: SubmissionRecord) -> dict[str, Any]:
    result = child.result or {}
    error = child.error or {}
    return {
        "child": link.child.key,
        "child_submission_id": link.child_submission_id,
        "call_id": link.call_id,
        "outcome": child.outcome.value if child.outcome else None,
        "text": result.get("text") if child.outcome is Outcome.completed else None,
        "data": result.get("data") if child.outcome is Outcome.completed else None,
        "error": {"type": error.get("type"), "message": error.get("message")} if error else None,
    }


def report_text(payload: dict[str, Any]) -> str:
    """The message a parent's model reads when a non-blocking child ends."""
    head = f"[subagent {payload['child']} (call {payload['call_id']}) {payload['outcome']}]"
    if payload.get("outcome") == Outcome.completed.value:
        return f"{head} {payload.get('text') or ''}".rstrip()
    error = payload.get("error") or {}
    return f"{head} {error.get('type')}: {error.get('message')}"


class ChildRuns:
    def __init__(self, driver: Children, ledger: Ledger, wakeups: WakeUps) -> None:
        self.driver = driver
        self.ledger = ledger
        self.wakeups = wakeups

    async def start(self, link: ChildLink) -> None:
        if link.blocking:
            await self.driver.start(link)
        else:
            await self.wakeups.send(link.child, reason="child", dedupe_id=f"child-{link.child_submission_id}")

    async def settled(self, link: ChildLink, child: SubmissionRecord, *, now: float, session: str) -> None:
        """`child` settled: tell the driver (blocking) or report to the parent's `session`."""
        if link.blocking:
            await self.driver.report(link, child)
            return
        payload = report_payload(link, child)
        draft = Draft(
            kind="child_report",
            session=session,
            payload=payload,
            receipt_key=f"report:{link.child_submission_id}",
            receipt_hash=input_hash("child_report", session, payload),
        )
        admission = await self.ledger.admit(link.parent, draft, now=now)
        await self.wakeups.send(link.parent, reason="child_report", dedupe_id=admission.record.id)
