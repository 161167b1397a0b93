"""`task`: delegate to a subagent, which runs as a child instance (`agent_runtime.children`).

Offered only when the agent has subagents. Its arguments: ``agent`` (one of their names),
``prompt``, and ``attachments`` (paths of the parent's files, copied into the child's
filesystem at the same paths and attached to its first message). A call admits the child's submission (idempotent: a call run again after a
crash finds the same child), starts it (`loop.child_runs`), tells the parent's log
(`task_start`), and then either suspends the parent's submission until the child settles
(blocking, the default) or returns the child's reference at once (non-blocking: the
outcome comes back as a `child_report`). Every
mistake (unknown agent, bad arguments, a tree too deep, a cycle) is a tool error for the
model (a missing attachment too), never a crash.
"""

from __future__ import annotations

import dataclasses
import hashlib
import mimetypes
from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent_runtime import events as ev
from agent_runtime import tracing
from agent_runtime.children import (
    MAX_DEPTH,
    TASK_TOOL,
    ChildLink,
    agent_name_of,
    ancestors_of,
    child_instance,
    child_ref,
    depth_of,
    task_payload,
    wait_reason,
)
from agent_runtime.definition import Subagent
from agent_runtime.errors import FileNotFound, InvalidInput
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Draft, input_hash
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.loop.inputs import file_part
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec
from agent_runtime.ports import ChildEntry
from agent_runtime.tools import format_validation_error

CHILD_SESSION = "default"
#: Files one call may hand to a child.
MAX_ATTACHMENTS = 20


