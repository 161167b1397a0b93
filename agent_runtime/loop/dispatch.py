"""Trusted dispatch: an agent module's `on_dispatch(ctx)` handles dispatched input in
application code, inside the durable lifecycle (admission, FIFO order, timeout, abort,
retries, the one settle path) instead of a coordinator model turn.

    async def on_dispatch(ctx):
        out = await ctx.session.task(json.dumps(ctx.input), agent="policy_researcher", result=Quote)
        return out.data                                  # the submission's result

The handler is replayed: every attempt runs it from the start. Each awaited
`ctx.session.task` is step n of the run (call id ``dispatch-<n>``). A step whose result is
recorded returns it at once, so a finished step is never re-run; a step without one
starts its child (by receipt: a step in flight finds its child again instead of starting
a second) and the submission waits, holding no Lambda, until the child settles; then the
handler runs again and finds the result. Code between tasks runs again on every replay:
keep its side effects idempotent, or put them in tasks.

What the handler returns is the submission's result: a `str` is its ``text``, a pydantic
model or any JSON value its ``data``. An exception fails the attempt (retried within the
budget); one raised after an abort, or returning after it, ends the submission aborted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_runtime import events as ev
from agent_runtime.children import TaskOutcome, wait_reason
from agent_runtime.definition import AgentConfig
from agent_runtime.errors import AgentRuntimeError, UserError
from agent_runtime.ids import InstanceRef, validate_session
from agent_runtime.ledger import (
    Admission,
    Budget,
    Draft,
    Fence,
    Outcome,
    Phase,
    SubmissionRecord,
    canonical_json,
    check_input_size,
    input_hash,
)
from agent_runtime.loop.abort import watching_abort
from agent_runtime.loop.builtins import CallContext
from agent_runtime.loop.builtins.task import ChildRefused, start_child
from agent_runtime.loop.child_runs import ChildRuns
from agent_runtime.loop.context import FilesView, KVView, Surroundings
from agent_runtime.loop.settle import Settlement, settle_attempt
from agent_runtime.loop.steps import Ended, Finish, Suspend, Yield
from agent_runtime.messages import Message, ToolResultPart
from agent_runtime.ports import Stores
from agent_runtime.streaming import EventStream
from agent_runtime.task_overrides import ToolsMode, overrides_for
from agent_runtime.tools import AbortSignal, SchedulesEffects, Tool

DISPATCH_TURN = 1


class TaskFailed(AgentRuntimeError):
    """A `session.task` child failed, was aborted, or never answered; `message` says how.
    Uncaught, it fails the submission at once: the child's outcome is recorded, so
    another attempt would meet the same one."""

    type = "task_failed"
    permanent = True


class DispatchSession:
    """`ctx.session`: runs named subagents of the agent as children, one step per call."""

    def __init__(self, run: DispatchAttempt) -> None:
        self._run = run
        self._steps = 0
        self._prompts = 0

    async def prompt(self, message: str, *, session: str | None = None) -> str:
        """Queue `message` as a prompt to this instance (in `session`, this one by default);
        the model answers it once this submission has ended. Returns its submission id.
        Run again after a crash, the same call queues nothing new."""
        if not isinstance(message, str) or not message.strip():
            raise UserError("session.prompt takes a non-empty message")
        self._prompts += 1
        return await self._run.queue_prompt(message, session or self._run.record.session, self._prompts)

    async def task(
        self,
        prompt: str,
        *,
        agent: str,
        result: type[BaseModel] | None = None,
        tools: list[Tool] | None = None,
        images: list[str | bytes] | None = None,
        signal: AbortSignal | None = None,
        tools_mode: ToolsMode = "extend",
    ) -> TaskOutcome:
        """Run `agent` (one of the agent's subagents) on `prompt` and wait for its answer.
        `result` is the child's result schema for this call (its answer comes back as
        `.data`); `tools` extend (or, with ``tools_mode="replace"``, replace) its tools."""
        overrides = overrides_for(result, tools, tools_mode)
        _check_images(images)
        self._steps += 1
        return await self._run.step(f"dispatch-{self._steps}", prompt, agent, result, overrides, images or [])


@dataclass(frozen=True)
class DispatchContext(SchedulesEffects):
    """What `on_dispatch(ctx)` (and an effect, `agent_runtime.effects`) sees."""

    input: Any
    dispatch_id: str | None
    submission_id: str
    instance: InstanceRef
    session_name: str
    session: DispatchSession
    signal: AbortSignal
    #: The instance's kv and files (writes fenced by the attempt), as tools have them.
    kv: KVView
    files: FilesView
    surroundings: Surroundings
    #: Set when this run is an effect's (`agent_runtime.effects`); `input` is then its args.
    effect_id: str | None = None

    async def env(self, name: str) -> str | None:
        """A plain variable's value (see `ToolContext.env`)."""
        return await self.surroundings.env(name)

    async def secret(self, name: str) -> str | None:
        """A secret's value (see `ToolContext.secret`); kept out of the result and events."""
        return await self.surroundings.secret(name)

    async def emit(self, name: str, data: Any = None) -> None:
        """A ``custom`` event in the instance's log."""
        await self.surroundings.emit(name, data)

    def _around(self) -> Surroundings:
        return self.surroundings

    def _effects_scope(self) -> str:
        return "dispatch"


