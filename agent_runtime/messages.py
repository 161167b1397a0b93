"""Provider-neutral conversation messages, as stored in history and sent to models.

A message is a role and a list of parts. Parts are a tagged union so stored history
round-trips through JSON exactly; every stored record carries `v` (schema version).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MESSAGE_SCHEMA_VERSION = 1


class _Part(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")


class TextPart(_Part):
    type: Literal["text"] = "text"
    text: str


class ThinkingPart(_Part):
    type: Literal["thinking"] = "thinking"
    thinking: str
    signature: str | None = None


class ToolCallPart(_Part):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolResultPart(_Part):
    type: Literal["tool_result"] = "tool_result"
    call_id: str
    name: str
    content: str
    is_error: bool = False
    #: "ok" | "error" | "interrupted": interrupted marks a call whose outcome is unknown
    #: after a crash and which was not re-run.
    status: Literal["ok", "error", "interrupted"] = "ok"


class FilePart(_Part):
    """A file of the instance's filesystem, attached to a message by path: the bytes stay in
    the filesystem (never in history, events or queues) and a provider reads them when it
    builds its request. `size` and `sha256` say what was attached."""

    type: Literal["file"] = "file"
    path: str
    media_type: str
    size: int
    sha256: str


Part = Annotated[TextPart | ThinkingPart | ToolCallPart | ToolResultPart | FilePart, Field(discriminator="type")]


class Message(BaseModel):
    model_config = ConfigDict(defer_build=True, frozen=True, extra="forbid")

    v: int = MESSAGE_SCHEMA_VERSION
    role: Literal["user", "assistant"]
    parts: list[Part]
    #: Set on messages the runtime wrote for the model but no human said (for example
    #: a structured-result repair prompt or a child's silent report).
    synthetic: bool = False
    #: Which side of a two-sided agent wrote it (`agent_runtime.dual`); None otherwise.
    side: Literal["a", "b"] | None = None
    #: Set on a compaction summary: how many of the session's messages it stands for.
    compacts: int | None = None

    @classmethod
    def user(cls, text: str, *, synthetic: bool = False, files: list[FilePart] | None = None) -> Message:
        return cls(role="user", parts=[TextPart(text=text), *(files or [])], synthetic=synthetic)

    @classmethod
    def assistant(cls, text: str) -> Message:
        return cls(role="assistant", parts=[TextPart(text=text)])

    @property
    def text(self) -> str:
        return "".join(p.text for p in self.parts if isinstance(p, TextPart))

    @property
    def files(self) -> list[FilePart]:
        return [p for p in self.parts if isinstance(p, FilePart)]

    @property
    def tool_calls(self) -> list[ToolCallPart]:
        return [p for p in self.parts if isinstance(p, ToolCallPart)]


class Usage(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cache_read_tokens=self.cache_read_tokens + other.cache_read_tokens,
            cache_write_tokens=self.cache_write_tokens + other.cache_write_tokens,
            requests=self.requests + other.requests,
        )
