"""In-memory adapters: the reference semantics of every port.

One `MemoryTable` (dicts and one lock) holds what the DynamoDB table holds; each port is
a small class over it, as each DynamoDB port is over the table. `memory_stores()` gives
them together. The AWS adapters must behave exactly like these; the contract suite
(`agent_runtime.testing.contract`) checks both. Records are copied in and out so callers
can never mutate stored state.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from agent_runtime.children import ChildLink
from agent_runtime.errors import (
    AbortRequested,
    AlreadySettled,
    Conflict,
    StaleAttempt,
)
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import (
    Admission,
    Claim,
    Draft,
    Fence,
    Journal,
    Outcome,
    Receipt,
    SessionState,
    Status,
    SubmissionRecord,
    sequence_of,
    submission_id_for,
)
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.ports import (
    KV_LIST_MAX,
    ChildEntry,
    HistoryPage,
    InstancePage,
    InstanceStatus,
    InstanceSummary,
    StoredMessage,
    Stores,
    WakeUps,
    instances_cursor,
    parse_cursor,
    parse_instances_cursor,
)


@dataclass
class _Instance:
    next_seq: int = 0
    head: int = 0
    ledger: dict[int, SubmissionRecord] = field(default_factory=dict)
    receipts: dict[str, Receipt] = field(default_factory=dict)
    history: dict[str, dict[tuple[int, int], Message]] = field(default_factory=lambda: defaultdict(dict))
    tool_results: dict[tuple[int, int, str], ToolResultPart] = field(default_factory=dict)
    kv: dict[str, Any] = field(default_factory=dict)
    children: dict[str, ChildEntry] = field(default_factory=dict)
    sessions: dict[str, SessionState] = field(default_factory=dict)
    #: Admission times of the unsettled submissions, by sequence (the DynamoDB adapter's
    #: ``pending_since`` on SUB items, listed by its index).
    pending: dict[int, float] = field(default_factory=dict)
    #: The time of the last admission (``active_at`` on META), for listings.
    last_activity: float | None = None


M = TypeVar("M", bound=BaseModel)


def _copy(model: M) -> M:
    """A copy that shares nothing with the stored one, as a read from a real store would
    be: pydantic's dump and validate, several times faster than ``copy.deepcopy``."""
    return type(model).model_validate(model.model_dump(round_trip=True))


