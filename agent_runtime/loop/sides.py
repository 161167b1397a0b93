"""A two-sided agent's turn-taking for one attempt (`agent_runtime.dual`): who speaks, what
that side sees, when its turn is over and when the session's turns run out. The state
(speaking side, side turns taken, steps in this turn) is the session's, journaled."""

from __future__ import annotations

from collections.abc import Sequence

from agent_runtime.definition import AgentConfig
from agent_runtime.dual import Side, SideName, side_config, side_of, view
from agent_runtime.loop.session import SessionView
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart


class Sides:
    def __init__(self, root: AgentConfig, session: SessionView) -> None:
        self.root = root
        self.session = session
        self.active = root.kind == "dual_ai"
        self._configs: dict[SideName, AgentConfig] = {}

    async def start(self, *, fresh: bool) -> None:
        """Load the state; a fresh submission (a prompt) starts with side A."""
        state = await self.session.state()
        if fresh or state.side is None:
            state.side, state.exchanges, state.steps = "a", 0, 0
            self.session.changed()

    @property
    def speaker(self) -> SideName:
        state = self.session.loaded
        return state.side if state is not None and state.side is not None else "a"

    @property
    def side(self) -> Side:
        return side_of(self.root, self.speaker)

    def config(self) -> AgentConfig:
        if self.speaker not in self._configs:
            self._configs[self.speaker] = side_config(self.root, self.speaker)
        return self._configs[self.speaker]

    def view(self, history: Sequence[Message]) -> list[Message]:
        labels: dict[SideName, str] = {"a": side_of(self.root, "a").label, "b": side_of(self.root, "b").label}
        return view(history, self.speaker, labels)

    def tag(self, messages: list[Message]) -> list[Message]:
        """`messages` as written by the speaking side."""
        return [m if m.side is not None else m.model_copy(update={"side": self.speaker}) for m in messages]

    def step(self) -> bool:
        """Count a model step of the speaking side; True when its turn has no steps left."""
        state = self.session.loaded
        assert state is not None
        state.steps += 1
        self.session.changed()
        return state.steps > self.side.max_steps

    def stop_output(self, calls: Sequence[ToolCallPart], results: Sequence[ToolResultPart]) -> str | None:
        """The turn's output when the speaking side called its stop tool (else None): the
        call's `stop_tool_response_property` argument, else the tool's result."""
        if not self.active or self.side.stop_tool is None:
            return None
        side = self.side
        by_call = {p.call_id: p for p in results}
        for call in calls:
            part = by_call.get(call.id)
            if call.name == side.stop_tool and part is not None and not part.is_error:
                said = call.arguments.get(side.stop_tool_response_property or "")
                return said if isinstance(said, str) and said else part.content
        return None

    def end_turn(self) -> bool:
        """The speaking side's turn is over: False when the session's turns ran out,
        else the other side speaks next."""
        state = self.session.loaded
        assert state is not None
        state.exchanges += 1
        self.session.changed()
        if state.exchanges >= (self.root.max_session_turns or 0):
            return False
        state.side = "b" if state.side == "a" else "a"
        state.steps = 0
        return True


__all__ = ["Sides"]
