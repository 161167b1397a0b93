"""The turn loop: an explicit step machine over one claimed submission.

    ApplyInput -> CallModel -> (Finish | RunTools -> Commit -> CallModel ...) -> settled

Every arrow is a checkpoint written through the store (fenced on the attempt), so a
new attempt resumes from the journal: the input is applied once, a recorded tool
result is never recomputed, and a call whose outcome is unknown gets a synthetic
``interrupted`` result unless its tool is idempotent. Each step returns the next
step; `max_turns`, the submission's timeout, the invocation's deadline and abort
requests are checked at every boundary. No recursion, no unbounded loop.

An abort also reaches an attempt between boundaries: while a model call or a tool runs,
the attempt polls the submission's abort flag (`abort_poll_seconds`). A model stream is
then cancelled at once (nothing of the unfinished reply is kept); a running tool is told
through its context's abort signal and no further tool of the turn starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from agent_runtime import events as ev
from agent_runtime import settings
from agent_runtime.definition import AgentConfig, AgentContext
from agent_runtime.errors import AbortRequested, AgentRuntimeError
from agent_runtime.ledger import Fence, Outcome, Phase, SubmissionRecord
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import (
    Model,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    TextDelta,
    ThinkingDelta,
    ToolSpec,
)
from agent_runtime.ports import InstanceStore
from agent_runtime.streaming import EventStream
from agent_runtime.tools import AbortSignal, ToolContext, ToolFailure, format_validation_error

FINAL_RESULT_TOOL = "final_result"
MAX_RESULT_REPAIRS = 3

#: Called after each checkpoint with the phase just written; tests inject crashes here.
Checkpoint = Callable[[Phase, SubmissionRecord], None]


# --- steps -------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyInput:
    pass


@dataclass(frozen=True)
class CallModel:
    pass


@dataclass(frozen=True)
class RunTools:
    calls: list[ToolCallPart]
    recovering: bool = False


@dataclass(frozen=True)
class Commit:
    """Append the turn's closing messages (tool results, or a repair prompt)."""

    messages: list[Message]


@dataclass(frozen=True)
class Finish:
    outcome: Outcome
    text: str = ""
    data: Any = None
    error: dict[str, Any] | None = None
    closing: list[Message] = field(default_factory=list)


@dataclass(frozen=True)
class Yield:
    """Out of invocation time at a boundary: hand the submission back, no attempt spent."""


Step = ApplyInput | CallModel | RunTools | Commit | Finish | Yield


class KVView:
    """The instance's kv as tools see it."""

    def __init__(self, store: InstanceStore, fence: Fence) -> None:
        self._store = store
        self._instance = fence.instance

    async def get(self, key: str) -> Any:
        return await self._store.kv_get(self._instance, key)

    async def put(self, key: str, value: Any) -> None:
        await self._store.kv_put(self._instance, key, value)

    async def delete(self, key: str) -> None:
        await self._store.kv_delete(self._instance, key)


def input_message(record: SubmissionRecord) -> Message:
    payload = record.payload
    if record.kind == "direct" and isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return Message.user(payload["message"])
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return Message.user(text)


log = logging.getLogger("agent_runtime")


