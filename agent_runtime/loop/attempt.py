"""The durable step machine over one claimed submission (steps in `loop.steps`).

    ApplyInput -> CallModel -> (Finish | RunTools -> (Commit -> CallModel ... | Suspend))

Every arrow is a checkpoint written through `Attempts` (fenced on the attempt), so a new
attempt resumes from the journal: the input is applied once, a recorded tool result is
never recomputed, and a call whose outcome is unknown gets a synthetic ``interrupted``
result unless its tool is idempotent (built-ins are runtime code and run again). Each
step returns the next step; `max_turns`, the submission's timeout, the invocation's
deadline and abort requests are checked at every boundary. No recursion, no unbounded
loop. Built-in tools are the router's (`loop.builtins`); the application's tools run in
`loop.tools`; the ending is written in `loop.settle`, the one place a submission settles.

An abort also reaches an attempt between boundaries: while a model call or a tool runs,
the attempt polls the submission's abort flag (`abort_poll_seconds`). A model stream is
then cancelled at once (nothing of the unfinished reply is kept); a running tool is told
through its context's abort signal and no further tool of the turn starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable
from typing import Any

from agent_runtime import events as ev
from agent_runtime import settings, tracing
from agent_runtime.children import link_of
from agent_runtime.definition import AgentConfig, AgentContext
from agent_runtime.dual import Side, turn_output
from agent_runtime.errors import AbortRequested, AgentRuntimeError
from agent_runtime.handoffs import owner_config
from agent_runtime.hooks import HookContext
from agent_runtime.ledger import Budget, Fence, Outcome, Phase, SubmissionRecord
from agent_runtime.loop.abort import cancelled_on_abort, reply_though_aborted, watching_abort
from agent_runtime.loop.builtins import CallContext, Handled, Router, replayed
from agent_runtime.loop.child_runs import ChildRuns, ParentNotices
from agent_runtime.loop.compacting import compact_if_needed
from agent_runtime.loop.context import FilesView, KVView, Surroundings
from agent_runtime.loop.hooks import HookRunner
from agent_runtime.loop.inputs import input_message, request_files
from agent_runtime.loop.session import SessionView
from agent_runtime.loop.settle import Settlement, settle_attempt
from agent_runtime.loop.sides import Sides
from agent_runtime.loop.steps import (
    ApplyInput,
    CallModel,
    Commit,
    Ended,
    Finish,
    RunTools,
    Step,
    Suspend,
    Yield,
)
from agent_runtime.loop.tools import (
    error_result,
    interrupted,
    results_message,
    run_tool,
    tool_call_fields,
    tool_start_fields,
)
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart, Usage
from agent_runtime.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    close_stream,
)
from agent_runtime.ports import Stores
from agent_runtime.streaming import EventStream
from agent_runtime.tools import AbortSignal, Tool, ToolContext

MAX_RESULT_REPAIRS = 3

#: Called after each checkpoint with the phase just written; tests inject crashes here.
Checkpoint = Callable[[Phase, SubmissionRecord], None]

log = logging.getLogger("agent_runtime")


class Attempt:
    """Runs one claimed submission until it settles, yields, suspends, or the attempt fails."""

    def __init__(
        self,
        *,
        stores: Stores,
        config: AgentConfig,
        context: AgentContext,
        model: Model,
        record: SubmissionRecord,
        budget: Budget,
        history: list[Message],
        clock: Callable[[], float],
        lease_seconds: float,
        invocation_deadline: float,
        stream: EventStream,
        router: Router | None = None,
        checkpoint: Checkpoint | None = None,
        abort_poll_seconds: float = settings.ABORT_POLL_SECONDS,
        child_runs: ChildRuns | None = None,
        models: Callable[[str | Model], Model] | None = None,
    ) -> None:
        assert record.attempt_id is not None
        self.stores = stores
        #: The instance's agent; `config` is the session owner's (after a handoff).
        self.root_config = config
        self.config = config
        self._models = models
        self.context = context
        self.model = model
        self.record = record
        self.budget = budget
        self.deadline = budget.deadline(record)
        self.history = history
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.invocation_deadline = invocation_deadline
        self.stream = stream
        self.child_runs = child_runs
        self.router = router or Router.for_config(config, child_runs=child_runs)
        link = link_of(record)
        self._parent_line = ParentNotices(child_runs, link, clock) if link and child_runs else None
        self.surroundings = Surroundings(stores, config, record.ref, self._emit, record=record, clock=clock)
        self._values: dict[str, str] | None = None
        self.on_checkpoint = checkpoint
        self.abort_poll_seconds = abort_poll_seconds
        self.fence = Fence.of(record)
        self.journal = record.journal.deep_copy()
        self.session = SessionView(stores, self.fence, self.journal)
        self.hooks = HookRunner(lambda: self.config.hooks, self.session, self._hook_context)
        self.sides = Sides(config, self.session)
        self.abort = AbortSignal()
        #: This attempt's tool calls: started, and those with a known result (kept by the
        #: store, or returned by the tool here even if an abort then refused to record it).
        self._started: set[str] = set()
        self._results: dict[str, ToolResultPart] = {}
        #: What settling wrote, once this attempt settled the submission.
        self.settlement: Settlement | None = None

    # --- events --------------------------------------------------------------------

    async def _emit(self, kind: Callable[..., ev.Event], *, flush: bool = False, **values: Any) -> None:
        await self.stream.emit(kind(**self.stream.fields(self.record.session, self.record.id), **values), flush=flush)

    # --- the machine ---------------------------------------------------------------

    async def run(self) -> Ended:
        """How the attempt ended: `Finish` (settled, see `settlement`), `Yield` (handed
        back, no attempt spent) or `Suspend` (waiting on its reason)."""
        await self._emit(ev.AgentStart, attempt=self.record.attempts)
        if self.root_config.handoffs:  # who owns the session decides what runs
            self._activate((await self.session.state()).owner)
        if self.sides.active:  # so does the speaking side
            await self.sides.start(fresh=not self.journal.applied)
            self._use(self.sides.config(), side=self.sides.side)
        step: Step = await self._resume()
        while True:
            if isinstance(step, Finish):
                step = await self.hooks.prepare_end(step)
                await self._settle(step)
                return step
            if isinstance(step, Yield):
                # At a boundary no call runs: the next attempt may run what is unrecorded.
                self.journal.handed_back = True
                await self.stores.attempts.release(
                    self.fence, now=self.clock(), resume=True, not_before=None, error=None, journal=self.journal
                )
                return step
            if isinstance(step, Suspend):
                await self.stores.attempts.suspend(self.fence, self.journal, reason=step.reason, now=self.clock())
                return step
            try:
                step = self._boundary() or await self._advance(step)
            except AbortRequested:
                step = self._finish(Finish.aborted())
            except _OutOfTime as out:
                step = out.step

    async def _advance(self, step: ApplyInput | CallModel | RunTools | Commit) -> Step:
        if isinstance(step, ApplyInput):
            return await self._apply_input()
        if isinstance(step, CallModel):
            return await self._call_model()
        if isinstance(step, RunTools):
            async with self._watching_abort():
                return await self._run_tools(step)
        return await self._commit(step)

    def _boundary(self) -> Step | None:
        now = self.clock()
        if self.deadline is not None and now >= self.deadline:
            return self._finish(Finish.failed("timeout", f"submission exceeded its timeout of {self.budget.timeout_s:g}s"))
        if now >= self.invocation_deadline:
            return Yield()
        return None

    async def _resume(self) -> Step:
        j = self.journal
        if not j.applied:
            return ApplyInput()
        if j.phase in (None, Phase.before_model, Phase.committed):
            return CallModel()
        last = self.history[-1] if self.history else None
        if last is None or last.role != "assistant":
            return CallModel()
        calls = last.tool_calls
        if j.phase is Phase.model_done and not calls:
            return self._side_turn_over([]) if self.sides.active else self._final_from_text(last)
        recovering = j.phase in (Phase.tools_requested, Phase.tool_result)
        return RunTools(calls, recovering=recovering, handed_back=recovering and j.handed_back)

    def _hook_context(self) -> HookContext:
        owner = self.session.loaded.owner if self.session.loaded else None
        return HookContext(
            self.fence.instance, self.record.session, self.record.id, owner or self.root_config.name, self.journal.turn,
            surroundings=self.surroundings,
        )

    # --- the session's owner ---------------------------------------------------------

    def _activate(self, owner: str | None) -> None:
        """Run as the session's `owner` from now on: its tools, built-ins and model."""
        self._use(owner_config(self.root_config, owner))

    def _use(self, config: AgentConfig, side: Side | None = None) -> None:
        if config is self.config and side is None:
            return
        self.config = config
        self.router = Router.for_config(config, child_runs=self.child_runs, side=side)
        if self._models is not None:
            self.model = self._models(config.model)

    def _side_turn_over(self, closing: list[Message]) -> Step:
        """The speaking side's turn ended with `closing` (written as its own): the other
        side speaks next, unless the session's turns ran out."""
        closing = self.sides.tag(closing)
        if not self.sides.end_turn():
            turns = self.root_config.max_session_turns
            return self._finish(Finish.failed("max_session_turns", f"no outcome after max_session_turns={turns}"), closing=closing)
        self._use(self.sides.config(), side=self.sides.side)
        return Commit(closing)

    async def _hand_to(self, target: str, call_id: str) -> None:
        await self.hooks.call("prepare_handoff", list(self.history))
        state = await self.session.state()
        await self._emit(ev.Handoff, flush=True, call_id=call_id, from_agent=state.owner or self.root_config.name, to_agent=target)
        state.owner = None if target == self.root_config.name else target
        self.session.changed()
        self._activate(state.owner)

    # --- steps ---------------------------------------------------------------------

    async def _write(self, phase: Phase, messages: list[Message] | None = None) -> None:
        messages = messages or []
        if self.sides.active and phase is not Phase.before_model:  # not the input: a side's
            messages = [m if m.compacts is not None else self.sides.tag([m])[0] for m in messages]
        self.journal.phase = phase
        self.journal.written += len(messages)
        await self.stores.attempts.checkpoint(
            self.fence, self.journal, now=self.clock(), lease_seconds=self.lease_seconds, messages=messages
        )
        self.history.extend(messages)
        if self.on_checkpoint:
            self.on_checkpoint(phase, self.record)

    async def _apply_input(self) -> Step:
        if self.record.abort_requested:  # asked to stop before it started: nothing to keep
            raise AbortRequested(self.record.id)
        message = input_message(self.record)
        # One put of its own; the journal that says so goes with the next checkpoint.
        await self.stores.attempts.record_input(self.fence, message)
        self.journal.applied, self.journal.turn, self.journal.phase = True, 1, Phase.before_model
        self.journal.written += 1
        self.history.append(message)
        if self.on_checkpoint:
            self.on_checkpoint(Phase.before_model, self.record)
        if self.record.kind == "child_report":  # silent: the model reads it on its next turn
            return Finish(Outcome.completed, text=message.text)
        return CallModel()

    async def _call_model(self) -> Step:
        if self.journal.turn > self.config.max_turns:
            return self._finish(Finish.failed("max_turns", f"stopped after max_turns={self.config.max_turns}"))
        over = self.root_config.budget.exceeded(self.journal.usage_by_model) if self.root_config.budget else None
        if over is not None:
            return self._finish(Finish.failed("budget_exceeded", f"the submission's budget is spent: {over}"))
        context = self.context
        if self.config.uses_variables:
            if self._values is None:  # read once per attempt
                self._values = await self.stores.variables.values(self.fence.instance)
            context = dataclasses.replace(context, context=await self.session.context())
        if self.sides.active and self.sides.step():
            label, steps = self.sides.side.label, self.sides.side.max_steps
            return self._side_turn_over([turn_output(f"[{label} stopped after max_steps={steps}]", self.sides.speaker)])
        system = self.config.render_instructions(context, self._values)
        tools = self.router.specs()
        compacted = await compact_if_needed(
            self.history,
            self.config,
            self.model,
            system=system,
            tools=tools,
            models=self._models,
            emit=self._emit,
            write=lambda summary: self._write(self.journal.phase or Phase.before_model, summary),
            account=self._account,
        )
        seen = self.sides.view(compacted) if self.sides.active else compacted
        # `messages` are `Message`s validated when they were made, in a list of this turn's
        # own (the view's, or the hooks'): the request takes them as they are, rather than
        # checking every one of a long session's messages again at each turn.
        messages = await self.hooks.messages(seen)
        request = ModelRequest(
            system=system,
            messages=[],
            tools=tools,
            tool_choice=self.router.tool_choice(),
            settings=self.config.model_settings,
            files=await request_files(self.stores, self.fence.instance, messages),
        ).model_copy(update={"messages": messages})
        turn = self.journal.turn
        await self._emit(ev.TurnStart, turn=turn)
        response = await self._stream(request)
        served = self.model.served_by(response)
        self._account(served, response.usage)
        await self._emit(ev.TurnEnd, turn=turn, usage=response.usage, model=served)
        message = response.message
        changed = await self.hooks.call("before_create_message", message)
        message = changed if isinstance(changed, Message) else message
        await self.hooks.call("after_create_message", message)
        if not message.tool_calls:
            if self.sides.active:
                return self._side_turn_over([message])
            return self._final_from_text(message, record=True)
        self.journal.pending_calls = [c.id for c in message.tool_calls]
        await self._write(Phase.model_done, [message])
        await self._write(Phase.tools_requested)
        return RunTools(message.tool_calls)

    async def _stream(self, request: ModelRequest) -> ModelResponse:
        """The model's reply, streamed as events. A call the invocation's deadline cuts
        off hands the submission back (nothing of the reply is kept, no attempt spent);
        one the submission's timeout cuts off ends it `failed`."""
        invocation_bound = self.invocation_deadline < (self.deadline or float("inf"))
        deadline = min(self.deadline or float("inf"), self.invocation_deadline)
        timeout = max(0.001, deadline - self.clock())
        limit = asyncio.timeout(timeout if timeout != float("inf") else None)
        try:
            async with limit, self._watching_abort():
                reply = tracing.model_call(self.model, self.journal.turn, self._read_stream(request))
                if self.abort.aborted:
                    return await reply_though_aborted(reply, self.record.id)
                async with cancelled_on_abort(self.abort, self.record.id):
                    return await reply
        except TimeoutError:
            if not limit.expired():
                raise  # the model's own timeout: a failed attempt
            if invocation_bound:
                raise _OutOfTime(Yield()) from None
            timed_out = Finish.failed("timeout", f"submission exceeded its timeout of {self.budget.timeout_s:g}s")
            raise _OutOfTime(self._finish(timed_out)) from None

    async def _read_stream(self, request: ModelRequest) -> ModelResponse:
        turn = self.journal.turn
        stream = self.model.stream(request)
        try:
            async for event in stream:
                if isinstance(event, ResponseDone):
                    return event.response
                if isinstance(event, TextDelta) and event.text:
                    await self._emit(ev.TextDelta, turn=turn, text=event.text)
                elif isinstance(event, ThinkingDelta) and event.thinking:
                    await self._emit(ev.ThinkingDelta, turn=turn, text=event.thinking)
        finally:
            await close_stream(stream)
        raise AgentRuntimeError(f"model {self.model.name} ended its stream without a response")

    def _watching_abort(self) -> contextlib.AbstractAsyncContextManager[None]:
        return watching_abort(self.stores.ledger, self.record, self.abort, self.abort_poll_seconds)

    def _final_from_text(self, message: Message, *, record: bool = False) -> Step:
        closing = [message] if record else []
        instruction = self.router.text_answer(message)
        if instruction is None:
            return Finish(Outcome.completed, text=message.text, closing=closing)
        return self._repair(closing, instruction)

    def _repair(self, closing: list[Message], instruction: str) -> Step:
        self.journal.repairs += 1
        if self.journal.repairs > MAX_RESULT_REPAIRS:
            failed = Finish.failed("invalid_result", f"no valid result after {MAX_RESULT_REPAIRS} repairs: {instruction}")
            return self._finish(failed, closing=closing)
        return Commit([*closing, Message.user(instruction, synthetic=True)])

    async def _run_tools(self, step: RunTools) -> Step:
        turn = self.journal.turn
        if step.handed_back:
            # Durably forget the clean hand-back before any call starts: if this attempt
            # dies inside a call, the next one must treat that call's outcome as unknown.
            self.journal.handed_back = False
            await self._write(self.journal.phase or Phase.tools_requested)
        unknown = step.recovering and not step.handed_back
        recorded = await self.stores.tool_results.of_turn(self.fence.instance, self.fence.sequence, turn) if step.recovering else {}
        results: list[ToolResultPart] = []
        ending: Handled | None = None
        repair = False
        suspend: str | None = None
        handoff: tuple[str, str] | None = None
        fail: str | None = None
        for call in step.calls:
            if self.abort.aborted:  # the calls left get "not run" results when it settles
                raise AbortRequested(self.record.id)
            builtin = self.router.builtin(call.name)
            if call.id in recorded:
                again = replayed(builtin, call, recorded[call.id])
                self._results[call.id] = again.result
                results.append(again.result)
                handoff = handoff or ((again.handoff, call.id) if again.handoff else None)
                ending, fail = ending or (again if again.ends else None), fail or again.fail
                repair = repair or again.repair
                continue
            silent = builtin is not None and builtin.silent
            if builtin is not None:
                if not silent:
                    await self._emit(ev.ToolStart, flush=True, **tool_start_fields(turn, call))
                handled = await tracing.tool_call(call, builtin.call(call, self._call_context(turn)))
                if handled.suspend is not None:
                    # Its result arrives with `Attempts.resume`; the other calls go on.
                    suspend = suspend or handled.suspend
                    continue
                part = handled.result
                if handled.handoff and handoff is not None:  # one transfer per turn
                    part = error_result(call, f"the conversation was already handed over in this turn; {call.name} not run")
                elif handled.handoff:
                    handoff = (handled.handoff, call.id)
                ending, fail = ending or (handled if handled.ends else None), fail or handled.fail
                repair = repair or handled.repair
                if handled.status is not None:
                    await self._set_status(handled.status)
            else:
                part = await self._run_own_tool(call, turn, unknown=unknown)
            if not silent:
                changed = await self.hooks.call("before_store_tool_result", call, part)
                if isinstance(changed, ToolResultPart):
                    part = changed.model_copy(update={"call_id": call.id, "name": call.name})
            self._results[call.id] = part
            await self.stores.tool_results.record(self.fence, turn, part, now=self.clock())
            results.append(part)
            if not silent:
                await self.hooks.call("after_tool_call_failure" if part.is_error else "after_tool_call_success", call, part)
            if not silent:
                await self._emit(ev.ToolCall, flush=True, **tool_call_fields(turn, part))
            if self.on_checkpoint:
                self.on_checkpoint(Phase.tool_result, self.record)
        if suspend is not None:
            return Suspend(suspend)
        if handoff is not None:
            await self._hand_to(*handoff)
        closing = [results_message(results)]
        if fail is not None:
            return self._finish(Finish.failed("session_failed", fail), closing=closing)
        if ending is not None:
            text = ending.text if ending.text is not None else _last_text(self.history)
            return Finish(Outcome.completed, text=text, data=ending.data, closing=closing)
        stopped = self.sides.stop_output(step.calls, results)
        if stopped is not None:
            return self._side_turn_over([*closing, turn_output(stopped, self.sides.speaker)])
        if repair:
            self.journal.repairs += 1
            if self.journal.repairs > MAX_RESULT_REPAIRS:
                failed = Finish.failed("invalid_result", f"result failed validation {self.journal.repairs} times")
                return self._finish(failed, closing=closing)
        return Commit(closing)

    async def _set_status(self, status: str) -> None:
        state = await self.session.state()
        state.status = status
        self.session.changed()
        await self._emit(ev.SessionStatus, flush=True, side=self.sides.side.label if self.sides.active else "", status=status)

    def _account(self, served: str, usage: Usage) -> None:
        """Count a model call's usage, in all and by the model that served it."""
        self.journal.usage = self.journal.usage + usage
        by_model = self.journal.usage_by_model
        by_model[served] = by_model.get(served, Usage()) + usage

    def _call_context(self, turn: int) -> CallContext:
        return CallContext(
            self.record, self.fence, turn, self.stores, self.clock, self._emit, self.history, self.model, self._models
        )

    async def _run_own_tool(self, call: ToolCallPart, turn: int, *, unknown: bool) -> ToolResultPart:
        """Run one of the agent's tools; `unknown`: an earlier attempt may have run it."""
        tool = self.config.tool_named(call.name)
        if unknown and not (tool and tool.idempotent):
            return interrupted(call, "interrupted: the runtime restarted while this call was running; its outcome is unknown")
        await self._emit(ev.ToolStart, flush=True, **tool_start_fields(turn, call))
        self._started.add(call.id)
        # A plain tool that takes no context never sees it (nor does an unknown one): the
        # session's state is then neither read for it nor compared after it.
        reaches_context = tool is not None and (type(tool) is not Tool or tool.context_param is not None)
        context = ToolContext(
            instance=self.fence.instance,
            session=self.record.session,
            submission_id=self.record.id,
            call_id=call.id,
            kv=KVView(self.stores.kv, self.fence.instance),
            abort=self.abort,
            parent=self._parent_line,
            files=FilesView(self.stores, self.fence, self.clock),
            surroundings=self.surroundings,
            context=await self.session.context() if reaches_context else {},
        )
        deadline = min(self.deadline or float("inf"), self.invocation_deadline + self.lease_seconds)
        timeout = max(0.001, deadline - self.clock()) if deadline != float("inf") else None
        before = self.session.snapshot() if reaches_context else None
        part = await tracing.tool_call(call, run_tool(self.config, call, context, seconds=timeout))
        refused = self.session.note_context(before) if reaches_context else None
        if refused is not None:
            part = error_result(call, refused)
        redacted = self.surroundings.redact(part.content)
        return part if redacted == part.content else part.model_copy(update={"content": redacted})

    async def _commit(self, step: Commit) -> Step:
        self.journal.pending_calls = []
        self.journal.turn += 1
        await self._write(Phase.committed, step.messages)
        return CallModel()

    # --- endings -------------------------------------------------------------------

    def _finish(self, finish: Finish, closing: list[Message] | None = None) -> Finish:
        """`finish` with the closing messages that keep the session's history well formed."""
        return Finish(
            finish.outcome,
            text=finish.text,
            data=finish.data,
            error=finish.error,
            closing=closing if closing is not None else self._close_pending(),
        )

    def _close_pending(self) -> list[Message]:
        """Results for calls left open, so the session's history stays well formed."""
        if not self.journal.pending_calls or not self.history or self.history[-1].role != "assistant":
            return []
        calls = [c for c in self.history[-1].tool_calls if c.id in self.journal.pending_calls]
        return [results_message([self._closing_result(c) for c in calls])] if calls else []

    def _closing_result(self, call: ToolCallPart) -> ToolResultPart:
        """A known result stands; otherwise say whether the call was running."""
        if call.id in self._results:
            return self._results[call.id]
        if call.id in self._started:
            return interrupted(call, "interrupted: the submission ended while this call ran; its outcome is unknown")
        return interrupted(call, "not run: the submission ended first")

    async def _settle(self, finish: Finish) -> None:
        await self.session.save(now=self.clock())
        ending, self.settlement, self.journal = await settle_attempt(
            self.stores.attempts,
            self.record,
            finish,
            now=self.clock,
            emit=self.stream.emit,
            fence=self.fence,
            journal=self.journal,
            child_runs=self.child_runs,
            aborted=lambda: self._finish(Finish.aborted()),  # with the open calls' results
        )
        self.history.extend(ending.closing)


class _OutOfTime(Exception):
    """A model call cut off by a deadline: the step the attempt takes instead."""

    def __init__(self, step: Yield | Finish) -> None:
        super().__init__()
        self.step = step


def _last_text(history: list[Message]) -> str:
    for message in reversed(history):
        if message.role == "assistant" and message.text:
            return message.text
    return ""