class _Wait(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DispatchAttempt:
    """One attempt at a dispatched submission of an agent with `on_dispatch`."""

    def __init__(
        self,
        *,
        handler: Callable[..., Any],
        stores: Stores,
        config: AgentConfig,
        record: SubmissionRecord,
        budget: Budget,
        history: list[Message],
        clock: Callable[[], float],
        lease_seconds: float,
        invocation_deadline: float,
        stream: EventStream,
        child_runs: ChildRuns | None,
        abort_poll_seconds: float,
        admit: Callable[[InstanceRef, Draft], Awaitable[Admission]] | None = None,
    ) -> None:
        self.handler = handler
        self.stores = stores
        self.config = config
        self.record = record
        self.budget = budget
        self.history = history
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.invocation_deadline = invocation_deadline
        self.stream = stream
        self.child_runs = child_runs
        self.abort_poll_seconds = abort_poll_seconds
        self._admit = admit
        self.fence = Fence.of(record)
        self.journal = record.journal.deep_copy()
        self.abort = AbortSignal()
        self.settlement: Settlement | None = None
        self._recorded: dict[str, ToolResultPart] = {}
        self.surroundings = Surroundings(stores, config, record.ref, self._emit, record=record, clock=clock)

    async def _emit(self, kind: Callable[..., ev.Event], **values: Any) -> None:
        await self.stream.emit(kind(**self.stream.fields(self.record.session, self.record.id), **values))

    async def run(self) -> Ended:
        await self._emit(ev.AgentStart, attempt=self.record.attempts)
        if not self.journal.applied:
            self.journal.applied, self.journal.turn, self.journal.phase = True, DISPATCH_TURN, Phase.tools_requested
            await self.stores.attempts.checkpoint(self.fence, self.journal, now=self.clock(), lease_seconds=self.lease_seconds)
        self._recorded = await self.stores.tool_results.of_turn(self.fence.instance, self.fence.sequence, DISPATCH_TURN)
        effect = self.record.kind == "effect" and isinstance(self.record.payload, dict)
        ctx = DispatchContext(
            input=self.record.payload.get("args", {}) if effect else self.record.payload,
            effect_id=self.record.payload.get("effect_id") if effect else None,
            dispatch_id=self.record.dispatch_id,
            submission_id=self.record.id,
            instance=self.record.ref,
            session_name=self.record.session,
            session=DispatchSession(self),
            signal=self.abort,
            kv=KVView(self.stores.kv, self.record.ref),
            files=FilesView(self.stores, self.fence, self.clock),
            surroundings=self.surroundings,
        )
        deadline = min(self.budget.deadline(self.record) or float("inf"), self.invocation_deadline)
        invocation_bound = self.invocation_deadline < (self.budget.deadline(self.record) or float("inf"))
        try:
            async with watching_abort(self.stores.ledger, self.record, self.abort, self.abort_poll_seconds):
                async with asyncio.timeout(max(0.001, deadline - self.clock())):
                    value = self.handler(ctx)
                    if inspect.isawaitable(value):
                        value = await value
        except _Wait as wait:
            await self.stores.attempts.suspend(self.fence, self.journal, reason=wait.reason, now=self.clock())
            return Suspend(wait.reason)
        except TimeoutError:
            if invocation_bound:  # out of invocation time: hand back, no attempt spent
                await self.stores.attempts.release(self.fence, now=self.clock(), resume=True, not_before=None, error=None)
                return Yield()
            return await self._settle(Finish.failed("timeout", f"submission exceeded its timeout of {self.budget.timeout_s:g}s"))
        except Exception:
            if self.abort.aborted:
                return await self._settle(Finish.aborted())
            raise
        if self.abort.aborted:
            return await self._settle(Finish.aborted())
        return await self._settle(_finish_with(self.surroundings.redact_data(_plain(value))))

    async def step(
        self,
        call_id: str,
        prompt: str,
        agent: str,
        result: type[BaseModel] | None,
        overrides: dict[str, Any],
        images: list[str | bytes],
    ) -> TaskOutcome:
        """One `session.task`: its recorded result, or its child started and a wait."""
        spec = next((s for s in self.config.subagents if s.name == agent), None)
        if spec is None:
            known = ", ".join(s.name for s in self.config.subagents) or "none"
            raise UserError(f"session.task: unknown subagent {agent!r} (available: {known})")
        part = self._recorded.get(call_id)
        if part is not None:
            return _outcome(part, result)
        if self.child_runs is None:
            raise UserError("session.task needs a children driver, which this runtime has none of")
        ctx = CallContext(self.record, self.fence, DISPATCH_TURN, self.stores, self.clock, self._emit)
        try:
            spec = dataclasses.replace(spec, blocking=True, resumable=None)
            link = await start_child(
                self.child_runs, ctx, spec, prompt, call_id, overrides=overrides, attachments=images
            )
        except ChildRefused as exc:
            raise TaskFailed(str(exc)) from None
        raise _Wait(wait_reason(link))

    async def queue_prompt(self, message: str, session: str, n: int) -> str:
        """`session.prompt`: a direct prompt to this instance, admitted once per call site."""
        if self._admit is None:
            raise UserError("session.prompt needs a runtime that admits submissions, which this one has none of")
        payload = {"message": message}
        check_input_size(payload)
        key = f"prompt:{self.record.id}-p{n}"
        draft = Draft(
            kind="direct",
            session=validate_session(session),
            payload=payload,
            receipt_key=key,
            receipt_hash=input_hash("direct", session, payload),
        )
        admission = await self._admit(self.record.ref, draft)
        return admission.record.id

    async def _settle(self, finish: Finish) -> Finish:
        ending, self.settlement, self.journal = await settle_attempt(
            self.stores.attempts,
            self.record,
            finish,
            now=self.clock,
            emit=self.stream.emit,
            fence=self.fence,
            journal=self.journal,
            child_runs=self.child_runs,
        )
        return ending


def _check_images(images: list[str | bytes] | None) -> None:
    """`session.task(images=...)`: paths of the instance's files, or image bytes."""
    if images is not None and (not isinstance(images, list) or not all(isinstance(i, str | bytes) for i in images)):
        raise UserError("session.task(images=...) takes a list of file paths (str) or image bytes")


def _outcome(part: ToolResultPart, result: type[BaseModel] | None) -> TaskOutcome:
    if part.is_error:
        raise TaskFailed(part.content)
    if result is None:
        return TaskOutcome(text=part.content)
    try:
        return TaskOutcome(text=part.content, data=result.model_validate_json(part.content))
    except ValidationError as exc:
        raise TaskFailed(f"the subagent's answer is not a valid {result.__name__}: {exc.error_count()} error(s)") from None


def _plain(value: Any) -> Any:
    return value.model_dump(mode="json") if isinstance(value, BaseModel) else value


def _finish_with(value: Any) -> Finish:
    if isinstance(value, str):
        return Finish(Outcome.completed, text=value)
    if isinstance(value, BaseModel):
        return Finish(Outcome.completed, data=value.model_dump(mode="json"))
    canonical_json(value)  # refuses what is not JSON, loudly
    return Finish(Outcome.completed, data=value)
