"""The worker: drains an instance's head submissions in order, decides retries, and
says when to wake the instance again.

    drain(instance) -> claim head -> [must it end unrun?  abort | timeout | budget spent
                                      | broken definition  -> settle]
                                  -> Attempt.run -> Finish (settled) | Yield | Suspend
                                  -> attempt failed -> retry with backoff, or settle failed
                    -> head waiting on a child that has an outcome -> resume, claim again
                    -> idle | more (send a continuation) | busy (a live attempt holds it)

A child's attempt tells its driver it is alive every `HEARTBEAT_SECONDS`; the token the
driver's wake-up carried is kept by `accept_child` before the drain.

Endings are written by `agent_runtime.loop.settle`, the one place a submission settles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime import events as ev
from agent_runtime import tracing
from agent_runtime.children import ChildLink, depth_of, link_from_reason, link_of, outcome_of
from agent_runtime.effects import effect_handler
from agent_runtime.errors import (
    AgentDefinitionError,
    AgentRuntimeError,
    AlreadySettled,
    StaleAttempt,
)
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Budget, Fence, SubmissionRecord, new_attempt_id
from agent_runtime.loop.attempt import Attempt
from agent_runtime.loop.dispatch import DispatchAttempt
from agent_runtime.loop.settle import Settlement, settle
from agent_runtime.loop.steps import Finish
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.models.base import Model, resolve_model
from agent_runtime.parts import Parts
from agent_runtime.ports import Children, StoredMessage
from agent_runtime.streaming import EventStream

log = logging.getLogger("agent_runtime")

#: Backoff after a failed attempt: base * 2**(attempt-1), capped, with jitter.
RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 30.0
#: The longest `retry-after` a failed attempt waits for (a provider asking more is capped).
RETRY_AFTER_CAP_SECONDS = 300.0
#: How often a running child tells its driver it is alive (the state machine allows 300 s).
HEARTBEAT_SECONDS = 60.0
#: Sessions whose history a worker keeps between submissions (least recently used go).
HISTORY_CACHE_SESSIONS = 64


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


class Worker(Parts):
    def __init__(self, **parts: Any) -> None:
        super().__init__(**parts)
        self._models: dict[str, Model] = {}
        self._histories: dict[tuple[str, str], _CachedHistory] = {}

    async def drain(self, instance: InstanceRef, *, deadline: float) -> DrainResult:
        """Run the instance's head submissions in order until none is left or
        `deadline` (clock time) comes; the caller sends a continuation on `more`."""
        async with self.stream(instance) as stream:
            result = await self._drain(instance, deadline, stream)
            if result.state == "idle" and result.settled:
                await stream.emit(ev.Idle(**stream.fields()))
        return result

    async def continue_later(self, instance: InstanceRef, dedupe_id: str) -> None:
        """The continuation wake-up after a drain that returned `more`."""
        await self.wakeups.send(instance, reason="continue", dedupe_id=dedupe_id)

    async def accept_child(self, child: InstanceRef, submission_id: str, token: str) -> None:
        """A child's wake-up carried its driver's callback token: keep it for the report."""
        if self.children is not None:
            await self.children.accept(child, submission_id, token)

    async def _tell_parent_again(self, instance: InstanceRef) -> None:
        """A child instance woken with nothing to run: its worker may have died between
        the child's settle and telling the parent (the wake-up came back because that
        invocation never finished). Tell it again; both ways of telling are idempotent."""
        if self.child_runs is None or depth_of(instance) == 0:
            return
        first = await self.stores.ledger.list_submissions(instance, limit=1)
        link = link_of(first[0]) if first else None
        if link is not None and first[0].settled:
            await self.child_runs.settled(link, first[0], now=self.clock(), session=link.parent_session)

    async def _resolve_wait(self, record: SubmissionRecord, stream: EventStream) -> bool:
        """Resume a submission waiting on a child that has an outcome: the child's settled
        record, else what its driver recorded when the child never answered (a missed
        heartbeat, a timeout). True when it was resumed (by this call or another), so the
        head may be claimed again."""
        link = link_from_reason(record)
        if link is None or record.waiting_on is None:
            return False
        child = await self.stores.ledger.get(link.child, link.child_submission_id)
        if child is not None and child.settled:
            part: ToolResultPart | None = outcome_of(link, child)
        else:
            part = await self.children.outcome(link) if self.children is not None else None
        if part is None:
            return False
        resumed = await self.stores.attempts.resume(
            record.ref, record.id, reason=record.waiting_on, now=self.clock(), result=part
        )
        if resumed:
            content, truncated = ev.clip(part.content)
            await stream.emit(
                ev.Task(
                    **stream.fields(record.session, record.id),
                    call_id=link.call_id,
                    child=link.child.key,
                    child_submission_id=link.child_submission_id,
                    status="error" if part.is_error else "ok",
                    result=None if part.is_error else content,
                    error=content if part.is_error else None,
                    truncated=truncated,
                ),
                flush=True,
            )
        return True

    async def _drain(self, instance: InstanceRef, deadline: float, stream: EventStream) -> DrainResult:
        settled: list[Settlement] = []
        while self.clock() < deadline:
            claim = await self.stores.attempts.claim_head(
                instance, attempt_id=new_attempt_id(), now=self.clock(), lease_seconds=self.lease_seconds
            )
            if claim.state == "waiting" and claim.record is not None and await self._resolve_wait(claim.record, stream):
                continue  # resumed: claim it again
            if claim.state == "idle" and not settled:
                await self._tell_parent_again(instance)
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

    # --- one claimed submission ----------------------------------------------------

    async def _run(self, record: SubmissionRecord, deadline: float, stream: EventStream) -> Settlement | None:
        """One attempt; what it settled, if it settled the submission."""
        fence = Fence.of(record)
        try:
            config = self.config_for(record)
        except AgentDefinitionError as exc:
            log.error("agent definition error", extra={"agent": exc.agent, "field": exc.field, "submission_id": record.id})
            finish = Finish.failed(exc.type, exc.message, agent=exc.agent, field=exc.field)
            return await self._end(record, fence, finish, stream)
        budget = Budget.of(record, retry=config.durability.retry, timeout=config.durability.timeout)
        ending = self._unrunnable(record, budget)
        if ending is not None:
            return await self._end(record, fence, ending, stream)
        try:
            # Application code runs effects, and dispatches when the agent has `on_dispatch`;
            # everything else is the model's.
            handler = (
                effect_handler(config.effects, record.payload)
                if record.kind == "effect"
                else self.registry.get(record.ref.agent).on_dispatch if record.kind == "dispatch" else None
            )
            attempt: Attempt | DispatchAttempt
            if handler is not None:
                attempt = DispatchAttempt(
                    handler=handler,
                    stores=self.stores,
                    config=config,
                    record=record,
                    budget=budget,
                    history=await self._history(record),
                    clock=self.clock,
                    lease_seconds=self.lease_seconds,
                    invocation_deadline=deadline,
                    stream=stream,
                    child_runs=self.child_runs,
                    abort_poll_seconds=self.abort_poll_seconds,
                    admit=self.admit,
                )
            else:
                attempt = Attempt(
                    stores=self.stores,
                    config=config,
                    context=self.context(record.ref),
                    model=self._model(config.model),
                    record=record,
                    budget=budget,
                    history=await self._history(record),
                    clock=self.clock,
                    lease_seconds=self.lease_seconds,
                    invocation_deadline=deadline,
                    checkpoint=self.checkpoint,
                    stream=stream,
                    abort_poll_seconds=self.abort_poll_seconds,
                    child_runs=self.child_runs,
                    models=self._model,
                )
            async with self._heartbeats(record):
                with tracing.attempt(record):
                    await attempt.run()
        except (StaleAttempt, AlreadySettled):
            log.warning("attempt lost its lease", extra={"submission_id": record.id})
            self._forget_history(record)
            return None
        except Exception as exc:
            self._forget_history(record)
            return await self._failed_attempt(fence, record, budget, exc, stream)
        if attempt.settlement is None:  # handed back or waiting: its history may go on elsewhere
            self._forget_history(record)
            return None
        self._settled_history(attempt)
        return attempt.settlement

    def _unrunnable(self, record: SubmissionRecord, budget: Budget) -> Finish | None:
        """Why a just-claimed submission must end without running: abort, time, budget."""
        if record.abort_requested:
            return Finish.aborted()
        deadline = budget.deadline(record)
        if deadline is not None and self.clock() >= deadline:
            return Finish.failed("timeout", f"submission exceeded its timeout of {budget.timeout_s:g}s")
        if record.attempts > budget.max_attempts:
            return Finish.failed(
                "retries_exhausted", f"gave up after {budget.max_attempts} attempts", last_error=record.error
            )
        return None

    async def _end(self, record: SubmissionRecord, fence: Fence, finish: Finish, stream: EventStream) -> Settlement | None:
        try:
            return await settle(
                self.stores.attempts, record, finish, now=self.clock(), emit=stream.emit, fence=fence, child_runs=self.child_runs
            )
        except (StaleAttempt, AlreadySettled):
            return None

    async def _failed_attempt(
        self, fence: Fence, record: SubmissionRecord, budget: Budget, exc: Exception, stream: EventStream
    ) -> Settlement | None:
        """The retry decision: back off and try again within the budget, else fail."""
        error = {"type": getattr(exc, "type", type(exc).__name__), "message": str(exc)[:2000]}
        log.warning("attempt failed", extra={"submission_id": record.id, "attempt": record.attempts, "error": error})
        now = self.clock()
        # The application developer's mistake (say, `session.task` naming no subagent):
        # another attempt would make it again.
        permanent = isinstance(exc, AgentRuntimeError) and exc.permanent
        retrying = record.attempts < budget.max_attempts and not permanent
        with contextlib.suppress(Exception):
            await stream.emit(ev.ErrorEvent(**stream.fields(record.session, record.id), error=error, retrying=retrying))
        if permanent:
            return await self._end(record, fence, Finish.failed(error["type"], error["message"]), stream)
        if not retrying:
            finish = Finish.failed("retries_exhausted", f"gave up after {record.attempts} attempts", last_error=error)
            return await self._end(record, fence, finish, stream)
        backoff = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2 ** (record.attempts - 1)) * random.uniform(0.5, 1.0)
        # A provider's `retry-after` is a floor: waiting less would meet the same refusal.
        waited = getattr(exc, "retry_after", None)
        not_before = now + max(backoff, min(float(waited), RETRY_AFTER_CAP_SECONDS) if waited else 0.0)
        with contextlib.suppress(StaleAttempt, AlreadySettled):
            await self.stores.attempts.release(fence, now=now, resume=False, not_before=not_before, error=error)
        return None

    def _heartbeats(self, record: SubmissionRecord) -> contextlib.AbstractAsyncContextManager[None]:
        """While a child's attempt runs, tell its driver every `HEARTBEAT_SECONDS`."""
        link = link_of(record)
        if link is None or not link.blocking or self.children is None:
            return contextlib.nullcontext()  # most attempts: nothing to tell
        return self._beating(link, self.children)

    @contextlib.asynccontextmanager
    async def _beating(self, link: ChildLink, children: Children) -> AsyncIterator[None]:
        async def beat() -> None:
            while True:  # a child done within the interval costs no heartbeat at all
                await asyncio.sleep(HEARTBEAT_SECONDS)
                try:
                    await children.heartbeat(link)
                except Exception:  # the driver's heartbeat timeout is the backstop
                    log.warning("child heartbeat failed", extra={"child": link.child.key}, exc_info=True)

        task = asyncio.ensure_future(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _model(self, model: str | Model) -> Model:
        if isinstance(model, Model):
            return model
        if model not in self._models:
            self._models[model] = resolve_model(model)
        return self._models[model]

    # --- the history cache ---------------------------------------------------------

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
            page = await self.stores.history.page(record.ref, record.session, limit=1000, cursor=cursor)
            messages.extend(m.message for m in page.messages)
            if page.messages:
                cursor = page.messages[-1].cursor
            if page.next_cursor is None:
                break
        self._remember(key, _CachedHistory(messages, cursor, record.sequence - 1))
        return list(messages)

    def _forget_history(self, record: SubmissionRecord) -> None:
        self._histories.pop((record.instance, record.session), None)

    def _remember(self, key: tuple[str, str], entry: _CachedHistory) -> None:
        self._histories.pop(key, None)
        self._histories[key] = entry
        while len(self._histories) > HISTORY_CACHE_SESSIONS:
            self._histories.pop(next(iter(self._histories)))

    def _settled_history(self, attempt: Attempt | DispatchAttempt) -> None:
        """After a settle the attempt's history is exactly what the store holds. The cache
        keeps that list itself: the attempt is over, and `_history` hands out copies."""
        record, written = attempt.record, attempt.journal.written
        key = (record.instance, record.session)
        previous = self._histories.get(key)
        cursor = StoredMessage(record.sequence, written - 1, attempt.history[-1]).cursor if written else (
            previous.cursor if previous else None
        )
        self._remember(key, _CachedHistory(attempt.history, cursor, record.sequence))


@dataclass
class _CachedHistory:
    messages: list[Message]
    cursor: str | None
    through: int


__all__ = ["DrainResult", "Worker"]
