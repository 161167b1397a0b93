"""Children: subagents that run as instances of their own (DESIGN section 5).

A `task` call of a parent submission starts a child: an instance of the subagent's agent
(its name is the profile's, ``_`` -> ``-``) whose id is derived from the parent's,

    <parent id>~<ref>        ref = 10 hex digits of sha256(parent submission id, call id)

so the same call always names the same child, a child is listed under its parent by
prefix, and each level adds 11 characters (ids stay within 79). The child gets one
submission of kind ``task``, admitted with the receipt key ``task:<ref>``: a call run
again after a crash finds the same submission instead of making a second one. Its
payload carries the prompt, the parent link and the chain of agents above it (for the
depth cap and cycle check). A child never sees the parent's transcript.

A blocking call leaves the parent's submission waiting on `wait_reason(link)`. When the
child settles, the one settle path reports it through the `Children` port (memory: a
wake-up for the parent; AWS: the Step Functions task token), and the parent's worker
resolves the wait: from the outcome the driver recorded (a timeout, a failure), else
from the child's own settled record, which is the truth either way.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import InvalidInput
from agent_runtime.ids import INSTANCE_ID_MAX, InstanceRef
from agent_runtime.ledger import Outcome, SubmissionRecord
from agent_runtime.messages import ToolResultPart

#: How deep a tree of children may grow below a root instance.
MAX_DEPTH = 4
TASK_TOOL = "task"
#: The built-ins of resumable children: their answers name the child's ref.
RESUMABLE_TOOLS = ("subagent_create", "subagent_message")
_REASON_PREFIX = "task "


@dataclass(frozen=True)
class TaskOutcome:
    """A finished task: the child's answer, and with a result schema, its validated data."""

    text: str
    data: Any = None


@dataclass(frozen=True)
class ChildLink:
    """One blocking call and the child it started."""

    parent: InstanceRef
    parent_submission_id: str
    call_id: str
    child: InstanceRef
    child_submission_id: str
    #: False: the call returned at once; the outcome goes to the parent as a `child_report`.
    blocking: bool = True
    #: The parent's session (where a non-blocking child's report goes).
    parent_session: str = "default"
    #: The built-in whose call started this run (`task`, `subagent_create`, `subagent_message`).
    tool: str = TASK_TOOL
    #: A resumable child that talks back only through `ctx.notify_parent` (and a failure).
    explicit: bool = False

    @property
    def ref(self) -> str:
        """The child's reference under its parent (the suffix of its id)."""
        return self.child.id.rsplit("~", 1)[-1]

    def as_json(self) -> dict[str, Any]:
        return {
            "parent": self.parent.key,
            "parent_submission_id": self.parent_submission_id,
            "call_id": self.call_id,
            "child": self.child.key,
            "child_submission_id": self.child_submission_id,
            "blocking": self.blocking,
            "parent_session": self.parent_session,
            "tool": self.tool,
            "explicit": self.explicit,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ChildLink:
        return cls(
            parent=InstanceRef.parse(data["parent"]),
            parent_submission_id=data["parent_submission_id"],
            call_id=data["call_id"],
            child=InstanceRef.parse(data["child"]),
            child_submission_id=data["child_submission_id"],
            blocking=bool(data.get("blocking", True)),
            parent_session=str(data.get("parent_session", "default")),
            tool=str(data.get("tool", TASK_TOOL)),
            explicit=bool(data.get("explicit", False)),
        )


def snake_case(name: str) -> str:
    """``PlannerAgent`` -> ``planner_agent``, ``HTTPServer`` -> ``http_server``; snake stays."""
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    return re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name).lower()


def agent_name_of(profile_name: str) -> str:
    """The agent name a profile's children run under: ``policy_researcher`` ->
    ``policy-researcher``, ``RiskAnalystAgent`` -> ``risk-analyst-agent``."""
    return snake_case(profile_name).replace("_", "-")


def child_ref(parent_submission_id: str, call_id: str) -> str:
    return hashlib.sha256(f"{parent_submission_id}\n{call_id}".encode()).hexdigest()[:10]


