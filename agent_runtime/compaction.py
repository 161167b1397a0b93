"""Compaction: a long session's older turns become a summary the requests use instead.

A ticket agent lives for months; its history outgrows any context window. When a model
request would pass `Compaction.threshold` of the model's context window (estimated at
four characters a token), the older part of the conversation is summarised by one model
call into a **summary item**: a synthetic user message appended to the history (one write,
whatever the history's length) that records how many of the session's messages it
covers. Requests then send the latest summary and the messages after the ones it covers;
the originals stay in the history for reads. The split never separates a tool call from
its result, and keeps at least `keep_recent` messages as they are. The summary is
written by a fenced checkpoint like any message: a crash after it never loses or repeats
it, and one before it only repeats the summarising call.

``compaction=Compaction(threshold=0.8, keep_recent=20, model=None, context_window=None)``
is on by default; ``compaction=None`` turns it off. `model` summarises (default: the
agent's own); `context_window` overrides the table below (tokens).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import DefinitionError
from agent_runtime.message_sums import MessageSum
from agent_runtime.messages import Message, TextPart, ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec

#: Context windows (tokens) by ``provider/model`` prefix; the longest match wins.
CONTEXT_WINDOWS: dict[str, int] = {
    "anthropic/": 200_000,
    "bedrock/anthropic.": 200_000,
    "bedrock/us.anthropic.": 200_000,
    "bedrock/amazon.nova": 300_000,
    "bedrock/us.amazon.nova": 300_000,
    "openai/gpt-4.1": 1_000_000,
    "openai/gpt-4o": 128_000,
    "openai/": 128_000,
}
DEFAULT_WINDOW = 128_000
SUMMARY_PREFIX = "[Summary of the earlier conversation]"
SUMMARY_INSTRUCTIONS = (
    "Summarise the conversation below for the assistant who continues it. Keep every fact, "
    "decision, open question, name, number and file path it will need; drop small talk. "
    "Write plain prose and lists, no preamble."
)


@dataclass(frozen=True, kw_only=True)
class Compaction:
    threshold: float = 0.8
    keep_recent: int = 20
    model: Any = None
    context_window: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threshold, int | float) or not 0.1 <= self.threshold <= 0.95:
            raise DefinitionError("compaction", "threshold is a share of the context window, 0.1 to 0.95")
        if not isinstance(self.keep_recent, int) or self.keep_recent < 2:
            raise DefinitionError("compaction", "keep_recent must be an int of at least 2")
        if self.context_window is not None and (not isinstance(self.context_window, int) or self.context_window < 1000):
            raise DefinitionError("compaction", "context_window must be an int of at least 1000 tokens")

    def window(self, model_name: str) -> int:
        if self.context_window is not None:
            return self.context_window
        matches = [name for name in CONTEXT_WINDOWS if model_name.startswith(name)]
        return CONTEXT_WINDOWS[max(matches, key=len)] if matches else DEFAULT_WINDOW


def estimate_tokens(messages: Sequence[Message], system: str | None = None, tools: Sequence[Any] = ()) -> int:
    """A provider-neutral estimate: four characters a token, files by their size."""
    chars = len(system or "") + sum(_tool_chars(t) for t in tools)
    return (chars + _history_chars(messages)) // 4 + 3 * len(messages)


#: A tool's characters by the id of its spec (kept with it, so the id is not reused while
#: the entry lives): an agent offers the same spec objects turn after turn (`Tool.spec` is
#: built once), and their JSON need not be written again for each estimate.
_TOOL_CHARS: dict[int, tuple[Any, int]] = {}
_TOOL_CHARS_MAX = 1024


def _tool_chars(tool: Any) -> int:
    known = _TOOL_CHARS.get(id(tool))
    if known is not None and known[0] is tool:
        return known[1]
    chars = len(json.dumps(getattr(tool, "parameters", {}))) + len(getattr(tool, "description", ""))
    if isinstance(tool, ToolSpec):  # frozen: its figure cannot change
        if len(_TOOL_CHARS) >= _TOOL_CHARS_MAX:
            _TOOL_CHARS.clear()
        _TOOL_CHARS[id(tool)] = (tool, chars)
    return chars


def _message_chars(message: Message) -> int:
    chars = 0
    for part in message.parts:
        if isinstance(part, TextPart):
            chars += len(part.text)
        elif isinstance(part, ToolCallPart):
            chars += len(part.name) + len(json.dumps(part.arguments))
        elif isinstance(part, ToolResultPart):
            chars += len(part.content)
        elif part.type == "file":
            chars += min(getattr(part, "size", 0), 1_600_000)
        else:
            chars += len(getattr(part, "thinking", ""))
    return chars


_history_chars = MessageSum(_message_chars)


def summary_message(text: str, covers: int) -> Message:
    return Message(role="user", parts=[TextPart(text=f"{SUMMARY_PREFIX}\n{text}\n\n")], synthetic=True, compacts=covers)


#: How many summaries a history holds (most hold none: `view` then copies it as it is).
_summaries = MessageSum(lambda message: int(message.compacts is not None))


def view(history: Sequence[Message]) -> list[Message]:
    """What requests send: the latest summary, then the messages after those it covers
    (other summaries left out); the whole history when there is none."""
    if not _summaries(history):
        return list(history)
    latest = next((i for i in range(len(history) - 1, -1, -1) if history[i].compacts is not None), None)
    if latest is None:
        return list(history)
    summary = history[latest]
    covers = summary.compacts or 0
    rest = [m for i, m in enumerate(history) if i >= covers and i != latest and m.compacts is None]
    if rest and rest[0].role == "user" and not any(isinstance(p, ToolResultPart) for p in rest[0].parts):
        return [rest[0].model_copy(update={"parts": [*summary.parts, *rest[0].parts]}), *rest[1:]]
    return [summary, *rest]


def split_point(history: Sequence[Message], keep_recent: int) -> int:
    """How many of the session's messages a new summary covers (0: too few to compact):
    all but the `keep_recent` latest, moved back so that the kept part starts at a
    message that does not answer a call of the summarised part."""
    end = len(history) - keep_recent
    while end > 0 and (history[end].role != "user" or any(isinstance(p, ToolResultPart) for p in history[end].parts)):
        end -= 1
    return max(end, 0)


def transcript(messages: Sequence[Message]) -> str:
    """The summarised part as plain text (tool calls and results as lines)."""
    lines: list[str] = []
    for message in messages:
        for part in message.parts:
            if isinstance(part, TextPart) and part.text:
                lines.append(f"{message.role}: {part.text}")
            elif isinstance(part, ToolCallPart):
                lines.append(f"{message.role} called {part.name}({json.dumps(part.arguments)[:2000]})")
            elif isinstance(part, ToolResultPart):
                lines.append(f"tool {part.name} returned: {part.content[:4000]}")
            elif part.type == "file":
                lines.append(f"{message.role} attached {getattr(part, 'path', '')}")
    return "\n".join(lines)


__all__ = [
    "CONTEXT_WINDOWS",
    "SUMMARY_PREFIX",
    "Compaction",
    "estimate_tokens",
    "split_point",
    "summary_message",
    "transcript",
    "view",
]
