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

from collections.abc import Callable
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
    """The message a parent's model reads when a non-blocking child ends or writes."""
    if payload.get("notice"):
        return f"[subagent {payload['child']} writes] {payload.get('text') or ''}".rstrip()
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
        if link.explicit and child.outcome is Outcome.completed:
            return  # it talks back through `ctx.notify_parent` only
        receipt = f"report:{link.child_submission_id}"
        await self._report(link, report_payload(link, child), receipt, now=now, session=session)

    async def notify_parent(self, link: ChildLink, text: str, *, receipt: str, now: float) -> None:
        """The child's tool writes to its parent (`ctx.notify_parent`): a `child_report`
        of its own, admitted once per `receipt`."""
        payload = {
            "child": link.child.key,
            "child_submission_id": link.child_submission_id,
            "call_id": link.call_id,
            "outcome": None,
            "notice": True,
            "text": text,
        }
        await self._report(link, payload, receipt, now=now, session=link.parent_session)

    async def _report(self, link: ChildLink, payload: dict[str, Any], receipt: str, *, now: float, session: str) -> None:
        draft = Draft(
            kind="child_report",
            session=session,
            payload=payload,
            receipt_key=receipt,
            receipt_hash=input_hash("child_report", session, payload),
        )
        admission = await self.ledger.admit(link.parent, draft, now=now)
        await self.wakeups.send(link.parent, reason="child_report", dedupe_id=admission.record.id)


class ParentNotices:
    """`ctx.notify_parent` for the tools of one child submission: each text is admitted
    to the parent once (receipt: the child's submission, the tool call, its count in that
    call), so a tool run again after a crash writes nothing twice."""

    def __init__(self, child_runs: ChildRuns, link: ChildLink, clock: Callable[[], float]) -> None:
        self.child_runs = child_runs
        self.link = link
        self.clock = clock
        self._sent: dict[str, int] = {}

    async def notify(self, call_id: str, text: str) -> None:
        count = self._sent[call_id] = self._sent.get(call_id, 0) + 1
        receipt = f"notice:{self.link.child_submission_id}:{call_id}:{count}"
        await self.child_runs.notify_parent(self.link, text, receipt=receipt, now=self.clock())
