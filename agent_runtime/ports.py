"""The ports the core knows storage through. Adapters: `adapters.memory` (reference
semantics) and `adapters.aws` (DynamoDB, SQS FIFO, S3). One contract suite
(`agent_runtime.testing.contract`) runs on both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

from agent_runtime.errors import InvalidInput
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Admission, Claim, Draft, Fence, Journal, Outcome, SubmissionRecord
from agent_runtime.messages import Message, ToolResultPart


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


class InstanceStore(Protocol):
    """Ledger, receipts, history, journal and kv of instances.

    Every method is atomic. Methods taking a `Fence` raise `StaleAttempt` when the
    attempt no longer holds the submission and `AbortRequested` when the submission
    was asked to stop; both leave nothing written.
    """

    async def admit(self, instance: InstanceRef, draft: Draft, *, now: float) -> Admission:
        """Write receipt (if keyed), ledger item and sequence together, or nothing.

        A known receipt key with the same hash returns the first submission
        (`replayed=True`); with another hash raises `Conflict`.
        """
        ...

    async def get(self, instance: InstanceRef, submission_id: str) -> SubmissionRecord | None: ...

    async def claim_head(
        self, instance: InstanceRef, *, attempt_id: str, now: float, lease_seconds: float
    ) -> Claim:
        """Find the earliest unsettled submission (moving the head past settled ones)
        and start an attempt on it if it is claimable: queued and past its backoff,
        or running with an expired lease (a crashed attempt)."""
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
        """Fenced: append `messages` to the session's history (at indexes continuing
        `journal.written - len(messages)`), write the journal and renew the lease."""
        ...

    async def record_tool_result(self, fence: Fence, turn: int, result: ToolResultPart, *, now: float) -> None:
        """Fenced: keep one tool call's result. The first result for a call id wins."""
        ...

    async def tool_results(self, instance: InstanceRef, sequence: int, turn: int) -> dict[str, ToolResultPart]: ...

    async def release(
        self, fence: Fence, *, now: float, resume: bool, not_before: float | None, error: dict[str, Any] | None
    ) -> None:
        """Fenced: give the submission back to the queue. `resume=True` (out of
        invocation time) gives the attempt back; otherwise it was a failed attempt."""
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
        one (abort of a queued submission) only an unsettled, unleased submission
        may be settled. With `honour_abort`, an abort request makes a fenced settle
        raise `AbortRequested` instead. Raises `AlreadySettled` or `StaleAttempt`."""
        ...

    async def request_abort(self, instance: InstanceRef, submission_id: str, *, now: float) -> SubmissionRecord:
        """Flag the submission; a queued one settles `aborted` at once."""
        ...

    async def list_submissions(
        self, instance: InstanceRef, *, after: int = -1, limit: int = 100
    ) -> list[SubmissionRecord]: ...

    async def history(
        self, instance: InstanceRef, session: str, *, limit: int = 100, cursor: str | None = None
    ) -> HistoryPage: ...

    async def kv_get(self, instance: InstanceRef, key: str) -> Any: ...
    async def kv_put(self, instance: InstanceRef, key: str, value: Any) -> None: ...
    async def kv_delete(self, instance: InstanceRef, key: str) -> None: ...


class WakeUps(Protocol):
    """'Instance X has work.' Not the source of truth: the ledger is."""

    async def send(self, instance: InstanceRef, *, reason: str, dedupe_id: str) -> None: ...


class BlobStore(Protocol):
    async def put(self, key: str, data: bytes) -> None: ...
    async def get(self, key: str) -> bytes: ...