class TaskArguments(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    agent: str
    prompt: str = Field(min_length=1)
    attachments: list[str] | None = None


def delegation_parameters(agents: list[str], prompt: str) -> dict[str, Any]:
    """The arguments of a call that starts a child: `TaskArguments`, as the model sees them."""
    return {
        "type": "object",
        "properties": {
            "agent": {"type": "string", "enum": agents, "description": "Which subagent."},
            "prompt": {"type": "string", "minLength": 1, "description": prompt},
            "attachments": {"type": "array", "items": {"type": "string"}, "description": "File paths to hand over."},
        },
        "required": ["agent", "prompt"],
        "additionalProperties": False,
    }


M = TypeVar("M", bound=BaseModel)


def validated(model: type[M], call: ToolCallPart) -> M | Handled:
    """The call's arguments as `model`, or the tool error that says what is wrong."""
    try:
        return model.model_validate(call.arguments)
    except ValidationError as exc:
        return Handled(error_result(call, format_validation_error(exc)))


class TaskBuiltin:
    silent = False

    def __init__(self, subagents: Sequence[Subagent], child_runs: ChildRuns) -> None:
        self.subagents = {s.name: s for s in subagents}
        self.child_runs = child_runs
        listing = "\n".join(
            f"- {s.name}: {s.profile.description}" + ("" if s.blocking else " (runs on its own; reports when done)")
            for s in subagents
        )
        self.spec = ToolSpec(
            name=TASK_TOOL,
            description=(
                "Delegate a task to a subagent. The subagent sees only your prompt, not this "
                "conversation. You get its answer as the result, or, for one that runs on its own, "
                f"its reference now and its outcome as a later message. Subagents:\n{listing}"
            ),
            parameters=delegation_parameters(list(self.subagents), "Everything the subagent needs to know."),
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(TaskArguments, call)
        if isinstance(args, Handled):
            return args
        if args.agent not in self.subagents:
            known = ", ".join(self.subagents)
            return Handled(error_result(call, f"unknown subagent {args.agent!r} (available: {known})"))
        spec = self.subagents[args.agent]
        try:
            link = await start_child(self.child_runs, ctx, spec, args.prompt, call.id, attachments=args.attachments)
        except ChildRefused as exc:
            return Handled(error_result(call, str(exc)))
        text = f"started {args.agent} as {link.child.key} (ref {link.ref}); its outcome will arrive as a message"
        return started(call, link, text)


def started(call: ToolCallPart, link: ChildLink, text: str) -> Handled:
    """A child run started by `call`: blocking, the submission waits for its outcome;
    otherwise `text` is the call's result now."""
    if not link.blocking:
        return Handled(ToolResultPart(call_id=call.id, name=call.name, content=text))
    pending = ToolResultPart(call_id=call.id, name=call.name, content="")
    return Handled(pending, suspend=wait_reason(link))


class ChildRefused(Exception):
    """A child that may not start (too deep, a cycle, an id too long): the message says why."""


async def start_child(
    child_runs: ChildRuns,
    ctx: CallContext,
    spec: Subagent,
    prompt: str,
    call_id: str,
    *,
    tool: str = TASK_TOOL,
    overrides: dict[str, Any] | None = None,
    attachments: Sequence[str | bytes] | None = None,
) -> ChildLink:
    """Start `spec` as a new child of `ctx.record` for `call_id`: admit its submission (by
    receipt, so a call run again finds the same child), list it under the parent, start
    it, and tell the parent's log. `attachments` (paths of the parent's files, or image
    bytes) are copied or written into the child's filesystem and attached, in order, to its
    first message. `task`, `subagent_create` and `on_dispatch`'s `session.task`
    use it."""
    parent = ctx.record.ref
    agent = agent_name_of(spec.name)
    if depth_of(parent) + 1 > MAX_DEPTH:
        raise ChildRefused(f"subagents may nest {MAX_DEPTH} deep; this task would go deeper")
    ancestors = ancestors_of(ctx.record)
    if agent in ancestors:
        raise ChildRefused(f"refused: the task would make a cycle ({' -> '.join([*ancestors, agent])})")
    try:
        child = child_instance(parent, agent, ctx.record.id, call_id)
    except InvalidInput as exc:
        raise ChildRefused(str(exc)) from None
    handed = await hand_over(ctx, child, attachments or [])
    link, accepted_at = await _admit(ctx, _link(ctx, spec, child, call_id, tool), prompt, ancestors, overrides, handed)
    entry = ChildEntry(
        ref=link.ref,
        child=child,
        submission_id=link.child_submission_id,
        call_id=call_id,
        parent_submission_id=ctx.record.id,
        created_at=accepted_at,
        resumable=spec.resumable is not None,
    )
    await ctx.stores.child_index.add(parent, entry)
    await _go(child_runs, ctx, link)
    return link


async def message_child(
    child_runs: ChildRuns, ctx: CallContext, spec: Subagent, entry: ChildEntry, prompt: str, call_id: str, *, tool: str
) -> ChildLink:
    """Send `prompt` to the listed child `entry` as its next submission (it queues in the
    child's FIFO and continues its session), by receipt like `start_child`."""
    link = _link(ctx, spec, entry.child, call_id, tool)
    link, _ = await _admit(ctx, link, prompt, ancestors_of(ctx.record), None, [])
    await ctx.stores.child_index.note_submission(ctx.record.ref, entry.ref, link.child_submission_id)
    await _go(child_runs, ctx, link)
    return link


def _link(ctx: CallContext, spec: Subagent, child: InstanceRef, call_id: str, tool: str) -> ChildLink:
    explicit = spec.resumable is not None and spec.resumable.parent_communication == "explicit"
    parent = ctx.record
    return ChildLink(parent.ref, parent.id, call_id, child, "", spec.blocking, parent.session, tool=tool, explicit=explicit)


async def hand_over(ctx: CallContext, child: InstanceRef, items: Sequence[str | bytes]) -> list[dict[str, Any]]:
    """Into the child's filesystem: each path of the parent's files copied (S3 server-side,
    same path), each image (bytes) written under /attachments/; their parts, in order, for
    the child's first message. Fenced by the parent's attempt; a call run again copies the
    same bytes again, harmlessly."""
    if len(items) > MAX_ATTACHMENTS:
        raise ChildRefused(f"at most {MAX_ATTACHMENTS} files may be handed to a subagent")
    parts = []
    try:
        for item in items:
            if isinstance(item, str):
                info = await ctx.stores.files.copy(ctx.record.ref, item, child, item, now=ctx.clock(), fence=ctx.fence)
                parts.append(file_part(info))
                continue
            data = item
            media_type = image_type(data)
            if media_type is None:
                raise ChildRefused("images are PNG, JPEG, GIF or WebP bytes")
            name = f"/attachments/{hashlib.sha256(data).hexdigest()[:16]}{mimetypes.guess_extension(media_type) or ''}"
            info = await ctx.stores.files.write(child, name, data, media_type=media_type, now=ctx.clock(), fence=ctx.fence)
            parts.append(file_part(info))
    except FileNotFound as exc:
        raise ChildRefused(f"no file {exc.details.get('path', '')} to hand over") from None
    except InvalidInput as exc:
        raise ChildRefused(exc.message) from None
    return [p.model_dump(exclude={"type"}) for p in parts]


def image_type(data: bytes) -> str | None:
    """The media type of PNG, JPEG, GIF or WebP bytes (by their magic numbers)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


async def _admit(
    ctx: CallContext,
    link: ChildLink,
    prompt: str,
    ancestors: list[str],
    overrides: dict[str, Any] | None,
    attachments: list[dict[str, Any]],
) -> tuple[ChildLink, float]:
    # The child's submission id is its record's own: the payload's link leaves it empty.
    payload = task_payload(prompt, link, ancestors, overrides, attachments)
    draft = Draft(
        kind="task",
        session=CHILD_SESSION,
        payload=tracing.carried(payload),  # not hashed: a re-run call is the same call
        receipt_key=f"task:{child_ref(ctx.record.id, link.call_id)}",
        receipt_hash=input_hash("task", CHILD_SESSION, payload),
    )
    admission = await ctx.stores.ledger.admit(link.child, draft, now=ctx.clock())
    return dataclasses.replace(link, child_submission_id=admission.record.id), admission.record.accepted_at


async def _go(child_runs: ChildRuns, ctx: CallContext, link: ChildLink) -> None:
    await child_runs.start(link)
    await ctx.emit(
        ev.TaskStart,
        call_id=link.call_id,
        child=link.child.key,
        child_submission_id=link.child_submission_id,
        blocking=link.blocking,
    )


class TaskFamily(PlainFamily):
    def __init__(self, subagents: Sequence[Subagent], child_runs: ChildRuns) -> None:
        self.task = TaskBuiltin(subagents, child_runs)

    def builtins(self) -> Sequence[Builtin]:
        return [self.task]