class MemoryTable:
    """The state every memory port shares. Thread-safe: one lock around every operation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.instances: dict[str, _Instance] = defaultdict(_Instance)

    def of(self, instance: InstanceRef) -> _Instance:
        return self.instances[instance.key]

    def find(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None:
        record = self.of(instance).ledger.get(sequence_of(submission_id))
        return record if record is not None and record.id == submission_id else None

    def fenced(self, fence: Fence, *, honour_abort: bool = True) -> SubmissionRecord:
        record = self.of(fence.instance).ledger.get(fence.sequence)
        if record is None or record.attempt_id != fence.attempt_id or record.status is not Status.running:
            raise StaleAttempt(fence.submission_id, fence.attempt_id)
        if honour_abort and record.abort_requested:
            raise AbortRequested(fence.submission_id)
        return record

    def append(self, instance: InstanceRef, record: SubmissionRecord, journal: Journal, messages: list[Message]) -> None:
        session = self.of(instance).history[record.session]
        start = journal.written - len(messages)
        for offset, message in enumerate(messages):
            session.setdefault((record.sequence, start + offset), message)


class _Port:
    def __init__(self, table: MemoryTable) -> None:
        self.table = table


class MemoryLedger(_Port):
    """`Ledger` over a `MemoryTable`."""

    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        with self.table.lock:
            state = self.table.of(instance)
            if draft.receipt_key is not None:
                known = state.receipts.get(draft.receipt_key)
                if known is not None:
                    if known.hash != draft.receipt_hash:
                        raise Conflict(
                            f"{draft.receipt_key.split(':', 1)[0]} key was used with other input",
                            details={"key": draft.receipt_key.split(":", 1)[1], "submission_id": known.submission_id},
                        )
                    record = next(r for r in state.ledger.values() if r.id == known.submission_id)
                    return Admission(_copy(record), replayed=True)
            seq = state.next_seq
            record = SubmissionRecord(
                id=submission_id_for(seq),
                instance=instance.key,
                sequence=seq,
                kind=draft.kind,
                session=draft.session,
                payload=draft.payload,
                accepted_at=now,
                max_attempts=draft.max_attempts,
                timeout_s=draft.timeout_s,
                receipt_key=draft.receipt_key,
            )
            state.ledger[seq] = record
            state.next_seq = seq + 1
            state.pending[seq] = now
            state.last_activity = now
            if draft.receipt_key is not None:
                state.receipts[draft.receipt_key] = Receipt(
                    key=draft.receipt_key, hash=draft.receipt_hash or "", submission_id=record.id, accepted_at=now
                )
            return Admission(_copy(record), replayed=False)

    async def get(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None:
        with self.table.lock:
            record = self.table.find(instance, submission_id)
            return _copy(record) if record else None

    async def list_submissions(
        self, instance: InstanceRef, *, after: int = -1, limit: int = 100
    ) -> list[SubmissionRecord]:
        with self.table.lock:
            state = self.table.of(instance)
            window = range(max(after + 1, 0), min(state.next_seq, max(after + 1, 0) + limit))
            return [_copy(state.ledger[s]) for s in window if s in state.ledger]

    async def unsettled(self, instance: InstanceRef, *, limit: int = 100) -> list[SubmissionRecord]:
        with self.table.lock:
            state = self.table.of(instance)
            found = (state.ledger[s] for s in range(state.head, state.next_seq) if not state.ledger[s].settled)
            return [_copy(r) for r in itertools.islice(found, limit)]

    async def request_abort(self, instance: InstanceRef, submission_id: str, *, now: float) -> SubmissionRecord:
        with self.table.lock:
            record = self.table.find(instance, submission_id)
            if record is None or record.settled:
                raise AlreadySettled(submission_id)
            record.abort_requested = True
            return _copy(record)

    async def abort_requested(self, instance: InstanceRef, submission_id: str) -> bool:
        record = await self.get(instance, submission_id)
        return record is not None and record.abort_requested

    async def instances(self, agent: str, *, now: float, limit: int = 50, cursor: str | None = None) -> InstancePage:
        start = parse_instances_cursor(cursor) if cursor is not None else None
        found: list[tuple[float, str, InstanceSummary]] = []
        with self.table.lock:
            for key, state in self.table.instances.items():
                ref = InstanceRef.parse(key)
                if ref.agent == agent and state.last_activity is not None:
                    found.append((state.last_activity, ref.id, _summary(ref, state, state.last_activity, now)))
        # Newest first; after the cursor means strictly below it in that order.
        listed = [summary for activity, id_, summary in sorted(found, reverse=True) if start is None or (activity, id_) < start]
        page = listed[:limit]
        return InstancePage(page, instances_cursor(page[-1]) if len(listed) > limit else None)

    async def pending_instances(self, *, idle_since: float, limit: int) -> list[InstanceRef]:
        with self.table.lock:
            pending = sorted(
                (min(state.pending.values()), key)
                for key, state in self.table.instances.items()
                if state.pending and min(state.pending.values()) <= idle_since
            )
        return [InstanceRef.parse(key) for _, key in pending[:limit]]


def _summary(ref: InstanceRef, state: _Instance, last_activity: float, now: float) -> InstanceSummary:
    head = state.ledger.get(state.head)
    status: InstanceStatus = "idle"
    if state.head < state.next_seq and head is not None:
        if head.status is Status.running and (head.lease_until or 0) >= now:
            status = "running"
        elif head.status is Status.waiting:
            status = "waiting"
        elif not head.settled or state.head + 1 < state.next_seq:
            status = "queued"
    return InstanceSummary(ref, last_activity, status, submissions=state.next_seq, settled=state.head)


class MemoryAttempts(_Port):
    """`Attempts` over a `MemoryTable`."""

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        with self.table.lock:
            state = self.table.of(instance)
            while state.head < state.next_seq and state.ledger[state.head].settled:
                state.head += 1
            if state.head >= state.next_seq:
                return Claim("idle", None, state.next_seq)
            record = state.ledger[state.head]
            if record.status is Status.waiting:
                return Claim("waiting", _copy(record), state.next_seq)
            # A lease ending exactly now still holds (DynamoDB: `lease_until < :now`).
            if record.status is Status.running and (record.lease_until or 0) >= now:
                return Claim("busy", _copy(record), state.next_seq)
            if record.status is Status.queued and record.not_before is not None and record.not_before > now:
                return Claim("backoff", _copy(record), state.next_seq)
            record.claims += 1
            record.attempt_id = attempt_id
            record.status = Status.running
            record.lease_until = now + lease_seconds
            record.not_before = None
            if record.started_at is None:
                record.started_at = now
            return Claim("claimed", _copy(record), state.next_seq)

    async def record_input(self, fence: Fence, message: Message) -> None:
        with self.table.lock:
            self.table.of(fence.instance).history[fence.session].setdefault((fence.sequence, 0), message)

    async def checkpoint(
        self,
        fence: Fence,
        journal: Journal,
        *,
        now: float,
        lease_seconds: float,
        messages: list[Message] | None = None,
    ) -> None:
        with self.table.lock:
            record = self.table.fenced(fence)
            self.table.append(fence.instance, record, journal, messages or [])
            record.journal = _copy(journal)
            record.lease_until = now + lease_seconds

    async def release(
        self,
        fence: Fence,
        *,
        now: float,
        resume: bool,
        not_before: float | None,
        error: dict[str, Any] | None,
        journal: Journal | None = None,
    ) -> None:
        with self.table.lock:
            record = self.table.fenced(fence, honour_abort=False)
            if journal is not None:
                record.journal = _copy(journal)
            record.status = Status.queued
            record.attempt_id = None
            record.lease_until = None
            record.yields += 1 if resume else 0
            record.not_before = not_before
            if error is not None:
                record.error = error

    async def suspend(self, fence: Fence, journal: Journal, *, reason: str, now: float) -> None:
        with self.table.lock:
            record = self.table.fenced(fence)
            record.journal = _copy(journal)
            record.status = Status.waiting
            record.waiting_on = reason
            record.attempt_id = None
            record.lease_until = None
            record.yields += 1

    async def resume(
        self, instance: InstanceRef, submission_id: str, *, reason: str, now: float, result: ToolResultPart | None = None
    ) -> bool:
        with self.table.lock:
            record = self.table.find(instance, submission_id)
            if record is None or record.status is not Status.waiting or record.waiting_on != reason:
                return False
            if result is not None:
                key = (record.sequence, record.journal.turn, result.call_id)
                self.table.of(instance).tool_results.setdefault(key, result)
            record.status = Status.queued
            record.waiting_on = None
            return True

    async def settle(
        self,
        instance: InstanceRef,
        submission_id: str,
        outcome: Outcome,
        *,
        now: float,
        fence: Fence | None = None,
        result: dict[str, Any] | None = None,
        error: dict[str, Any] | None = None,
        journal: Journal | None = None,
        messages: list[Message] | None = None,
        honour_abort: bool = False,
    ) -> None:
        with self.table.lock:
            state = self.table.of(instance)
            record = self.table.find(instance, submission_id)
            if record is None or record.settled:
                raise AlreadySettled(submission_id)
            if fence is not None:
                self.table.fenced(fence, honour_abort=honour_abort)
                state.head = max(state.head, record.sequence + 1)
            elif record.status is Status.running and (record.lease_until or 0) >= now:
                raise StaleAttempt(submission_id, record.attempt_id or "")
            if journal is not None:
                self.table.append(instance, record, journal, messages or [])
                record.journal = _copy(journal)
            state.pending.pop(record.sequence, None)
            record.status = Status.settled
            record.outcome = outcome
            record.result = result
            record.error = error
            record.settled_at = now
            record.lease_until = None
            record.waiting_on = None


class MemoryToolResults(_Port):
    """`ToolResults` over a `MemoryTable`."""

    async def record(self, fence: Fence, turn: int, result: ToolResultPart, *, now: float) -> None:
        with self.table.lock:
            self.table.fenced(fence)
            self.table.of(fence.instance).tool_results.setdefault((fence.sequence, turn, result.call_id), result)

    async def of_turn(self, instance: InstanceRef, sequence: int, turn: int) -> dict[str, ToolResultPart]:
        with self.table.lock:
            return {
                call_id: part
                for (seq, t, call_id), part in self.table.of(instance).tool_results.items()
                if seq == sequence and t == turn
            }


class MemoryHistory(_Port):
    """`History` over a `MemoryTable`."""

    async def page(
        self, instance: InstanceRef, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage:
        with self.table.lock:
            items = sorted(self.table.of(instance).history.get(session, {}).items())
        stored = [StoredMessage(seq, idx, msg) for (seq, idx), msg in items]
        if cursor is not None:
            parse_cursor(cursor)
            stored = [m for m in stored if m.cursor > cursor]
        page = stored[:limit]
        more = len(stored) > limit
        return HistoryPage(page, page[-1].cursor if more and page else None)


class MemoryKV(_Port):
    """`KV` over a `MemoryTable`."""

    async def get(self, instance: InstanceRef, key: str) -> Any:
        with self.table.lock:
            return self.table.of(instance).kv.get(key)

    async def put(self, instance: InstanceRef, key: str, value: Any) -> None:
        with self.table.lock:
            self.table.of(instance).kv[key] = value

    async def delete(self, instance: InstanceRef, key: str) -> None:
        with self.table.lock:
            self.table.of(instance).kv.pop(key, None)

    async def list(self, instance: InstanceRef, prefix: str = "", *, limit: int = KV_LIST_MAX) -> dict[str, Any]:
        with self.table.lock:
            kv = self.table.of(instance).kv
            return dict(itertools.islice(((k, kv[k]) for k in sorted(kv) if k.startswith(prefix)), limit))


class MemorySessions(_Port):
    """`Sessions` over a `MemoryTable`."""

    async def get(self, instance: InstanceRef, session: str) -> SessionState:
        with self.table.lock:
            return _copy(self.table.of(instance).sessions.get(session, SessionState()))

    async def put(self, fence: Fence, state: SessionState, *, now: float) -> None:
        with self.table.lock:
            self.table.fenced(fence, honour_abort=False)
            self.table.of(fence.instance).sessions[fence.session] = _copy(state)


class MemoryChildIndex(_Port):
    """`ChildIndex` over a `MemoryTable`."""

    async def add(self, parent: InstanceRef, entry: ChildEntry) -> None:
        with self.table.lock:
            self.table.of(parent).children.setdefault(entry.ref, entry)

    async def get(self, parent: InstanceRef, ref: str) -> ChildEntry | None:
        with self.table.lock:
            return self.table.of(parent).children.get(ref)

    async def note_submission(self, parent: InstanceRef, ref: str, submission_id: str) -> None:
        with self.table.lock:
            kids = self.table.of(parent).children
            if ref in kids:
                kids[ref] = dataclasses.replace(kids[ref], last_submission_id=submission_id)

    async def page(self, parent: InstanceRef, *, after: str | None, limit: int) -> list[ChildEntry]:
        with self.table.lock:
            kids = self.table.of(parent).children
            return [kids[ref] for ref in sorted(kids) if after is None or ref > after][:limit]


def memory_stores(table: MemoryTable | None = None) -> Stores:
    """Every instance-store port over one memory table."""
    from agent_runtime.adapters.memory_effects import MemoryEffects, MemoryTimers
    from agent_runtime.adapters.memory_files import MemoryFiles
    from agent_runtime.adapters.memory_variables import MemoryVariables

    table = table or MemoryTable()
    return Stores(
        ledger=MemoryLedger(table),
        attempts=MemoryAttempts(table),
        tool_results=MemoryToolResults(table),
        history=MemoryHistory(table),
        kv=MemoryKV(table),
        child_index=MemoryChildIndex(table),
        files=MemoryFiles(table),
        sessions=MemorySessions(table),
        variables=MemoryVariables(),
        effects=MemoryEffects(),
        timers=MemoryTimers(),
    )


class MemoryWakeUps:
    """Wake-ups in an asyncio queue, deduplicated by id like SQS FIFO (forever, not 5 min)."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[InstanceRef, str]] = asyncio.Queue()
        self.sent: list[tuple[InstanceRef, str, str]] = []
        self._seen: set[str] = set()

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None:
        if dedupe_id in self._seen:
            return
        self._seen.add(dedupe_id)
        self.sent.append((instance, reason, dedupe_id))
        self.queue.put_nowait((instance, reason))


class MemoryChildren:
    """`Children` in process: a child starts on a wake-up, its report wakes the parent.
    There is no driver to time a child out (its own timeout bounds it), so `outcome` has
    nothing of its own to say: the parent reads the child's settled record."""

    def __init__(self, wakeups: WakeUps) -> None:
        self.wakeups = wakeups
        #: How many heartbeats running children sent (nothing times a child out in process).
        self.heartbeats = 0

    async def start(self, link: ChildLink) -> None:
        await self.wakeups.send(link.child, reason="child", dedupe_id=f"child-{link.child_submission_id}")

    async def accept(self, child: InstanceRef, submission_id: str, token: str) -> None:
        return None

    async def heartbeat(self, link: ChildLink) -> None:
        self.heartbeats += 1

    async def report(self, link: ChildLink, child: SubmissionRecord) -> None:
        dedupe = f"child-done-{link.parent_submission_id}-{link.call_id}"
        await self.wakeups.send(link.parent, reason="child_done", dedupe_id=dedupe)

    async def outcome(self, link: ChildLink) -> ToolResultPart | None:
        return None


class MemoryBlobs:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put(self, key: str, data: bytes) -> None:
        self.objects[key] = data

    async def get(self, key: str) -> bytes:
        return self.objects[key]
