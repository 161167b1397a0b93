"""The one place a submission settles.

Every ending goes through `settle`: an attempt's `Finish` (answer, result, abort seen at
a boundary, timeout, max_turns), the worker's decisions on a claimed submission that
must not run (abort, timeout, retry budget spent, a broken definition) or whose last
attempt failed, and the service's abort of a queued or waiting submission. It writes
the terminal state (the first terminal write wins, in `Attempts.settle`), tells the
event log (`agent_end` when the submission had started, then `submission_settled`),
reports a child's ending to its driver (which wakes the parent) and returns the
`Settlement` that logs and metrics report.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent_runtime import events as ev
from agent_runtime import tracing
from agent_runtime.children import link_of
from agent_runtime.errors import AbortRequested
from agent_runtime.ledger import Fence, Journal, Outcome, Phase, Status, SubmissionRecord
from agent_runtime.loop.steps import Finish
from agent_runtime.messages import Usage
from agent_runtime.models.cost import cost_usd
from agent_runtime.ports import Attempts

if TYPE_CHECKING:
    from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.streaming import event_fields

log = logging.getLogger("agent_runtime")

#: Where settle's events go: an attempt's buffered stream, or the service's log append.
Emit = Callable[[ev.Event], Awaitable[None]]


@dataclass(frozen=True)
class Settlement:
    """A settled submission, as metrics and logs report it."""

    agent: str
    submission_id: str
    kind: str
    outcome: Outcome
    error_type: str | None
    attempts: int
    accepted_at: float
    started_at: float | None
    settled_at: float
    #: Token usage of the whole submission (None when it ended without running).
    usage: Usage | None = None
    #: What the submission returned (completed only).
    result: dict[str, Any] | None = None
    #: What its model calls cost (USD, by `agent_runtime.models.cost.PRICES`).
    cost_usd: float | None = None


def spending(journal: Journal | None) -> dict[str, Any]:
    """The submission's usage by model and what it cost (`agent_runtime.models.cost`)."""
    by_model = journal.usage_by_model if journal is not None else {}
    cost, unpriced = cost_usd(by_model)
    spent: dict[str, Any] = {"models": {name: u.model_dump() for name, u in by_model.items()}, "cost_usd": cost}
    if unpriced:
        spent["unpriced"] = unpriced
    return spent


def result_of(finish: Finish, usage: Usage, journal: Journal | None = None) -> dict[str, Any] | None:
    if finish.outcome is not Outcome.completed:
        return None
    return {"text": finish.text, "data": finish.data, "usage": usage.model_dump(), **spending(journal)}


async def settle(
    attempts: Attempts,
    record: SubmissionRecord,
    finish: Finish,
    *,
    now: float,
    emit: Emit,
    fence: Fence | None = None,
    journal: Journal | None = None,
    honour_abort: bool = False,
    child_runs: ChildRuns | None = None,
) -> Settlement:
    """Write `finish` as the submission's terminal state, then announce it.

    With a `fence`, the running attempt settles (and `journal` plus `finish.closing`
    are written with it); without, the caller holds no attempt (a queued or waiting
    submission). Raises what `Attempts.settle` raises: `AlreadySettled`,
    `StaleAttempt`, and `AbortRequested` when `honour_abort` and an abort came first.
    """
    usage = journal.usage if journal is not None else None
    result = result_of(finish, usage or Usage(), journal)
    cost = spending(journal)["cost_usd"] if journal is not None else None
    await attempts.settle(
        record.ref,
        record.id,
        finish.outcome,
        now=now,
        fence=fence,
        result=result,
        error=finish.error,
        journal=journal,
        messages=finish.closing,
        honour_abort=honour_abort,
    )
    tracing.settled(record, finish.outcome, finish.error, usage, now)
    fields = event_fields(record.ref, now, record.session, record.id)
    if record.started_at is not None:
        await emit(ev.AgentEnd(**fields, outcome=finish.outcome, result=result, error=finish.error))
    await emit(ev.SubmissionSettled(**fields, outcome=finish.outcome, usage=usage, cost_usd=cost))
    link = link_of(record)
    if link is not None and child_runs is not None:
        settled = record.model_copy(
            update={"status": Status.settled, "outcome": finish.outcome, "result": result, "error": finish.error, "settled_at": now}
        )
        try:
            await child_runs.settled(link, settled, now=now, session=link.parent_session)
        except Exception:  # the parent finds the child's record when it next looks
            log.warning("could not report a child's outcome", extra={"child": record.ref.key}, exc_info=True)
    return Settlement(
        agent=record.ref.agent,
        submission_id=record.id,
        kind=record.kind,
        outcome=finish.outcome,
        error_type=str(finish.error["type"]) if finish.error and "type" in finish.error else None,
        attempts=record.attempts,
        accepted_at=record.accepted_at,
        started_at=record.started_at,
        settled_at=now,
        usage=usage,
        result=result,
        cost_usd=cost,
    )


async def settle_attempt(
    attempts: Attempts,
    record: SubmissionRecord,
    finish: Finish,
    *,
    now: Callable[[], float],
    emit: Emit,
    fence: Fence,
    journal: Journal,
    child_runs: ChildRuns | None,
    aborted: Callable[[], Finish] = Finish.aborted,
) -> tuple[Finish, Settlement, Journal]:
    """A running attempt's ending: `finish`, written with the attempt's journal closed; but
    a completed answer yields to an abort requested meanwhile (the caller asked to stop),
    which ends it as `aborted()` instead. Returns the ending written, its settlement and
    the journal as stored."""

    def closed(ending: Finish) -> Journal:
        # A new journal sharing the unchanged parts: nothing mutates either afterwards.
        return journal.model_copy(
            update={"phase": Phase.committed, "pending_calls": [], "written": journal.written + len(ending.closing)}
        )

    options: dict[str, Any] = {"emit": emit, "fence": fence, "child_runs": child_runs}
    try:
        done = closed(finish)
        honour = finish.outcome is Outcome.completed
        return finish, await settle(attempts, record, finish, now=now(), journal=done, honour_abort=honour, **options), done
    except AbortRequested:
        ending = aborted()
        done = closed(ending)
        return ending, await settle(attempts, record, ending, now=now(), journal=done, **options), done