def child_instance(parent: InstanceRef, agent: str, parent_submission_id: str, call_id: str) -> InstanceRef:
    """The child's address; `InvalidInput` when the tree is too deep for its ids."""
    child_id = f"{parent.id}~{child_ref(parent_submission_id, call_id)}"
    if len(child_id) > INSTANCE_ID_MAX:
        raise InvalidInput(
            f"a child of {parent.id!r} would need an id over {INSTANCE_ID_MAX} characters",
            details={"field": "id", "value": child_id[:100]},
        )
    return InstanceRef(agent, child_id)


def depth_of(instance: InstanceRef) -> int:
    """0 for a root instance, 1 for its children, ..."""
    return instance.id.count("~")


def task_payload(
    prompt: str,
    link: ChildLink,
    ancestors: list[str],
    overrides: dict[str, Any] | None = None,
    attachments: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    payload: dict[str, Any] = {"prompt": prompt, "link": link.as_json(), "ancestors": ancestors}
    if overrides:
        payload["overrides"] = overrides
    if attachments:
        payload["attachments"] = attachments  # file parts: paths in the child's filesystem
    return payload


def link_of(record: SubmissionRecord) -> ChildLink | None:
    """The parent link of a child's `task` submission (None for any other)."""
    if record.kind != "task" or not isinstance(record.payload, dict) or "link" not in record.payload:
        return None
    return ChildLink.from_json({**record.payload["link"], "child_submission_id": record.id})


def ancestors_of(record: SubmissionRecord) -> list[str]:
    """The agents above `record`'s instance, root first, and its own agent last."""
    above = record.payload.get("ancestors", []) if record.kind == "task" and isinstance(record.payload, dict) else []
    return [*above, record.ref.agent]


def wait_reason(link: ChildLink) -> str:
    """What the parent's submission waits on while a blocking child runs."""
    data = {"call": link.call_id, "child": link.child.key, "submission": link.child_submission_id}
    if link.tool != TASK_TOOL:
        data["tool"] = link.tool
    return _REASON_PREFIX + json.dumps(data, separators=(",", ":"), sort_keys=True)


def link_from_reason(parent: SubmissionRecord) -> ChildLink | None:
    """The child a waiting parent waits on (None when it waits on something else)."""
    reason = parent.waiting_on or ""
    if not reason.startswith(_REASON_PREFIX):
        return None
    data = json.loads(reason[len(_REASON_PREFIX) :])
    child = InstanceRef.parse(data["child"])
    return ChildLink(parent.ref, parent.id, data["call"], child, data["submission"], tool=data.get("tool", TASK_TOOL))


def outcome_of(link: ChildLink, child: SubmissionRecord) -> ToolResultPart:
    """A settled child's outcome as the result of the call that started it."""
    assert child.settled
    if child.outcome is Outcome.completed and child.result is not None:
        data = child.result.get("data")
        content = child.result.get("text") or ""
        if data is not None:
            content = json.dumps(data, ensure_ascii=False)
        if link.tool in RESUMABLE_TOOLS:  # the model needs the child's ref to talk to it again
            content = f"[{link.child.agent} ref {link.ref}] {content}"
        return ToolResultPart(call_id=link.call_id, name=link.tool, content=content)
    error = child.error or {}
    what = "was aborted" if child.outcome is Outcome.aborted else "failed"
    message = f"the subagent {link.child.agent} {what}: {error.get('type', 'error')}: {error.get('message', '')}"
    return ToolResultPart(call_id=link.call_id, name=link.tool, content=message, is_error=True, status="error")


def failure_part(link: ChildLink, error: str, cause: str) -> ToolResultPart:
    """An outcome the driver recorded because the child never answered (timeout, lost)."""
    message = f"the subagent {link.child.agent} did not finish: {error}" + (f": {cause}" if cause else "")
    return ToolResultPart(call_id=link.call_id, name=link.tool, content=message, is_error=True, status="error")


__all__ = [
    "MAX_DEPTH",
    "TASK_TOOL",
    "ChildLink",
    "TaskOutcome",
    "agent_name_of",
    "ancestors_of",
    "child_instance",
    "child_ref",
    "depth_of",
    "failure_part",
    "link_from_reason",
    "link_of",
    "outcome_of",
    "snake_case",
    "task_payload",
    "wait_reason",
]
