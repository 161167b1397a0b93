"""The steps of the turn loop. Each step of `Attempt.run` returns the next one:

    ApplyInput -> CallModel -> (Finish | RunTools -> (Commit -> CallModel ... | Suspend))
    any step at a boundary -> Yield (out of invocation time) | Finish (timeout, abort)

`Finish`, `Yield` and `Suspend` end the attempt: the first settles the submission (in
`agent_runtime.loop.settle`, the one place a submission settles), the second hands it
back to the queue without spending an attempt, the third leaves it `waiting` on a named
reason until `Attempts.resume`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agent_runtime.ledger import Outcome
from agent_runtime.messages import Message, ToolCallPart


@dataclass(frozen=True)
class ApplyInput:
    pass


@dataclass(frozen=True)
class CallModel:
    pass


@dataclass(frozen=True)
class RunTools:
    """Run the turn's calls. `recovering`: a later attempt, so recorded results are reused
    and an unrecorded call may have been running when the last attempt died (its outcome
    is unknown) unless `handed_back` says the last attempt gave the turn back cleanly."""

    calls: list[ToolCallPart]
    recovering: bool = False
    handed_back: bool = False


@dataclass(frozen=True)
class Commit:
    """Append the turn's closing messages (tool results, or a repair prompt)."""

    messages: list[Message]


@dataclass(frozen=True)
class Finish:
    """The submission's ending: settled by `agent_runtime.loop.settle.settle`."""

    outcome: Outcome
    text: str = ""
    data: Any = None
    error: dict[str, Any] | None = None
    closing: list[Message] = field(default_factory=list)

    @classmethod
    def failed(cls, kind: str, message: str, **details: Any) -> Finish:
        return cls(Outcome.failed, error={"type": kind, "message": message, **details})

    @classmethod
    def aborted(cls, message: str = "aborted on request") -> Finish:
        return cls(Outcome.aborted, error={"type": "aborted", "message": message})


@dataclass(frozen=True)
class Yield:
    """Out of invocation time at a boundary: hand the submission back, no attempt spent."""


@dataclass(frozen=True)
class Suspend:
    """Wait on `reason` (say, a blocking child's call id) without settling: the journal
    keeps the turn, the head stays held, no attempt is spent, and `Attempts.resume`
    with the same reason queues it again to go on from the recorded tool results."""

    reason: str


Step = ApplyInput | CallModel | RunTools | Commit | Finish | Yield | Suspend

#: How an attempt ended: settled, handed back (out of time) or waiting on a reason.
Ended = Finish | Yield | Suspend
