"""The submission ledger: records, their schema version, and the rules over them.

A submission moves ``queued -> running -> settled``, with detours back to ``queued`` (a
failed attempt, or one out of invocation time) and through ``waiting`` (suspended on a
named reason until it is resumed, then ``queued`` again); settled carries an outcome
``completed | failed | aborted``. Each claim of a submission is an *attempt*
with a fresh attempt id and a lease; every write of an attempt is fenced on
``(submission, attempt id, running)`` so a stale attempt can neither write nor settle.

The journal on the record says how far the current turn got:
``before_model -> model_done -> tools_requested -> tool_result(call_id)* -> committed``.
Tool results are stored one by one next to the record; history messages are keyed
by ``(submission sequence, index within the submission)``, so appending never
rewrites earlier messages and needs no counter.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from agent_runtime.errors import InvalidInput, SubmissionNotFound
from agent_runtime.ids import InstanceRef
from agent_runtime.messages import Usage

RECORD_SCHEMA_VERSION = 1
MAX_INPUT_BYTES = 1_000_000


class Status(StrEnum):
    queued = "queued"
    running = "running"
    waiting = "waiting"
    settled = "settled"


class Outcome(StrEnum):
    completed = "completed"
    failed = "failed"
    aborted = "aborted"


class Phase(StrEnum):
    before_model = "before_model"
    model_done = "model_done"
    tools_requested = "tools_requested"
    tool_result = "tool_result"
    committed = "committed"


class SessionState(BaseModel):
    """What a session carries from one submission to the next: the agent that owns it
    after a handoff (None: the instance's own agent), the speaking side of a two-sided
    agent, its context variables (`ctx.context`, JSON), and a status a two-sided agent's
    status tool set. Kept per session (`Sessions`), and in the journal while a submission
    runs, so a new attempt resumes with the same owner, side and context."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    owner: str | None = None
    side: Literal["a", "b"] | None = None
    context: dict[str, Any] = {}  # copied per instance (see `models.base.ModelRequest`)
    status: str | None = None
    #: Turns taken by the sides of a two-sided session (in its current submission), and
    #: model steps taken in the speaking side's current turn.
    exchanges: int = 0
    steps: int = 0


class Journal(BaseModel):
    """How far the submission got; rewritten (never appended) at each checkpoint."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    applied: bool = False  # the input is in history
    turn: int = 0
    phase: Phase | None = None
    written: int = 0  # history messages this submission has written
    pending_calls: list[str] = []  # copied per instance (see `models.base.ModelRequest`)
    repairs: int = 0
    usage: Usage = Field(default_factory=Usage)
    #: Set by a hand-back (out of invocation time) at a boundary, where no call of the
    #: turn is running: the next attempt may run the turn's unrecorded calls, after it
    #: clears the flag in a checkpoint of its own (a crash after that is a crash).
    handed_back: bool = False
    #: The session's state as this submission has it (None until it is first read), and
    #: whether the submission changed it (then it is stored before the submission settles).
    session_state: SessionState | None = None
    session_changed: bool = False
    #: Usage by the ``provider/model`` that served each call (a named model's entries apart).
    usage_by_model: dict[str, Usage] = {}

    def deep_copy(self) -> Journal:
        """A copy sharing nothing with this one (an attempt's own, to change as it goes):
        dumped and validated again, a few times faster than ``model_copy(deep=True)``."""
        return Journal.model_validate(self.model_dump())


class SubmissionRecord(BaseModel):
    """One ledger item. `v` is checked on read: an unknown version is refused loudly."""

    model_config = ConfigDict(defer_build=True, extra="forbid")

    v: int = RECORD_SCHEMA_VERSION
    id: str
    instance: str
    sequence: int
    kind: Literal["direct", "dispatch", "task", "child_report", "effect"]
    session: str
    payload: Any
    status: Status = Status.queued
    outcome: Outcome | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    accepted_at: float
    started_at: float | None = None
    settled_at: float | None = None
    #: Every claim counts; a release on purpose (out of invocation time) gives one back,
    #: so `attempts = claims - yields` counts real tries against the retry budget.
    claims: int = 0
    yields: int = 0
    attempt_id: str | None = None
    lease_until: float | None = None
    not_before: float | None = None  # retry backoff after a failed attempt
    #: Fixed at admission only when the caller gave them; None: the agent's durability,
    #: read by the worker when it runs the submission (see `Budget`).
    max_attempts: int | None = None
    timeout_s: float | None = None
    abort_requested: bool = False
    #: What a `waiting` submission waits on (see `Attempts.suspend`).
    waiting_on: str | None = None
    receipt_key: str | None = None
    journal: Journal = Field(default_factory=Journal)

    @field_validator("v")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v != RECORD_SCHEMA_VERSION:
            raise ValueError(f"unknown submission record version {v} (this runtime reads {RECORD_SCHEMA_VERSION})")
        return v

    @property
    def ref(self) -> InstanceRef:
        return InstanceRef.parse(self.instance)

    @property
    def dispatch_id(self) -> str | None:
        """The dispatch id a dispatched submission was admitted under."""
        if self.receipt_key and self.receipt_key.startswith("dispatch:"):
            return self.receipt_key.split(":", 1)[1]
        return None

    @property
    def attempts(self) -> int:
        return self.claims - self.yields

    @property
    def settled(self) -> bool:
        return self.status is Status.settled


@dataclass(frozen=True)
class Fence:
    """The identity every write of an attempt is conditioned on."""

    instance: InstanceRef
    submission_id: str
    sequence: int
    attempt_id: str
    session: str

    @classmethod
    def of(cls, record: SubmissionRecord) -> Fence:
        return cls(record.ref, record.id, record.sequence, record.attempt_id or "", record.session)


class Draft(BaseModel):
    """What admission needs; the store assigns id, sequence and times."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    kind: Literal["direct", "dispatch", "task", "child_report", "effect"]
    session: str
    payload: Any
    receipt_key: str | None = None
    receipt_hash: str | None = None
    max_attempts: int | None = None
    timeout_s: float | None = None


class Receipt(BaseModel):
    """Kept for the instance's life: the same key and input always return it."""

    model_config = ConfigDict(defer_build=True, frozen=True)

    key: str
    hash: str
    submission_id: str
    accepted_at: float


@dataclass(frozen=True)
class Budget:
    """How many attempts a submission gets and how long it may take from its first start:
    the record's own values when admission fixed them, else the agent's durability."""

    max_attempts: int
    timeout_s: float

    @classmethod
    def of(cls, record: SubmissionRecord, *, retry: int, timeout: float) -> Budget:
        return cls(
            record.max_attempts if record.max_attempts is not None else retry,
            record.timeout_s if record.timeout_s is not None else timeout,
        )

    def deadline(self, record: SubmissionRecord) -> float | None:
        return None if record.started_at is None else record.started_at + self.timeout_s


@dataclass(frozen=True)
class Claim:
    """What `claim_head` found.

    claimed: `record` is now running under a new attempt. idle: nothing unsettled, or
    nothing that can run before the wake-up that will follow (the head's admission has
    not finished writing it).
    busy: a live attempt holds the head. waiting: the head waits on a child.
    backoff: the head may not be retried before `record.not_before`.
    `next_sequence` is the admission high-water mark seen: work admitted later has
    its own wake-up behind the current one, so the worker need not look again.
    """

    state: Literal["claimed", "idle", "busy", "waiting", "backoff"]
    record: SubmissionRecord | None
    next_sequence: int


@dataclass(frozen=True)
class Admission:
    record: SubmissionRecord
    replayed: bool


def new_attempt_id() -> str:
    return secrets.token_hex(8)


def submission_id_for(sequence: int) -> str:
    """``sub-<sequence>-<random>``: the sequence locates the ledger item without an index."""
    return f"sub-{sequence:010d}-{secrets.token_hex(4)}"


def sequence_of(submission_id: str) -> int:
    try:
        prefix, seq, suffix = submission_id.split("-")
        if prefix != "sub" or len(seq) != 10 or len(suffix) != 8:
            raise ValueError
        return int(seq)
    except ValueError:
        raise SubmissionNotFound(f"no submission {submission_id[:80]!r}", details={"submission_id": submission_id[:80]}) from None


def canonical_json(value: Any) -> str:
    """The JSON form used for hashing and size checks; refuses what is not JSON."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"input is not JSON: {exc}", details={"field": "input"}) from exc


def input_hash(kind: str, session: str, payload: Any) -> str:
    return hashlib.sha256(canonical_json([kind, session, payload]).encode()).hexdigest()


def check_input_size(payload: Any) -> None:
    from agent_runtime.errors import PayloadTooLarge

    try:
        size = len(canonical_json(payload).encode())
    except UnicodeEncodeError as exc:
        raise InvalidInput("input is not valid Unicode (lone surrogate)", details={"field": "input"}) from exc
    if size > MAX_INPUT_BYTES:
        raise PayloadTooLarge(
            f"input is {size} bytes; the limit is {MAX_INPUT_BYTES}", details={"limit": MAX_INPUT_BYTES, "size": size}
        )
