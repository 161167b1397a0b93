"""The ports the core knows storage through, each small. Adapters: `adapters.memory`
(reference semantics) and `adapters.aws` (DynamoDB, SQS FIFO, S3). One contract suite
(`agent_runtime.testing.contract`) runs on both, and on any adapter a user writes.

    Ledger        admission and reads (the service)       Attempts     claims .. settle (the worker)
    ToolResults   per-call results of a turn              History      session messages, paged
    KV            the instance's key-value store          WakeUps      "instance X has work"
    Files         the instance's filesystem (files.py)    Variables    variables, secrets (variables.py)
    Sessions      each session's owner, side, context
    Children      blocking children's driver
    BlobStore     big attributes                          EventLog, Connections, Poster: events
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from agent_runtime.children import ChildLink
from agent_runtime.effects import EffectStore, Timers
from agent_runtime.errors import InvalidInput
from agent_runtime.events import Event
from agent_runtime.files import Files
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import (
    Admission,
    Claim,
    Draft,
    Fence,
    Journal,
    Outcome,
    SessionState,
    SubmissionRecord,
)
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.variables import Variables


@dataclass(frozen=True)
class StoredMessage:
    """A history message with its position: (submission sequence, index in it)."""

    sequence: int
    index: int
    message: Message

    @property
    def cursor(self) -> str:
        return f"{self.sequence:010d}.{self.index:06d}"


_CURSOR = re.compile(r"^\d{10}\.\d{6}$")


def parse_cursor(cursor: str) -> tuple[int, int]:
    """A history cursor as (sequence, index); refuses anything else as bad input."""
    if not isinstance(cursor, str) or not _CURSOR.match(cursor):
        raise InvalidInput("cursor must be a value returned as next_cursor", details={"field": "cursor"})
    seq, _, idx = cursor.partition(".")
    return int(seq), int(idx)


@dataclass(frozen=True)
class HistoryPage:
    messages: list[StoredMessage]
    next_cursor: str | None


InstanceStatus = Literal["idle", "queued", "running", "waiting"]


@dataclass(frozen=True)
class InstanceSummary:
    """An instance as its agent's listing shows it, read from what admission and settling
    keep on the instance (no pass over its submissions).

    `status` is the head's: ``idle`` when everything admitted is settled, ``running`` while
    an attempt holds a live lease on it, ``waiting`` on a child, ``queued`` otherwise.
    `settled` counts the submissions before the head (settled in order); one settled out
    of order (an aborted queued submission) is counted once the head passes it.
    """

    instance: InstanceRef
    last_activity: float
    status: InstanceStatus
    submissions: int
    settled: int


_INSTANCES_CURSOR = re.compile(r"^(\d{1,12}(?:\.\d{1,17})?)~([A-Za-z0-9._~-]{1,79})$")


def instances_cursor(summary: InstanceSummary) -> str:
    """Where the next page of a listing starts: after this instance (``<time>~<id>``)."""
    return f"{summary.last_activity!r}~{summary.instance.id}"


def parse_instances_cursor(cursor: str) -> tuple[float, str]:
    """An instances cursor as (last activity, instance id); refuses anything else."""
    match = _INSTANCES_CURSOR.match(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise InvalidInput("cursor must be a value returned as next_cursor", details={"field": "cursor"})
    return float(match.group(1)), match.group(2)


@dataclass(frozen=True)
class InstancePage:
    instances: list[InstanceSummary]
    next_cursor: str | None


class Ledger(Protocol):
    """Admission and reads of an instance's submissions: what the service needs.

    Every method is atomic. Settling is not here: it belongs to `Attempts.settle`, the
    one terminal write (see `agent_runtime.loop.settle`).
    """

    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        """Write receipt (if keyed), ledger item and sequence together, or nothing.

        A known receipt key with the same hash returns the first submission
        (`replayed=True`); with another hash raises `Conflict`.
        """
        ...

    async def get(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None: ...

    async def list_submissions(
        self, instance: InstanceRef, *, after: int = -1, limit: int = 100
    ) -> list[SubmissionRecord]: ...

    async def unsettled(self, instance: InstanceRef, *, limit: int = 100) -> list[SubmissionRecord]:
        """The instance's unsettled submissions from its head on, in order, at most
        `limit` (what a concurrency policy looks at: one read of the head, one of the
        records after it)."""
        ...

    async def request_abort(self, instance: InstanceRef, submission_id: str, *, now: float) -> SubmissionRecord:
        """Flag an unsettled submission (`AlreadySettled` otherwise); returns it flagged.
        A running attempt sees the flag at its next boundary or poll; a queued one is
        settled by whoever ends it through `Attempts.settle`."""
        ...

    async def abort_requested(self, instance: InstanceRef, submission_id: str) -> bool:
        """Whether an abort of the submission was requested: a strongly consistent read
        of that one flag, which a running attempt polls while a model call or a tool runs."""
        ...

    async def instances(self, agent: str, *, now: float, limit: int = 50, cursor: str | None = None) -> InstancePage:
        """The agent's instances, most recently admitted to first (ties by id, descending), at most `limit` (1..100), after `cursor` (a
        previous page's `next_cursor`). An instance is listed from its first admission on;
        `now` decides whether a lease is live."""
        ...

    async def pending_instances(self, *, idle_since: float, limit: int) -> list[InstanceRef]:
        """Instances with a submission admitted at or before `idle_since` and not settled:
        oldest first, at most `limit`. For the sweeper, which re-wakes them.

        An instance is pending while any submission of it is unsettled, since the
        admission of its oldest unsettled one: a wake-up too many (a long run) is
        harmless, and none is ever missed.
        """
        ...


class Attempts(Protocol):
    """The life of a submission after admission: claims, fenced checkpoints, hand-backs,
    suspension and the one terminal write.

    Methods taking a `Fence` raise `StaleAttempt` when the attempt no longer holds the
    submission and `AbortRequested` when the submission was asked to stop (where the
    docstring says so); both leave nothing written.
    """

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        """Find the earliest unsettled submission (moving the head past settled ones)
        and start an attempt on it if it is claimable: queued and past its backoff,
        or running with an expired lease (a crashed attempt). A lease that ends exactly
        at `now` still holds."""
        ...

    async def record_input(self, fence: Fence, message: Message) -> None:
        """The submission's input as its first history message (index 0), unless it is
        there already. Not fenced: the message is a function of the submission, so any
        attempt that held it writes the same one, and the first write stands. The journal
        says it is applied from the next checkpoint on (one that is not written yet makes
        a new attempt record it again, which changes nothing)."""
        ...

    async def checkpoint(
        self,
        fence: Fence,
        journal: Journal,
        *,
        now: float,
        lease_seconds: float,
        messages: list[Message] | None = None,
    ) -> None:
        """Fenced, abort honoured: append `messages` to the session's history (at indexes
        continuing `journal.written - len(messages)`), write the journal, renew the lease."""
        ...

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
        """Fenced, abort not honoured: give the submission back to the queue. `resume=True`
        (out of invocation time) gives the attempt back; otherwise it was a failed attempt.
        A `journal` is written with it."""
        ...

    async def suspend(self, fence: Fence, journal: Journal, *, reason: str, now: float) -> None:
        """Fenced, abort honoured: the submission becomes `waiting` on `reason` with its
        journal, holding its instance's head but no attempt (the attempt is given back).
        Nothing claims it until `resume` with the same reason."""
        ...

    async def resume(
        self, instance: InstanceRef, submission_id: str, *, reason: str, now: float, result: ToolResultPart | None = None
    ) -> bool:
        """A submission waiting on `reason` becomes queued again, and `result` (the answer
        the wait was for) is kept as the tool result of its current turn, together. False
        when it is not waiting on `reason` (resumed before, settled, or never suspended)."""
        ...

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
        """The first terminal write wins. With a fence, only that attempt may settle
        (an abort request does not stop it) and the head moves past it; without
        one (abort of a queued or waiting submission) only an unsettled submission no
        live attempt holds may be settled. With `honour_abort`, an abort request makes a
        fenced settle raise `AbortRequested` instead. Raises `AlreadySettled` or
        `StaleAttempt`. Called from one place only: `agent_runtime.loop.settle`."""
        ...


class ToolResults(Protocol):
    """Each tool call's result, kept apart from the history until its turn commits."""

    async def record(self, fence: Fence, turn: int, result: ToolResultPart, *, now: float) -> None:
        """Fenced, abort honoured: keep one call's result. The first result for a call id wins."""
        ...

    async def of_turn(self, instance: InstanceRef, sequence: int, turn: int) -> dict[str, ToolResultPart]: ...


