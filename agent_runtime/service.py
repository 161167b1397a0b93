"""The service: admission, reads and abort. What the HTTP, WebSocket and EventBridge
handlers call; it never runs an agent (the worker does) and never runs the user's
`init(ctx)`: admission needs only the agent's name, the session and the input.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any, Literal

from agent_runtime import events as ev
from agent_runtime.children import link_of
from agent_runtime.errors import (
    AlreadySettled,
    Busy,
    ChildNotFound,
    StaleAttempt,
    SubmissionNotFound,
)
from agent_runtime.ids import InstanceRef, validate_key, validate_session
from agent_runtime.instance_data import InstanceData
from agent_runtime.instance_effects import InstanceEffects
from agent_runtime.ledger import (
    Admission,
    Draft,
    Outcome,
    Status,
    SubmissionRecord,
    canonical_json,
    check_input_size,
    input_hash,
    sequence_of,
)
from agent_runtime.loop.settle import settle
from agent_runtime.loop.steps import Finish
from agent_runtime.ports import ChildEntry, EventPage, HistoryPage
from agent_runtime.streaming import event_fields

log = logging.getLogger("agent_runtime")

DEFAULT_SESSION = "default"


#: The most unsettled submissions an abort or a concurrency policy looks at, at once.
ABORT_MAX = 1000


def _started(record: SubmissionRecord) -> bool:
    """Running, waiting, or queued again after an attempt."""
    return record.status is not Status.queued or record.attempts > 0


class Service(InstanceEffects, InstanceData):
    # --- admission -----------------------------------------------------------------

    async def prompt(
        self,
        agent: str,
        instance_id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        idempotency_key: str | None = None,
        attachments: list[str] | None = None,
        images: list[tuple[str, str]] | None = None,
        concurrency: str | None = None,
    ) -> Admission:
        """Admit a direct prompt. The same idempotency key and message return the first
        submission; the same key with another message raises `Conflict`. `attachments`
        name files of the instance (which must exist); `images` are inline ``(media type,
        base64)`` pairs, stored as files first. Refused while a required variable is unset."""
        instance = self.instance(agent, instance_id)
        key = f"prompt:{validate_key(idempotency_key, field='idempotency_key')}" if idempotency_key else None
        await self.check_required(instance)
        await self._concurrency(instance, concurrency or self.probe(agent).concurrency)
        payload: dict[str, Any] = {"message": message}
        if attachments or images:
            parts = await self.attach(instance, attachments or [], images)
            payload["attachments"] = [p.model_dump(exclude={"type"}) for p in parts]
        return await self.admit(instance, _draft("direct", session, payload, key))

    async def dispatch(
        self,
        agent: str,
        instance_id: str,
        input: Any,
        *,
        session: str = DEFAULT_SESSION,
        dispatch_id: str | None = None,
    ) -> Admission:
        """Admit dispatched input (any JSON). Receipts are kept for the instance's life."""
        instance = self.instance(agent, instance_id)
        canonical_json(input)
        dispatch_id = validate_key(dispatch_id, field="dispatch_id") if dispatch_id else f"d-{secrets.token_hex(12)}"
        return await self.admit(instance, _draft("dispatch", session, input, f"dispatch:{dispatch_id}"))

    # --- reads ---------------------------------------------------------------------

    async def submission(self, agent: str, instance_id: str, submission_id: str) -> SubmissionRecord:
        instance = self.instance(agent, instance_id)
        sequence_of(submission_id)  # refuses malformed ids before any read
        record = await self.stores.ledger.get(instance, submission_id)
        if record is None:
            raise SubmissionNotFound(f"no submission {submission_id!r} on {instance}", details={"submission_id": submission_id})
        return record

    async def wait(
        self, agent: str, instance_id: str, submission_id: str, *, timeout: float, poll: float = 0.01  # noqa: ASYNC109
    ) -> SubmissionRecord:
        """Poll until settled or `timeout` seconds pass; returns the latest record.
        Polls start at `poll` and grow by half each time up to 0.5 s: quick answers are
        seen within milliseconds, long ones cost a read every half second."""
        deadline = time.monotonic() + timeout
        delay = poll
        while True:
            record = await self.submission(agent, instance_id, submission_id)
            remaining = deadline - time.monotonic()
            if record.settled or remaining <= 0:
                return record
            await asyncio.sleep(min(delay, remaining))
            delay = min(delay * 1.5, 0.5)

    async def history(
        self, agent: str, instance_id: str, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        instance = self.instance(agent, instance_id)
        validate_session(session)
        return await self.stores.history.page(instance, session, limit=limit, cursor=cursor)

    async def events_after(
        self, agent: str, instance_id: str, *, after: int, limit: int = 100, wait: float = 0.0, poll: float = 0.1
    ) -> EventPage:
        """Events after an offset; with `wait`, polls until one lands or `wait` seconds pass."""
        instance = self.instance(agent, instance_id)
        deadline = time.monotonic() + wait
        while True:
            page = await self.events.read(instance, after=after, limit=limit, now=self.clock())
            remaining = deadline - time.monotonic()
            if page.events or remaining <= 0:
                return page
            await asyncio.sleep(min(poll, remaining))

    # --- children ------------------------------------------------------------------

    async def list_children(
        self, agent: str, instance_id: str, *, after: str | None = None, limit: int = 50
    ) -> list[tuple[ChildEntry, SubmissionRecord | None]]:
        """The instance's children in ref order, each with its latest submission."""
        instance = self.instance(agent, instance_id)
        entries = await self.stores.child_index.page(instance, after=after, limit=limit)
        return [(e, await self.stores.ledger.get(e.child, e.latest_submission_id)) for e in entries]

    async def child_of(self, agent: str, instance_id: str, ref: str) -> InstanceRef:
        """The child `ref` of an instance, for reads through the parent's routes."""
        instance = self.instance(agent, instance_id)
        entry = await self.stores.child_index.get(instance, ref)
        if entry is None:
            raise ChildNotFound(f"{instance} has no child {ref!r}", details={"ref": ref})
        return entry.child

    # --- abort ---------------------------------------------------------------------

    async def abort(self, agent: str, instance_id: str, *, queued: bool = False) -> list[SubmissionRecord]:
        """Abort the running submission (and, with `queued`, every queued one).

        Each is flagged first; a running attempt sees the flag within a poll and settles
        itself. One that no attempt holds (queued, between attempts, or waiting) is
        settled here at once, through the one settle path; if a worker claimed it in
        between, that worker sees the flag and settles it instead.
        """
        instance = self.instance(agent, instance_id)
        records = await self.stores.ledger.unsettled(instance, limit=ABORT_MAX)
        return await self._abort_records(instance, [r for r in records if queued or _started(r)])

    async def _abort_records(self, instance: InstanceRef, records: list[SubmissionRecord]) -> list[SubmissionRecord]:
        aborted: list[SubmissionRecord] = []
        for record in records:
            try:
                flagged = await self.stores.ledger.request_abort(instance, record.id, now=self.clock())
            except AlreadySettled:
                continue
            if flagged.status is not Status.running:
                flagged = await self._settle_aborted(flagged)
            aborted.append(flagged)
        return aborted

    async def _concurrency(self, instance: InstanceRef, policy: str) -> None:
        """Apply `policy` to a prompt for a busy instance, before it is admitted:
        ``reject`` raises `Busy`; ``interrupt`` aborts the user submissions in progress or
        queued, so the new one runs next; ``latest`` aborts the queued ones (the running
        one goes on). Dispatches, child reports and effects are never aborted here."""
        if policy == "queue":
            return
        busy = await self.stores.ledger.unsettled(instance, limit=ABORT_MAX)
        if not busy:
            return
        if policy == "reject":
            await self.publish(instance, [self._decision(instance, policy, "rejected", [r.id for r in busy])])
            raise Busy(
                f"{instance} is busy with {busy[0].id} and its agent rejects prompts meanwhile",
                details={"submission_id": busy[0].id},
            )
        users = [r for r in busy if r.kind == "direct" and (policy == "interrupt" or not _started(r))]
        aborted = await self._abort_records(instance, users)
        decision: Literal["interrupted", "replaced"] = "interrupted" if policy == "interrupt" else "replaced"
        await self.publish(instance, [self._decision(instance, policy, decision, [r.id for r in aborted])])

    def _decision(self, instance: InstanceRef, policy: str, decision: Any, ids: list[str]) -> ev.Event:
        fields = event_fields(instance, self.clock(), None, None)
        return ev.ConcurrencyDecision(**fields, policy=policy, decision=decision, submissions=ids[:100])

    async def _settle_aborted(self, record: SubmissionRecord) -> SubmissionRecord:
        before = "while it waited" if record.status is Status.waiting else "before it started"
        finish = Finish.aborted(f"aborted {before}")
        events: list[ev.Event] = []

        async def collect(event: ev.Event) -> None:
            events.append(event)

        now = self.clock()
        link = link_of(record)
        # A non-blocking child's report is a ledger write the settle path makes. A blocking
        # child's driver callback is the worker's to answer (the handlers hold no grant):
        # its parent is woken instead, and its worker resumes it with the outcome.
        reports = self.child_runs if link is not None and not link.blocking else None
        try:
            await settle(self.stores.attempts, record, finish, now=now, emit=collect, child_runs=reports)
        except (AlreadySettled, StaleAttempt):
            return record  # settled meanwhile, or claimed: that attempt sees the flag
        await self.publish(record.ref, events)
        if link is not None and link.blocking:
            dedupe = f"child-aborted-{link.child_submission_id}"
            await self.wakeups.send(link.parent, reason="child_done", dedupe_id=dedupe)
        return record.model_copy(
            update={"status": Status.settled, "outcome": Outcome.aborted, "error": finish.error, "settled_at": now}
        )


def _draft(kind: Literal["direct", "dispatch"], session: str, payload: Any, key: str | None) -> Draft:
    validate_session(session)
    check_input_size(payload)
    return Draft(
        kind=kind,
        session=session,
        payload=payload,
        receipt_key=key,
        receipt_hash=input_hash(kind, session, payload) if key else None,
    )


__all__ = ["DEFAULT_SESSION", "Service"]
