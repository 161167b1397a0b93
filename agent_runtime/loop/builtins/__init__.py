"""Built-in tools: everything a model can call that is not the application's own tool.

One router per attempt (`Router.for_config`) decides which built-ins exist for the
session's active configuration, gives the model their specs next to the agent's tools,
and runs a call by name. The step machine knows built-ins only through this router:

    Router.specs()          what the model is offered this turn
    Router.tool_choice()    what the model must do (a result schema requires a tool call)
    Router.builtin(name)    the built-in behind a call, or None for the agent's own tool
    Router.text_answer(m)   None when a plain text answer ends the submission, else the
                            instruction for a repair turn

A built-in's call returns `Handled`: the tool result to record, and what it asks of the
turn (end the submission with data, a repair turn, or a suspension on a reason). One
module per family, each adding its built-ins in `_FAMILIES`:

    result.py     final_result (a result schema)
    task.py       task (subagents, as child instances)
    resumable.py  subagent_create, subagent_message (resumable subagents)
    files.py      read_file, write_file, list_files, grep_files, find_files (file_tools=...)
    handoff.py    transfer_to_<snake name> (handoffs=...)
    agent_tools.py  profiles as tools (profile.as_tool(...))
    subprompt.py  one model step as a tool (subprompt(...))
    lifecycle.py  a two-sided agent's session_stop / session_fail / session_status
    skills.py     load_skill (skills=...)

A built-in may also answer `replayed(call, part)`: what a result recorded before a crash
asks of the turn (a transfer moves the session again); without it a recorded result
asks nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from agent_runtime.definition import AgentConfig
from agent_runtime.dual import Side
from agent_runtime.ledger import Fence, SubmissionRecord
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import Model, ToolChoice, ToolSpec
from agent_runtime.ports import Stores

if TYPE_CHECKING:
    from agent_runtime.loop.child_runs import ChildRuns

_NO_DATA: Any = object()


@dataclass(frozen=True)
class Handled:
    """What a built-in call did. `data`, when given, ends the submission `completed` with
    it once the turn's results are recorded; `repair` asks the model to try again (each
    turn with one counts against the repair budget); `suspend` names what the submission
    waits on (the call's result arrives through `Attempts.resume`); `handoff` names the
    agent the session moves to."""

    result: ToolResultPart
    data: Any = _NO_DATA
    repair: bool = False
    suspend: str | None = None
    #: The profile the session moves to once the turn's results are recorded.
    handoff: str | None = None
    #: With `data`: the ending's text. A two-sided agent's lifecycle: end failed with
    #: `fail`; set the session's `status`.
    text: str | None = None
    fail: str | None = None
    status: str | None = None

    @property
    def ends(self) -> bool:
        return self.data is not _NO_DATA


@dataclass(frozen=True)
class CallContext:
    """What a built-in may use: the attempt's fence and record, the turn, the stores, the
    clock, and `emit(EventType, **fields)` into the submission's event stream."""

    record: SubmissionRecord
    fence: Fence
    turn: int
    stores: Stores
    clock: Callable[[], float]
    emit: Callable[..., Awaitable[None]]
    #: The session's conversation so far, and the model the caller runs on (subprompts).
    history: Sequence[Message] = ()
    model: Model | None = None
    models: Callable[[str | Model], Model] | None = None


class Builtin(Protocol):
    spec: ToolSpec
    #: Silent built-ins emit no `tool_start` / `tool_call` events (`final_result`).
    silent: bool

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled: ...


def replayed(builtin: Builtin | None, call: ToolCallPart, part: ToolResultPart) -> Handled:
    """What a recorded result asks of the turn (`Builtin.replayed`, if the built-in has it)."""
    again = getattr(builtin, "replayed", None)
    return again(call, part) if again is not None else Handled(part)


class Family(Protocol):
    """A family of built-ins: which exist for a configuration, and its say on text answers."""

    def builtins(self) -> Sequence[Builtin]: ...

    def text_answer(self, message: Message) -> str | None: ...

    def tool_choice(self, choice: ToolChoice) -> ToolChoice: ...


class PlainFamily:
    """A family with no say on text answers or tool choice (most of them)."""

    def text_answer(self, message: Message) -> str | None:
        return None

    def tool_choice(self, choice: ToolChoice) -> ToolChoice:
        return choice


class Router:
    def __init__(self, config: AgentConfig, families: Sequence[Family] = ()) -> None:
        self.config = config
        self.families = tuple(families)
        self._builtins = {b.spec.name: b for f in self.families for b in f.builtins()}

    @classmethod
    def for_config(
        cls, config: AgentConfig, *extra: Family, child_runs: ChildRuns | None = None, side: Side | None = None
    ) -> Router:
        """The built-ins of `config`; `extra` families join them (tests, later features).
        `task` needs a way to run children: without one, subagents are not offered."""
        # Each family is imported only when a configuration has it: a plain agent's
        # attempt imports none (and a cold start loads only the families it uses).
        families: list[Family] = []
        if config.result is not None:
            from agent_runtime.loop.builtins.result import ResultFamily

            families.append(ResultFamily(config.result))
        one_shot = [s for s in config.subagents if s.resumable is None]
        resumable = [s for s in config.subagents if s.resumable is not None]
        if one_shot and child_runs is not None:
            from agent_runtime.loop.builtins.task import TaskFamily

            families.append(TaskFamily(one_shot, child_runs))
        if resumable and child_runs is not None:
            from agent_runtime.loop.builtins.resumable import ResumableFamily

            families.append(ResumableFamily(resumable, child_runs))
        if config.file_tools:
            from agent_runtime.loop.builtins.files import FilesFamily

            families.append(FilesFamily(config.file_tools))
        if config.handoffs:
            from agent_runtime.loop.builtins.handoff import HandoffFamily

            families.append(HandoffFamily(config))
        if config.agent_tools and child_runs is not None:
            from agent_runtime.loop.builtins.agent_tools import AgentToolsFamily

            families.append(AgentToolsFamily(config.agent_tools, child_runs))
        if config.subprompts:
            from agent_runtime.loop.builtins.subprompt import SubpromptFamily

            families.append(SubpromptFamily(config.subprompts))
        if side is not None:
            from agent_runtime.loop.builtins.lifecycle import LifecycleFamily

            families.append(LifecycleFamily(side))
        if config.skills:
            from agent_runtime.loop.builtins.skills import SkillsFamily

            families.append(SkillsFamily(config.skills))
        return cls(config, [*families, *extra])

    def specs(self) -> list[ToolSpec]:
        return [t.spec for t in self.config.tools] + [b.spec for b in self._builtins.values()]

    def tool_choice(self) -> ToolChoice:
        choice = self.config.tool_choice
        for family in self.families:
            choice = family.tool_choice(choice)
        return choice

    def builtin(self, name: str) -> Builtin | None:
        return self._builtins.get(name)

    def text_answer(self, message: Message) -> str | None:
        for family in self.families:
            instruction = family.text_answer(message)
            if instruction is not None:
                return instruction
        return None

    def names(self) -> list[str]:
        return [t.name for t in self.config.tools] + list(self._builtins)


__all__ = ["Builtin", "CallContext", "Family", "Handled", "PlainFamily", "Router", "replayed"]