class Attempt:
    """Runs one claimed submission until it settles, yields, or the attempt fails."""

    def __init__(
        self,
        *,
        store: InstanceStore,
        config: AgentConfig,
        model: Model,
        record: SubmissionRecord,
        history: list[Message],
        clock: Callable[[], float],
        lease_seconds: float,
        invocation_deadline: float,
        checkpoint: Checkpoint | None = None,
        stream: EventStream | None = None,
        abort_poll_seconds: float = settings.ABORT_POLL_SECONDS,
    ) -> None:
        assert record.attempt_id is not None
        self.store = store
        self.config = config
        self.model = model
        self.record = record
        self.history = history
        self.clock = clock
        self.lease_seconds = lease_seconds
        self.invocation_deadline = invocation_deadline
        self.on_checkpoint = checkpoint
        self.fence = Fence.of(record)
        self.journal = record.journal.model_copy(deep=True)
        self.abort = AbortSignal()
        self.abort_poll_seconds = abort_poll_seconds
        self.context = AgentContext(id=record.ref.id, agent=record.ref.agent)
        self.stream = stream
        #: This attempt's tool calls: started, and those with a known result (kept by the
        #: store, or returned by the tool here even if an abort then refused to record it).
        self._started: set[str] = set()
        self._results: dict[str, ToolResultPart] = {}
        #: How the submission ended, once this attempt settled it.
        self.ending: Finish | None = None

    # --- events --------------------------------------------------------------------

    def _fields(self) -> dict[str, Any]:
        assert self.stream is not None
        return self.stream.fields(self.record.session, self.record.id)

    async def _emit(self, kind: Callable[..., ev.Event], *, flush: bool = False, **values: Any) -> None:
        if self.stream is not None:
            await self.stream.emit(kind(**self._fields(), **values), flush=flush)

    # --- the machine ---------------------------------------------------------------

    async def run(self) -> bool:
        """True when the submission settled, False when it was handed back (`Yield`)."""
        await self._emit(ev.AgentStart, attempt=self.record.attempts)
        step: Step = await self._resume()
        while True:
            if isinstance(step, Finish):
                try:
                    await self._settle(step)
                except AbortRequested:
                    # An abort that arrived during the last model call still wins
                    # over a completed answer: the caller asked to stop.
                    await self._settle(self._finish(Outcome.aborted, {"type": "aborted", "message": "aborted on request"}))
                return True
            if isinstance(step, Yield):
                await self.store.release(self.fence, now=self.clock(), resume=True, not_before=None, error=None)
                return False
            try:
                step = self._boundary() or await self._advance(step)
            except AbortRequested:
                step = self._finish(Outcome.aborted, {"type": "aborted", "message": "aborted on request"})

    async def _advance(self, step: ApplyInput | CallModel | RunTools | Commit) -> Step:
        if isinstance(step, ApplyInput):
            return await self._apply_input()
        if isinstance(step, CallModel):
            return await self._call_model()
        if isinstance(step, RunTools):
            return await self._run_tools(step)
        return await self._commit(step)

    def _boundary(self) -> Step | None:
        now = self.clock()
        deadline = self.record.deadline
        if deadline is not None and now >= deadline:
            return self._finish(
                Outcome.failed,
                {"type": "timeout", "message": f"submission exceeded its timeout of {self.record.timeout_s:g}s"},
            )
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
            return self._final_from_text(last)
        return RunTools(calls, recovering=j.phase in (Phase.tools_requested, Phase.tool_result))

    # --- steps ---------------------------------------------------------------------

    async def _write(self, phase: Phase, messages: list[Message] | None = None) -> None:
        messages = messages or []
        self.journal.phase = phase
        self.journal.written += len(messages)
        await self.store.checkpoint(
            self.fence, self.journal, now=self.clock(), lease_seconds=self.lease_seconds, messages=messages
        )
        self.history.extend(messages)
        if self.on_checkpoint:
            self.on_checkpoint(phase, self.record)

    async def _apply_input(self) -> Step:
        self.journal.applied = True
        self.journal.turn = 1
        await self._write(Phase.before_model, [input_message(self.record)])
        return CallModel()

    def _tool_specs(self) -> list[ToolSpec]:
        specs = [t.spec for t in self.config.tools]
        if self.config.result is not None:
            schema = self.config.result.model_json_schema()
            specs.append(
                ToolSpec(
                    name=FINAL_RESULT_TOOL,
                    description="Give the final result. Call this exactly once, when the answer is complete.",
                    parameters=schema,
                )
            )
        return specs

    async def _call_model(self) -> Step:
        if self.journal.turn > self.config.max_turns:
            return self._finish(
                Outcome.failed, {"type": "max_turns", "message": f"stopped after max_turns={self.config.max_turns}"}
            )
        request = ModelRequest(
            system=self.config.render_instructions(self.context),
            messages=list(self.history),
            tools=self._tool_specs(),
            tool_choice="required" if self.config.result is not None else self.config.tool_choice,
            settings=self.config.model_settings,
        )
        turn = self.journal.turn
        await self._emit(ev.TurnStart, turn=turn)
        response = await self._stream(request)
        self.journal.usage = self.journal.usage + response.usage
        await self._emit(ev.TurnEnd, turn=turn, usage=response.usage)
        message = response.message
        if not message.tool_calls:
            return self._final_from_text(message, record=True)
        self.journal.pending_calls = [c.id for c in message.tool_calls]
        await self._write(Phase.model_done, [message])
        await self._write(Phase.tools_requested)
        return RunTools(message.tool_calls)

    async def _stream(self, request: ModelRequest) -> ModelResponse:
        deadline = min(self.record.deadline or float("inf"), self.invocation_deadline)
        timeout = max(0.001, deadline - self.clock())
        async with asyncio.timeout(timeout if timeout != float("inf") else None), self._watching_abort():
            reply = asyncio.ensure_future(self._read_stream(request))
            aborted = asyncio.ensure_future(self.abort.wait())
            try:
                await asyncio.wait((reply, aborted), return_when=asyncio.FIRST_COMPLETED)
            finally:
                aborted.cancel()
                if not reply.done():  # aborted, or this step was cancelled: stop the stream
                    reply.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await reply
            if not reply.done() or reply.cancelled():
                raise AbortRequested(self.record.id)
            return reply.result()

    async def _read_stream(self, request: ModelRequest) -> ModelResponse:
        turn = self.journal.turn
        async for event in self.model.stream(request):
            if isinstance(event, ResponseDone):
                return event.response
            if isinstance(event, TextDelta) and event.text:
                await self._emit(ev.TextDelta, turn=turn, text=event.text)
            elif isinstance(event, ThinkingDelta) and event.thinking:
                await self._emit(ev.ThinkingDelta, turn=turn, text=event.thinking)
        raise AgentRuntimeError(f"model {self.model.name} ended its stream without a response")

    @contextlib.asynccontextmanager
    async def _watching_abort(self) -> AsyncIterator[None]:
        """For the block's duration, poll the submission's abort flag and set `abort`."""
        if self.abort_poll_seconds <= 0 or self.abort.aborted:
            yield
            return
        poller = asyncio.ensure_future(self._poll_abort())
        try:
            yield
        finally:
            poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await poller

    async def _poll_abort(self) -> None:
        while not self.abort.aborted:
            await asyncio.sleep(self.abort_poll_seconds)
            try:
                requested = await self.store.abort_requested(self.fence.instance, self.record.id)
            except Exception:  # a failed read is retried next interval; boundaries still check
                log.warning("reading the abort flag of %s failed", self.record.id, exc_info=True)
                continue
            if requested:
                self.abort.abort("aborted on request")

    def _final_from_text(self, message: Message, *, record: bool = False) -> Step:
        closing = [message] if record else []
        if self.config.result is None:
            return Finish(Outcome.completed, text=message.text, closing=closing)
        # A result schema is set but the model answered in text: ask it to repair.
        return self._repair(closing, "Answer by calling the final_result tool with arguments matching its schema.")

    def _repair(self, closing: list[Message], instruction: str) -> Step:
        self.journal.repairs += 1
        if self.journal.repairs > MAX_RESULT_REPAIRS:
            return self._finish(
                Outcome.failed,
                {"type": "invalid_result", "message": f"no valid result after {MAX_RESULT_REPAIRS} repairs: {instruction}"},
                closing=closing,
            )
        return Commit([*closing, Message.user(instruction, synthetic=True)])

    async def _run_tools(self, step: RunTools) -> Step:
        async with self._watching_abort():
            return await self._run_tool_calls(step)

    async def _run_tool_calls(self, step: RunTools) -> Step:
        turn = self.journal.turn
        recorded = await self.store.tool_results(self.fence.instance, self.fence.sequence, turn) if step.recovering else {}
        results: list[ToolResultPart] = []
        final: tuple[ToolCallPart, BaseModel] | None = None
        for call in step.calls:
            if self.abort.aborted:  # the calls left get "not run" results when it settles
                raise AbortRequested(self.record.id)
            if call.id in recorded:
                self._results[call.id] = recorded[call.id]
                results.append(recorded[call.id])
                continue
            if call.name == FINAL_RESULT_TOOL and self.config.result is not None:
                part, value = self._check_result(call)
                if value is not None and final is None:
                    final = (call, value)
            else:
                tool = self.config.tool_named(call.name)
                if step.recovering and not (tool and tool.idempotent):
                    part = ToolResultPart(
                        call_id=call.id,
                        name=call.name,
                        content="interrupted: the runtime restarted while this call was running; its outcome is unknown",
                        is_error=True,
                        status="interrupted",
                    )
                else:
                    await self._emit(ev.ToolStart, flush=True, **_tool_start(turn, call))
                    self._started.add(call.id)
                    part = await self._run_tool(call)
            self._results[call.id] = part
            await self.store.record_tool_result(self.fence, turn, part, now=self.clock())
            results.append(part)
            if call.name != FINAL_RESULT_TOOL:
                await self._emit(ev.ToolCall, flush=True, **_tool_call(turn, part))
            if self.on_checkpoint:
                self.on_checkpoint(Phase.tool_result, self.record)
        if final is not None:
            call, value = final
            return Finish(
                Outcome.completed,
                text=_last_text(self.history),
                data=value.model_dump(mode="json"),
                closing=[_results_message(results)],
            )
        if self.config.result is not None and any(
            r.is_error for r, c in zip(results, step.calls, strict=True) if c.name == FINAL_RESULT_TOOL
        ):
            self.journal.repairs += 1
            if self.journal.repairs > MAX_RESULT_REPAIRS:
                return self._finish(
                    Outcome.failed,
                    {"type": "invalid_result", "message": f"result failed validation {self.journal.repairs} times"},
                    closing=[_results_message(results)],
                )
        return Commit([_results_message(results)])

    def _check_result(self, call: ToolCallPart) -> tuple[ToolResultPart, BaseModel | None]:
        assert self.config.result is not None
        try:
            value = self.config.result.model_validate(call.arguments)
        except ValidationError as exc:
            content = format_validation_error(exc) + ". Fix the arguments and call final_result again."
            return ToolResultPart(call_id=call.id, name=call.name, content=content, is_error=True, status="error"), None
        return ToolResultPart(call_id=call.id, name=call.name, content="result accepted"), value

    async def _run_tool(self, call: ToolCallPart) -> ToolResultPart:
        tool = self.config.tool_named(call.name)
        if tool is None:
            known = ", ".join(t.name for t in self.config.tools) or "none"
            return _error(call, f"unknown tool {call.name!r} (available: {known})")
        context = ToolContext(
            instance=self.fence.instance,
            session=self.record.session,
            submission_id=self.record.id,
            call_id=call.id,
            kv=KVView(self.store, self.fence),
            abort=self.abort,
        )
        deadline = min(self.record.deadline or float("inf"), self.invocation_deadline + self.lease_seconds)
        try:
            async with asyncio.timeout(max(0.001, deadline - self.clock()) if deadline != float("inf") else None):
                content = await tool.call(call.arguments, context)
        except ValidationError as exc:
            return _error(call, format_validation_error(exc))
        except ToolFailure as exc:
            return _error(call, str(exc))
        except TimeoutError:
            return _error(call, "the tool did not finish before the submission's deadline")
        except Exception as exc:  # a tool's bug goes back to the model, not into the ledger
            return _error(call, f"{type(exc).__name__}: {exc}")
        return ToolResultPart(call_id=call.id, name=call.name, content=content)

    async def _commit(self, step: Commit) -> Step:
        self.journal.pending_calls = []
        self.journal.turn += 1
        await self._write(Phase.committed, step.messages)
        return CallModel()

    # --- endings -------------------------------------------------------------------

    def _finish(self, outcome: Outcome, error: dict[str, Any], closing: list[Message] | None = None) -> Finish:
        return Finish(outcome, error=error, closing=closing if closing is not None else self._close_pending())

    def _close_pending(self) -> list[Message]:
        """Results for calls left open, so the session's history stays well formed."""
        if not self.journal.pending_calls or not self.history or self.history[-1].role != "assistant":
            return []
        calls = [c for c in self.history[-1].tool_calls if c.id in self.journal.pending_calls]
        return [_results_message([self._closing_result(c) for c in calls])] if calls else []

    def _closing_result(self, call: ToolCallPart) -> ToolResultPart:
        """A known result stands; otherwise say whether the call was running."""
        if call.id in self._results:
            return self._results[call.id]
        if call.id in self._started:
            content = "interrupted: the submission ended while this call ran; its outcome is unknown"
        else:
            content = "not run: the submission ended first"
        return ToolResultPart(call_id=call.id, name=call.name, content=content, is_error=True, status="interrupted")

    async def _settle(self, finish: Finish) -> None:
        self.journal = self.journal.model_copy(deep=True)
        self.journal.phase = Phase.committed
        self.journal.pending_calls = []
        self.journal.written += len(finish.closing)
        result = None
        if finish.outcome is Outcome.completed:
            result = {"text": finish.text, "data": finish.data, "usage": self.journal.usage.model_dump()}
        await self.store.settle(
            self.fence.instance,
            self.record.id,
            finish.outcome,
            now=self.clock(),
            fence=self.fence,
            result=result,
            error=finish.error,
            journal=self.journal,
            messages=finish.closing,
            honour_abort=finish.outcome is Outcome.completed,
        )
        self.ending = finish
        self.history.extend(finish.closing)
        await self._emit(ev.AgentEnd, outcome=finish.outcome, result=result, error=finish.error)
        # Flushed by the drain: with the next claim, or together with `idle`.
        await self._emit(ev.SubmissionSettled, outcome=finish.outcome)


def _tool_start(turn: int, call: ToolCallPart) -> dict[str, Any]:
    truncated = len(json.dumps(call.arguments)) > ev.EVENT_TEXT_MAX
    return dict(turn=turn, call_id=call.id, name=call.name, arguments={} if truncated else call.arguments, truncated=truncated)


def _tool_call(turn: int, part: ToolResultPart) -> dict[str, Any]:
    content, truncated = ev.clip(part.content)
    return dict(
        turn=turn,
        call_id=part.call_id,
        name=part.name,
        status=part.status,
        result=None if part.is_error else content,
        error=content if part.is_error else None,
        truncated=truncated,
    )


def _error(call: ToolCallPart, message: str) -> ToolResultPart:
    return ToolResultPart(call_id=call.id, name=call.name, content=message, is_error=True, status="error")


def _results_message(results: list[ToolResultPart]) -> Message:
    return Message(role="user", parts=list(results))


def _last_text(history: list[Message]) -> str:
    for message in reversed(history):
        if message.role == "assistant" and message.text:
            return message.text
    return ""

