"""One exception tree for the whole runtime.

    AgentRuntimeError                      root: catch this to catch everything of ours
    ├── UserError                          the application developer's mistake, at definition time
    │   ├── DefinitionError                a bad create_agent / define_agent_profile field
    │   └── ToolDefinitionError            a bad @tool (signature, name)
    ├── AgentDefinitionError               an agent's init(ctx) failed at run time: fails the submission at once
    ├── InvalidInput                       a caller's bad input (name, id, payload): 400-class
    │   ├── PayloadTooLarge                over a documented limit: 413
    │   │   ├── FileTooLarge               a file over `files.FILE_MAX_BYTES`: 413
    │   │   └── FilesQuotaExceeded         an instance's files over their byte or count limit: 413
    │   └── UnsupportedMediaType           a file's media type malformed or not allowed: 415
    ├── NotFound                           unknown agent, instance or submission: 404
    │   ├── FileNotFound                   no file at a path, or no such upload: 404
    │   └── TraceNotFound                  no span of a submission is kept: 404
    ├── Conflict                           same idempotency key / dispatch id, other input: 409
    ├── LedgerError                        the ledger refused a write
    │   ├── StaleAttempt                   the attempt's fence no longer holds (lease lost)
    │   ├── AlreadySettled                 first terminal write already won
    │   ├── NotClaimable                   the head is leased by a live attempt
    │   └── AbortRequested                 the running submission was asked to stop
    └── ModelError                         a model provider failed
        ├── TransientModelError            429 / 5xx / overloaded / timeout: retried with backoff
        ├── PermanentModelError            400 / 401 / 403 / 404: fails the submission at once
        │   └── ContextLengthExceeded      the request outgrew the model's context window
        └── ModelRequestsForbidden         a real provider was called while requests are off

Exceptions carry typed fields; handlers map them to statuses through one table
(`agent_runtime.protocol.ERROR_STATUS`), never by matching message text.
"""

from __future__ import annotations

from typing import Any


class AgentRuntimeError(Exception):
    """Root of every error the runtime raises on purpose."""

    type: str = "internal_error"
    #: Raised in an attempt, it fails the submission at once: another attempt would meet
    #: it again (a mistake in application code, a recorded outcome).
    permanent: bool = False

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class UserError(AgentRuntimeError):
    """A mistake in application code, raised when the agent or tool is defined."""

    type = "user_error"
    permanent = True


class DefinitionError(UserError):
    """A field of an agent or profile definition is wrong; `field` names it."""

    type = "definition_error"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}", details={"field": field})
        self.field = field


class ToolDefinitionError(UserError):
    type = "tool_definition_error"


class AgentDefinitionError(AgentRuntimeError):
    """An agent's `init(ctx)` returned a bad configuration, or raised, for one instance at
    run time (import-time mistakes raise `DefinitionError`). Retrying cannot help: the
    submission fails at once, naming the agent and the field."""

    type = "agent_definition_error"

    def __init__(self, agent: str, field: str, message: str) -> None:
        super().__init__(f"agent {agent!r}: {message}", details={"agent": agent, "field": field})
        self.agent = agent
        self.field = field


class InvalidInput(AgentRuntimeError):
    """Input from a caller that cannot be accepted as given."""

    type = "invalid_request"


class PayloadTooLarge(InvalidInput):
    type = "payload_too_large"


class FileTooLarge(PayloadTooLarge):
    """A file bigger than `agent_runtime.files.FILE_MAX_BYTES`; ``details["limit"]`` says it."""

    type = "file_too_large"


class FilesQuotaExceeded(PayloadTooLarge):
    """A write would take an instance's files over `INSTANCE_MAX_BYTES` or
    `INSTANCE_MAX_FILES` (``details["quota"]`` names which, ``details["limit"]`` its value)."""

    type = "files_quota_exceeded"


class UnsupportedMediaType(InvalidInput):
    """A file's media type is malformed or outside `agent_runtime.files.MEDIA_TYPES` (415)."""

    type = "unsupported_media_type"


class NotFound(AgentRuntimeError):
    type = "not_found"


class AgentNotFound(NotFound):
    type = "agent_not_found"


class SubmissionNotFound(NotFound):
    type = "submission_not_found"


class TraceNotFound(NotFound):
    """No span of the submission is kept (tracing off, or no ``table`` sink, or expired)."""

    type = "trace_not_found"


class ChildNotFound(NotFound):
    type = "child_not_found"


class FileNotFound(NotFound):
    type = "file_not_found"


class Conflict(AgentRuntimeError):
    """The same idempotency key or dispatch id was used with other input."""

    type = "conflict"


class Busy(Conflict):
    """The instance is working and its concurrency policy is ``reject`` (409)."""

    type = "busy"


class LedgerError(AgentRuntimeError):
    type = "ledger_error"


class StaleAttempt(LedgerError):
    """The attempt's fence `(submission, attempt id, running)` no longer holds."""

    type = "stale_attempt"

    def __init__(self, submission_id: str, attempt_id: str) -> None:
        super().__init__(
            f"attempt {attempt_id} of {submission_id} is no longer the running attempt",
            details={"submission_id": submission_id, "attempt_id": attempt_id},
        )
        self.submission_id = submission_id
        self.attempt_id = attempt_id


class AlreadySettled(LedgerError):
    type = "already_settled"

    def __init__(self, submission_id: str) -> None:
        super().__init__(f"{submission_id} is already settled", details={"submission_id": submission_id})
        self.submission_id = submission_id


class NotClaimable(LedgerError):
    """The head is held by a live attempt of another worker; try again after its lease."""

    type = "not_claimable"


class AbortRequested(LedgerError):
    """A fenced write found the submission's abort flag set: the attempt must stop."""

    type = "aborted"

    def __init__(self, submission_id: str) -> None:
        super().__init__(f"{submission_id} was asked to abort", details={"submission_id": submission_id})
        self.submission_id = submission_id


class ModelError(AgentRuntimeError):
    type = "model_error"


class TransientModelError(ModelError):
    """A provider error worth retrying: rate limit, overload, 5xx, timeout."""

    type = "model_transient_error"

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, details={"status": status})
        self.status = status
        self.retry_after = retry_after


class PermanentModelError(ModelError):
    """A provider refused the request for good (400, 401, 403, 404, ...): another attempt
    would be refused again, so the submission fails at once."""

    type = "model_request_refused"
    permanent = True


class ContextLengthExceeded(PermanentModelError):
    """The request is longer than the model's context window."""

    type = "context_length_exceeded"


class ModelRequestsForbidden(ModelError):
    type = "model_requests_forbidden"
    permanent = True
