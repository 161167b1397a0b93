"""`subagent_create` and `subagent_message`: children that live on (Standard Agents).

Offered when an agent has subagents marked ``resumable=Resumable(...)``. A create call
starts a new child instance of one of them with its first message, exactly like `task`
(same ids, receipts, blocking or not), and lists it as resumable under the parent; it
is refused, as a tool error naming the live ones, once the parent has `max_instances`
children of that subagent. A message call sends the child with that ref its next
message: a new submission in the child's FIFO, continuing the child's session, so it
remembers what it was told before. How the child talks back is the subagent's:
blocking, the call's result is its answer; otherwise ``implicit`` reports each finished
message to the parent as a `child_report`, and ``explicit`` only what its tools send
with `ctx.notify_parent(text)` (a failure is always reported).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.children import RESUMABLE_TOOLS, agent_name_of
from agent_runtime.definition import Subagent
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.builtins.task import (
    ChildRefused,
    TaskArguments,
    delegation_parameters,
    message_child,
    start_child,
    started,
    validated,
)
from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart
from agent_runtime.models.base import ToolSpec
from agent_runtime.ports import ChildEntry

CREATE_TOOL, MESSAGE_TOOL = RESUMABLE_TOOLS


class MessageArguments(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    ref: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1)


def _how_it_answers(spec: Subagent) -> str:
    if spec.blocking:
        return "you get its answer as the result"
    if spec.resumable and spec.resumable.parent_communication == "explicit":
        return "it runs on its own and writes to you when it has something to say"
    return "it runs on its own; each finished message is reported to you"


async def _children_of(ctx: CallContext, spec: Subagent) -> list[ChildEntry]:
    """The parent's resumable children of `spec`."""
    found: list[ChildEntry] = []
    after: str | None = None
    agent = agent_name_of(spec.name)
    while True:
        page = await ctx.stores.child_index.page(ctx.record.ref, after=after, limit=100)
        found += [e for e in page if e.resumable and e.child.agent == agent]
        if len(page) < 100:
            return found
        after = page[-1].ref


class SubagentCreate:
    silent = False

    def __init__(self, subagents: dict[str, Subagent], child_runs: ChildRuns) -> None:
        self.subagents = subagents
        self.child_runs = child_runs
        listing = "\n".join(
            f"- {s.name}: {s.profile.description} (at most {s.resumable.max_instances if s.resumable else 1}; "
            f"{_how_it_answers(s)})"
            for s in subagents.values()
        )
        self.spec = ToolSpec(
            name=CREATE_TOOL,
            description=(
                "Create a subagent that lives on: it sees only your prompt, not this conversation, "
                "and keeps its own conversation, so you can send it more with subagent_message "
                f"using the ref this returns. Subagents:\n{listing}"
            ),
            parameters=delegation_parameters(list(subagents), "Its first message: everything it needs to know."),
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(TaskArguments, call)
        if isinstance(args, Handled):
            return args
        spec = self.subagents.get(args.agent)
        if spec is None or spec.resumable is None:
            return Handled(
                error_result(
                    call,
                    f"unknown subagent {args.agent!r} (available: {', '.join(self.subagents)})",
                )
            )
        live = await _children_of(ctx, spec)
        # A call run again after a crash finds its own child among them: not a new one.
        own = next(
            (e for e in live if e.call_id == call.id and e.parent_submission_id == ctx.record.id),
            None,
        )
        if own is None and len(live) >= spec.resumable.max_instances:
            refs = ", ".join(e.ref for e in live)
            return Handled(
                error_result(
                    call,
                    f"{args.agent} already has {len(live)} of at most {spec.resumable.max_instances} instances "
                    f"(refs: {refs}); send one of them a message with {MESSAGE_TOOL} instead",
                )
            )
        try:
            link = await start_child(
                self.child_runs, ctx, spec, args.prompt, call.id, tool=CREATE_TOOL, attachments=args.attachments
            )
        except ChildRefused as exc:
            return Handled(error_result(call, str(exc)))
        return started(
            call, link, f"created {args.agent} with ref {link.ref}; {_how_it_answers(spec)}"
        )


class SubagentMessage:
    silent = False

    def __init__(self, subagents: dict[str, Subagent], child_runs: ChildRuns) -> None:
        self.subagents = {agent_name_of(s.name): s for s in subagents.values()}
        self.child_runs = child_runs
        self.spec = ToolSpec(
            name=MESSAGE_TOOL,
            description=(
                f"Send a message to a subagent you created with {CREATE_TOOL}, by its ref. It continues "
                "its own conversation; messages to a busy subagent wait their turn."
            ),
            parameters={
                "type": "object",
                "properties": {
                    "ref": {"type": "string", "description": f"The ref {CREATE_TOOL} returned."},
                    "message": {
                        "type": "string",
                        "minLength": 1,
                        "description": "What to tell it.",
                    },
                },
                "required": ["ref", "message"],
                "additionalProperties": False,
            },
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(MessageArguments, call)
        if isinstance(args, Handled):
            return args
        entry = await ctx.stores.child_index.get(ctx.record.ref, args.ref)
        spec = self.subagents.get(entry.child.agent) if entry is not None else None
        if entry is None or not entry.resumable or spec is None:
            return Handled(
                error_result(
                    call, f"no subagent with ref {args.ref!r}: create one with {CREATE_TOOL}"
                )
            )
        link = await message_child(
            self.child_runs, ctx, spec, entry, args.message, call.id, tool=MESSAGE_TOOL
        )
        return started(
            call, link, f"sent to {spec.name} (ref {entry.ref}); {_how_it_answers(spec)}"
        )


class ResumableFamily(PlainFamily):
    def __init__(self, subagents: Sequence[Subagent], child_runs: ChildRuns) -> None:
        by_name = {s.name: s for s in subagents}
        self.create = SubagentCreate(by_name, child_runs)
        self.message = SubagentMessage(by_name, child_runs)

    def builtins(self) -> Sequence[Builtin]:
        return [self.create, self.message]