class History(Protocol):
    """The sessions' messages, appended by `Attempts.checkpoint` and `settle`, never rewritten."""

    async def page(
        self, instance: InstanceRef, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage: ...


#: `KV.list` returns at most this many entries.
KV_LIST_MAX = 1000


class KV(Protocol):
    """The instance's key-value store."""

    async def get(self, instance: InstanceRef, key: str) -> Any: ...
    async def put(self, instance: InstanceRef, key: str, value: Any) -> None: ...
    async def delete(self, instance: InstanceRef, key: str) -> None: ...

    async def list(self, instance: InstanceRef, prefix: str = "", *, limit: int = KV_LIST_MAX) -> dict[str, Any]:
        """Keys starting with `prefix` and their values, in key order, at most `limit`."""
        ...


class Children(Protocol):
    """Drives blocking children (`agent_runtime.children`): memory, in process; AWS, one
    Step Functions execution per call. The child's ledger stays the truth: a lost report
    is found again when the parent's worker looks at the child's record."""

    async def start(self, link: ChildLink) -> None:
        """Start the child's run (its submission is admitted): harmless when repeated."""
        ...

    async def accept(self, child: InstanceRef, submission_id: str, token: str) -> None:
        """Keep the driver's callback token that came with the child's wake-up."""
        ...

    async def heartbeat(self, link: ChildLink) -> None:
        """The child still runs (sent while its attempt runs)."""
        ...

    async def report(self, link: ChildLink, child: SubmissionRecord) -> None:
        """The child settled: tell the driver, which wakes the parent."""
        ...

    async def outcome(self, link: ChildLink) -> ToolResultPart | None:
        """An outcome the driver recorded for the call (a timeout, a failure), if any."""
        ...


class Sessions(Protocol):
    """Each session's `SessionState`: the agent that owns it after a handoff, a two-sided
    agent's speaking side, its context variables. Written by the attempt that changed it,
    before its submission settles."""

    async def get(self, instance: InstanceRef, session: str) -> SessionState:
        """The session's state (the default state for a session never written)."""
        ...

    async def put(self, fence: Fence, state: SessionState, *, now: float) -> None:
        """Fenced, abort not honoured: `fence.session`'s state becomes `state`."""
        ...


@dataclass(frozen=True)
class ChildEntry:
    """One child of an instance, as its parent lists it (`ref` is the child id's suffix)."""

    ref: str
    child: InstanceRef
    submission_id: str
    call_id: str
    parent_submission_id: str
    created_at: float
    #: A resumable child (created by `subagent_create`), which takes more messages.
    resumable: bool = False
    #: Its latest submission (a message after the first); empty when it had one only.
    last_submission_id: str = ""

    @property
    def latest_submission_id(self) -> str:
        return self.last_submission_id or self.submission_id


class ChildIndex(Protocol):
    """An instance's children, kept in its own partition: listing them needs no scan."""

    async def add(self, parent: InstanceRef, entry: ChildEntry) -> None:
        """Keep `entry`; the first entry for a ref wins (a task call run again adds nothing)."""
        ...

    async def get(self, parent: InstanceRef, ref: str) -> ChildEntry | None: ...

    async def note_submission(self, parent: InstanceRef, ref: str, submission_id: str) -> None:
        """A later submission of a listed child (a message to a resumable one) is its latest."""
        ...

    async def page(self, parent: InstanceRef, *, after: str | None, limit: int) -> list[ChildEntry]:
        """Children in ref order, after the ref `after`."""
        ...


@dataclass(frozen=True)
class Stores:
    """The instance-store ports of one backend, over the same table."""

    ledger: Ledger
    attempts: Attempts
    tool_results: ToolResults
    history: History
    kv: KV
    child_index: ChildIndex
    #: The instances' filesystems (`agent_runtime.files`).
    files: Files
    #: The instances' variables and secrets (`agent_runtime.variables`).
    variables: Variables
    #: Each session's owner, side and context.
    sessions: Sessions
    #: Effects the instance has scheduled (`agent_runtime.effects`), and their timers
    #: (None: this runtime cannot schedule effects, and says so when asked to).
    effects: EffectStore
    timers: Timers | None = None


class WakeUps(Protocol):
    """'Instance X has work.' Not the source of truth: the ledger is."""

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None: ...


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...


@dataclass(frozen=True)
class EventPage:
    """Events after an offset, oldest first. `last` is the offset to read after next
    time: the last event's, or the `after` asked for when there were none."""

    events: list[Event]
    last: int


class EventLog(Protocol):
    """The instance's event log: batches of events with per-instance offsets.

    Any number of writers may append to one instance; each batch gets the next
    contiguous offsets after everything stored, so a reader that has seen N and reads
    after N misses nothing and sees nothing twice. Events expire after the log's TTL.
    """

    async def append(self, instance: InstanceRef, events: Sequence[Event], *, now: float) -> list[Event]:
        """Store `events` as one batch; returns them with their offsets."""
        ...

    async def read(self, instance: InstanceRef, *, after: int, limit: int, now: float) -> EventPage: ...

    async def end(self, instance: InstanceRef, *, now: float) -> int:
        """The last stored offset (0 when nothing unexpired is stored)."""
        ...


@dataclass(frozen=True)
class Subscription:
    """A WebSocket connection attached to an instance (optionally to one session)."""

    connection_id: str
    instance: InstanceRef
    session: str | None = None
    subscribed: bool = False


class Connections(Protocol):
    """Which connections are attached to which instance, both ways."""

    async def add(self, subscription: Subscription, *, now: float) -> None: ...

    async def subscribe(self, connection_id: str, *, session: str | None, now: float) -> Subscription | None:
        """Mark a known connection as wanting the instance's events; None if unknown."""
        ...

    async def get(self, connection_id: str) -> Subscription | None: ...

    async def remove(self, connection_id: str) -> None: ...

    async def subscribers(self, instance: InstanceRef) -> list[Subscription]: ...


class Poster(Protocol):
    """Sends data to one WebSocket connection (API Gateway's management API)."""

    async def post(self, connection_id: str, data: bytes) -> bool:
        """False when the connection is gone."""
        ...
