"""The runtime: admission, reads, abort, and the worker's drain of an instance.

`Runtime` is what handlers call. It knows storage only through the ports; the
Lambda handlers build one per cold start with the AWS adapters, tests build one with
the memory adapters (or the AWS ones under moto).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime import events as ev
from agent_runtime import settings
from agent_runtime.adapters.memory_events import MemoryEventLog
from agent_runtime.definition import AgentConfig, AgentContext
from agent_runtime.errors import (
    AlreadySettled,
    StaleAttempt,
    SubmissionNotFound,
)
from agent_runtime.ids import InstanceRef, validate_key, validate_session
from agent_runtime.ledger import (
    Admission,
    Draft,
    Fence,
    Outcome,
    Status,
    SubmissionRecord,
    canonical_json,
    check_input_size,
    input_hash,
    new_attempt_id,
    sequence_of,
)
from agent_runtime.loop import Attempt, Checkpoint
from agent_runtime.messages import Message, Usage
from agent_runtime.models.base import Model, resolve_model
from agent_runtime.ports import (
    EventLog,
    EventPage,
    HistoryPage,
    InstanceStore,
    StoredMessage,
    WakeUps,
)
from agent_runtime.registry import Registry
from agent_runtime.streaming import Broadcaster, EventStream, event_fields

log = logging.getLogger("agent_runtime")

DEFAULT_SESSION = "default"
#: Backoff after a failed attempt: base * 2**(attempt-1), capped, with jitter.
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0
#: Sessions whose history a worker keeps between submissions (least recently used go).
HISTORY_CACHE_SESSIONS = 64


@dataclass(frozen=True)
class Settlement:
    """A submission a drain settled, as metrics and logs report it."""

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

    @classmethod
    def of(
        cls, record: SubmissionRecord, outcome: Outcome, error: dict[str, Any] | None, *, now: float, usage: Usage | None = None
    ) -> Settlement:
        return cls(
            agent=record.ref.agent,
            submission_id=record.id,
            kind=record.kind,
            outcome=outcome,
            error_type=str(error["type"]) if error and "type" in error else None,
            attempts=record.attempts,
            accepted_at=record.accepted_at,
            started_at=record.started_at,
            settled_at=now,
            usage=usage,
        )


@dataclass(frozen=True)
class DrainResult:
    """What a worker did for one instance.

    `idle`: nothing left. `more`: work remains (out of time, or a retry is due later):
    send a continuation wake-up. `busy`: another live attempt holds the head.
    `settlements`: the submissions it settled, in order.
    """

    state: Literal["idle", "more", "busy"]
    settlements: tuple[Settlement, ...] = field(default=())

    @property
    def settled(self) -> int:
        return len(self.settlements)


class Runtime:
    def __init__(
        self,
        *,
        registry: Registry,
        store: InstanceStore,
        wakeups: WakeUps,
        clock: Callable[[], float] = time.time,
        lease_seconds: float = settings.LEASE_SECONDS,
        checkpoint: Checkpoint | None = None,
        env: dict[str, str] | None = None,
        sleep: Callable[[float], Any] = asyncio.sleep,
        events: EventLog | None = None,
        broadcaster: Broadcaster | None = None,
        stream_options: dict[str, Any] | None = None,
        abort_poll_seconds: float | None = None,
    ) -> None:
        self.registry = registry
        self.events: EventLog = events if events is not None else MemoryEventLog()
        self.broadcaster = broadcaster
        self.stream_options = stream_options or {}
        self.store = store
        self.wakeups = wakeups
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.checkpoint = checkpoint
        self.env = env
        self.sleep = sleep
        self.abort_poll_seconds = settings.abort_poll_seconds() if abort_poll_seconds is None else abort_poll_seconds
        self._models: dict[str, Model] = {}
        self._histories: dict[tuple[str, str], _CachedHistory] = {}

    # --- definitions ---------------------------------------------------------------

    def instance(self, agent: str, instance_id: str) -> InstanceRef:
        ref = InstanceRef(agent, instance_id)
        self.registry.get(agent)  # AgentNotFound before anything is written
        return ref

    def config(self, instance: InstanceRef) -> AgentConfig:
        entry = self.registry.get(instance.agent)
        ctx = AgentContext(id=instance.id, agent=instance.agent, **({"env": self.env} if self.env is not None else {}))
        return entry.definition.configure(ctx)

    def model(self, config: AgentConfig) -> Model:
        if isinstance(config.model, Model):
            return config.model
        if config.model not in self._models:
            self._models[config.model] = resolve_model(config.model)
        return self._models[config.model]

    # --- admission -----------------------------------------------------------------

    async def _admit(self, instance: InstanceRef, draft: Draft) -> Admission:
        admission = await self.store.admit(instance, draft, now=self.clock())
        # Sent on replays too: if the first wake-up was lost the retry re-sends it;
        # SQS deduplicates by submission id.
        await self.wakeups.send(instance, reason="admit", dedupe_id=admission.record.id)
        if not admission.replayed:
            record = admission.record
            await self._announce(ev.SubmissionQueued, record, kind=record.kind, sequence=record.sequence)
        return admission

    async def _announce(self, event_type: Callable[..., ev.Event], record: SubmissionRecord, **values: Any) -> None:
        """Append one event of `record` outside a run (admission, abort of queued work),
        and show it to watchers. The ledger is the truth: a failure here is logged, not raised."""
        instance = record.ref
        event = event_type(**event_fields(instance, self.clock(), record.session, record.id), **values)
        try:
            stored = await self.events.append(instance, [event], now=self.clock())
            if self.broadcaster is not None:
                await self.broadcaster.publish(instance, stored)
        except Exception:
            log.warning("could not append an event", extra={"instance": instance.key}, exc_info=True)

    def stream(self, instance: InstanceRef) -> EventStream:
        return EventStream(instance, self.events, clock=self.clock, broadcaster=self.broadcaster, **self.stream_options)

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

    def _draft(self, instance: InstanceRef, kind: Literal["direct", "dispatch"], session: str, payload: Any, key: str | None) -> Draft:
        validate_session(session)
        check_input_size(payload)
        durability = self.config(instance).durability
        return Draft(
            kind=kind,
            session=session,
            payload=payload,
            receipt_key=key,
            receipt_hash=input_hash(kind, session, payload) if key else None,
            max_attempts=durability.retry,
            timeout_s=durability.timeout,
        )

    async def prompt(
        self,
        agent: str,
        instance_id: str,
        message: str,
        *,
        session: str = DEFAULT_SESSION,
        idempotency_key: str | None = None,
    ) -> Admission:
        """Admit a direct prompt. The same idempotency key and message return the first
        submission; the same key with another message raises `Conflict`."""
        instance = self.instance(agent, instance_id)
        key = f"prompt:{validate_key(idempotency_key, field='idempotency_key')}" if idempotency_key else None
        return await self._admit(instance, self._draft(instance, "direct", session, {"message": message}, key))

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
        return await self._admit(instance, self._draft(instance, "dispatch", session, input, f"dispatch:{dispatch_id}"))

    # --- reads ---------------------------------------------------------------------

    async def submission(self, agent: str, instance_id: str, submission_id: str) -> SubmissionRecord:
        instance = self.instance(agent, instance_id)
        sequence_of(submission_id)  # refuses malformed ids before any read
        record = await self.store.get(instance, submission_id)
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
        return await self.store.history(instance, session, limit=limit, cursor=cursor)

    async def abort(self, agent: str, instance_id: str, *, queued: bool = False) -> list[SubmissionRecord]:
        """Abort the running submission (and, with `queued`, every queued one)."""
        instance = self.instance(agent, instance_id)
        aborted: list[SubmissionRecord] = []
        after = -1
        while True:
            page = await self.store.list_submissions(instance, after=after, limit=100)
            if not page:
                return aborted
            for record in page:
                if record.settled or (record.status is Status.queued and not queued and record.attempts == 0):
                    continue
                try:
                    flagged = await self.store.request_abort(instance, record.id, now=self.clock())
                except AlreadySettled:
                    continue
                aborted.append(flagged)
                if flagged.settled:
                    await self._announce(ev.SubmissionSettled, flagged, outcome=Outcome.aborted)
            after = page[-1].sequence

    # --- the worker ----------------------------------------------------------------

    async def drain(self, instance: InstanceRef, *, deadline: float) -> DrainResult:
        """Run the instance's head submissions in order until none is left or
        `deadline` (clock time) comes; the caller sends a continuation on `more`."""
        async with self.stream(instance) as stream:
            result = await self._drain(instance, deadline, stream)
            if result.state == "idle" and result.settled:
                await stream.emit(ev.Idle(**stream.fields()))
        return result

    async def _drain(self, instance: InstanceRef, deadline: float, stream: EventStream) -> DrainResult:
        settled: list[Settlement] = []
        while self.clock() < deadline:
            claim = await self.store.claim_head(
                instance, attempt_id=new_attempt_id(), now=self.clock(), lease_seconds=self.lease_seconds
            )
            if claim.state in ("idle", "waiting"):
                return DrainResult("idle", tuple(settled))
            if claim.state == "busy":
                return DrainResult("busy", tuple(settled))
            assert claim.record is not None
            if claim.state == "backoff":
                wait = (claim.record.not_before or 0) - self.clock()
                if self.clock() + wait >= deadline:
                    return DrainResult("more", tuple(settled))
                await self.sleep(max(0.0, wait))
                continue
            record = claim.record
            settlement = await self._run(record, deadline, stream)
            if settlement is not None:
                settled.append(settlement)
                if record.sequence + 1 >= claim.next_sequence:
                    # Anything admitted after our read has its own wake-up queued.
                    return DrainResult("idle", tuple(settled))
            # The settled run's last events go out now; when the drain ends they go
            # out with `idle` instead, in one write.
            await stream.flush()
        return DrainResult("more", tuple(settled))

    def _unrunnable(self, record: SubmissionRecord) -> tuple[Outcome, dict[str, Any]] | None:
        """Why a just-claimed submission must end without running: abort, time, budget."""
        if record.abort_requested:
            return Outcome.aborted, {"type": "aborted", "message": "aborted on request"}
        if record.deadline is not None and self.clock() >= record.deadline:
            return Outcome.failed, {"type": "timeout", "message": f"submission exceeded its timeout of {record.timeout_s:g}s"}
        if record.attempts > record.max_attempts:
            return Outcome.failed, {
                "type": "retries_exhausted",
                "message": f"gave up after {record.max_attempts} attempts",
                "last_error": record.error,
            }
        return None

    async def _run(self, record: SubmissionRecord, deadline: float, stream: EventStream) -> Settlement | None:
        """One attempt; what it settled, if it settled the submission."""
        fence = Fence.of(record)
        ending = self._unrunnable(record)
        if ending is not None:
            outcome, error = ending
            try:
                await self.store.settle(record.ref, record.id, outcome, now=self.clock(), fence=fence, error=error)
            except (StaleAttempt, AlreadySettled):
                return None
            await self._ended(stream, record, outcome, error)
            return Settlement.of(record, outcome, error, now=self.clock())
        try:
            config = self.config(record.ref)
            attempt = Attempt(
                store=self.store,
                config=config,
                model=self.model(config),
                record=record,
                history=await self._history(record),
                clock=self.clock,
                lease_seconds=self.lease_seconds,
                invocation_deadline=deadline,
                checkpoint=self.checkpoint,
                stream=stream,
                abort_poll_seconds=self.abort_poll_seconds,
            )
            if not await attempt.run():
                self._histories.pop((record.instance, record.session), None)
                return None
            self._settled_history(attempt)
            assert attempt.ending is not None
            return Settlement.of(
                record, attempt.ending.outcome, attempt.ending.error, now=self.clock(), usage=attempt.journal.usage
            )
        except (StaleAttempt, AlreadySettled):
            log.warning("attempt lost its lease", extra={"submission_id": record.id})
            self._histories.pop((record.instance, record.session), None)
            return None
        except Exception as exc:
            self._histories.pop((record.instance, record.session), None)
            return await self._fail_attempt(fence, record, exc, stream)

    async def _ended(
        self, stream: EventStream, record: SubmissionRecord, outcome: Outcome, error: dict[str, Any] | None
    ) -> None:
        fields = stream.fields(record.session, record.id)
        await stream.emit(ev.AgentEnd(**fields, outcome=outcome, error=error))
        await stream.emit(ev.SubmissionSettled(**fields, outcome=outcome))

    async def _fail_attempt(
        self, fence: Fence, record: SubmissionRecord, exc: Exception, stream: EventStream
    ) -> Settlement | None:
        error = {"type": getattr(exc, "type", type(exc).__name__), "message": str(exc)[:2000]}
        log.warning("attempt failed", extra={"submission_id": record.id, "attempt": record.attempts, "error": error})
        now = self.clock()
        retrying = record.attempts < record.max_attempts
        with contextlib.suppress(Exception):
            await stream.emit(ev.ErrorEvent(**stream.fields(record.session, record.id), error=error, retrying=retrying))
        try:
            if not retrying:
                error = {"type": "retries_exhausted", "message": f"gave up after {record.attempts} attempts", "last_error": error}
                await self.store.settle(record.ref, record.id, Outcome.failed, now=now, fence=fence, error=error)
                await self._ended(stream, record, Outcome.failed, error)
                return Settlement.of(record, Outcome.failed, error, now=now)
            backoff = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (record.attempts - 1))
            not_before = now + backoff * random.uniform(0.5, 1.0)
            await self.store.release(fence, now=now, resume=False, not_before=not_before, error=error)
        except (StaleAttempt, AlreadySettled):
            pass
        return None

    async def _history(self, record: SubmissionRecord) -> list[Message]:
        """The session's history for the model.

        Kept per worker process: history is append-only, so what was read stays true.
        An entry knows it holds every message of submissions up to `through`; when
        the claimed submission directly follows and has written nothing yet, no read
        is needed at all; otherwise the entry is topped up from its last cursor.
        """
        key = (record.instance, record.session)
        cached = self._histories.pop(key, None)
        if cached and cached.through == record.sequence - 1 and record.journal.written == 0:
            self._histories[key] = cached
            return list(cached.messages)
        messages, cursor = (list(cached.messages), cached.cursor) if cached else ([], None)
        while True:
            page = await self.store.history(record.ref, record.session, limit=1000, cursor=cursor)
            messages.extend(m.message for m in page.messages)
            if page.messages:
                cursor = page.messages[-1].cursor
            if page.next_cursor is None:
                break
        self._remember(key, _CachedHistory(messages, cursor, record.sequence - 1))
        return list(messages)

    def _remember(self, key: tuple[str, str], entry: _CachedHistory) -> None:
        self._histories.pop(key, None)
        self._histories[key] = entry
        while len(self._histories) > HISTORY_CACHE_SESSIONS:
            self._histories.pop(next(iter(self._histories)))

    def _settled_history(self, attempt: Attempt) -> None:
        """After a settle the attempt's history is exactly what the store holds."""
        record, written = attempt.record, attempt.journal.written
        key = (record.instance, record.session)
        previous = self._histories.get(key)
        cursor = StoredMessage(record.sequence, written - 1, attempt.history[-1]).cursor if written else (
            previous.cursor if previous else None
        )
        self._remember(key, _CachedHistory(list(attempt.history), cursor, record.sequence))


@dataclass
class _CachedHistory:
    messages: list[Message]
    cursor: str | None
    through: int


__all__ = ["DEFAULT_SESSION", "DrainResult", "Runtime", "Settlement"]
