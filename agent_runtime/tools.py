"""`@tool`: turn a sync or async function into a tool the model can call.

The JSON schema comes from the signature through pydantic; the description from the
docstring (first paragraph; an ``Args:`` section describes parameters). Arguments are
validated before the call: a validation failure goes back to the model as a tool
error, not a crash. A parameter annotated `ToolContext` receives the call's context
and is hidden from the schema.
"""

from __future__ import annotations

import asyncio
import builtins
import functools
import inspect
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from agent_runtime.errors import ToolDefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.models.base import ToolSpec

TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")


class KV(Protocol):
    """The instance's key-value store, as seen by tools."""

    async def get(self, key: str) -> Any: ...
    async def put(self, key: str, value: Any) -> None: ...
    async def delete(self, key: str) -> None: ...
    async def list(self, prefix: str = "") -> dict[str, Any]: ...


class FilesAccess(Protocol):
    """The instance's filesystem, as seen by tools (`agent_runtime.loop.context.FilesView`):
    paths like ``/notes/summary.md``; writes are the attempt's (a stale attempt's fail)."""

    async def read(self, path: str) -> bytes: ...
    async def write(self, path: str, data: bytes | str, *, media_type: str | None = None) -> Any: ...
    async def stat(self, path: str) -> Any: ...
    async def list(self, prefix: str = "/", *, limit: int = 1000) -> builtins.list[Any]: ...
    async def delete(self, path: str) -> bool: ...
    async def grep(self, pattern: str, *, prefix: str = "/", limit: int = 100) -> builtins.list[Any]: ...
    async def find(self, glob: str, *, limit: int = 100) -> builtins.list[Any]: ...


class Surroundings(Protocol):
    """What else a tool reaches: variables, secrets, the instance's event log, effects."""

    async def env(self, name: str) -> str | None: ...
    async def secret(self, name: str) -> str | None: ...
    async def emit(self, name: str, data: Any) -> None: ...
    async def schedule(
        self,
        scope: str,
        name: str,
        args: dict[str, Any] | None,
        *,
        delay: float | None,
        at: datetime | None,
        session: str | None,
    ) -> str: ...
    async def scheduled_effects(self, name: str | None) -> builtins.list[Any]: ...
    async def cancel_effect(self, effect_id: str) -> Any: ...


class SchedulesEffects(ABC):
    """`ctx.schedule`, `ctx.scheduled_effects` and `ctx.cancel_effect` (`agent_runtime.effects`),
    for the contexts of tools, hooks, `on_dispatch` and effects: each says where its
    surroundings are and what scope its effect ids come from."""

    @abstractmethod
    def _around(self) -> Surroundings: ...

    @abstractmethod
    def _effects_scope(self) -> str: ...

    async def schedule(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        delay: float | None = None,
        at: datetime | None = None,
        session: str | None = None,
    ) -> str:
        """Run the agent's effect `name` with `args` after `delay` seconds or at `at` (a
        timezone-aware datetime), in `session` (this one by default); returns its id."""
        return await self._around().schedule(self._effects_scope(), name, args, delay=delay, at=at, session=session)

    async def scheduled_effects(self, name: str | None = None) -> builtins.list[Any]:
        """The instance's effects still to run (`EffectRecord`s, soonest first), of `name` or all."""
        return await self._around().scheduled_effects(name)

    async def cancel_effect(self, effect_id: str) -> Any:
        """Cancel a scheduled effect; `EffectNotPending` once it fired, `EffectNotFound` if unknown."""
        return await self._around().cancel_effect(effect_id)


class AbortSignal:
    """Set when the submission is aborted; tools that run long should check it."""

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self.reason: str | None = None
        self._listeners: builtins.list[Callable[[], None]] = []

    @property
    def aborted(self) -> bool:
        return self._event.is_set()

    def abort(self, reason: str = "aborted") -> None:
        self.reason = reason
        self._event.set()
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener()

    def on_abort(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` once when the signal is set (at once if it is already); returns
        the function that forgets it. What waits on the signal without a task of its own."""
        if self.aborted:
            listener()
            return _forget_nothing
        self._listeners.append(listener)

        def forget() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return forget

    async def wait(self) -> None:
        await self._event.wait()


def _forget_nothing() -> None:
    return None


class ParentLine(Protocol):
    """How a subagent's tools write to the parent that started it."""

    async def notify(self, call_id: str, text: str) -> None: ...


NOTICE_MAX_CHARS = 32_000


@dataclass(frozen=True)
class ToolContext(SchedulesEffects):
    """What a tool may know and touch: its instance, session, kv, the abort signal and,
    in a subagent, a line to its parent."""

    instance: InstanceRef
    session: str
    submission_id: str
    call_id: str
    kv: KV
    abort: AbortSignal = field(default_factory=AbortSignal)
    parent: ParentLine | None = None
    #: The instance's files (`ctx.files.read(path)`, `write`, `list`, ...).
    files: FilesAccess | None = None
    #: The session's context variables: a JSON object tools read and change in place; it
    #: is journaled with the turn, carried across handoffs and kept with the session.
    context: dict[str, Any] = field(default_factory=dict)
    surroundings: Surroundings | None = None

    async def env(self, name: str) -> str | None:
        """A plain variable's value (or its default; None when unset). A `Secret` is refused:
        read it with `secret`."""
        return await self._around().env(name)

    async def secret(self, name: str) -> str | None:
        """A secret variable's value, for this tool to use (None when unset). The runtime
        keeps it out of everything else: a tool result, error or event that contains it
        gets ``[secret]`` in its place."""
        return await self._around().secret(name)

    async def emit(self, name: str, data: Any = None) -> None:
        """Append a ``custom`` event named `name` with `data` (JSON) to the instance's log."""
        await self._around().emit(name, data)

    def _around(self) -> Surroundings:
        if self.surroundings is None:
            raise ToolFailure("this tool context has no variables or event log (a context made by hand?)")
        return self.surroundings

    def _effects_scope(self) -> str:
        return self.call_id

    async def notify_parent(self, text: str) -> None:
        """Write `text` to the parent that started this agent as a subagent: it reaches the
        parent's model as a message on its next turn (queued if the parent is busy). The
        only way a resumable subagent with ``parent_communication="explicit"`` talks back."""
        if self.parent is None:
            raise ToolFailure("notify_parent: this agent is not running as a subagent, so it has no parent")
        if not isinstance(text, str) or not text.strip() or len(text) > NOTICE_MAX_CHARS:
            raise ToolFailure(f"notify_parent takes a non-empty text of at most {NOTICE_MAX_CHARS} characters")
        await self.parent.notify(self.call_id, text)


class ToolFailure(Exception):
    """Raise from a tool to send a clean error message back to the model."""


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    context_param: str | None = None
    idempotent: bool = False

    @functools.cached_property
    def spec(self) -> ToolSpec:
        """Built once per tool (pydantic's schema generation is slow; the spec is frozen)."""
        schema = self.arguments_model.model_json_schema()
        schema.pop("title", None)
        return ToolSpec(name=self.name, description=self.description, parameters=schema)

    def validate(self, arguments: dict[str, Any]) -> BaseModel:
        return self.arguments_model.model_validate(arguments)

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> str:
        """Validate and run; returns the result as text for the model.

        Raises `ValidationError` for bad arguments and whatever the tool raises.
        """
        validated = self.validate(arguments)
        kwargs = {name: getattr(validated, name) for name in type(validated).model_fields}
        if self.context_param:
            kwargs[self.context_param] = context
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(**kwargs)
        else:
            result = await asyncio.to_thread(self.function, **kwargs)
            if inspect.isawaitable(result):
                result = await result
        return render_result(result)


def render_result(result: Any) -> str:
    if isinstance(result, str):
        return result
    if isinstance(result, BaseModel):
        return result.model_dump_json()
    return json.dumps(result, default=str)


def format_validation_error(error: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or '(arguments)'}: {e['msg']}" for e in error.errors()
    ]
    return "invalid arguments: " + "; ".join(problems)


def _describe(doc: str | None) -> tuple[str, dict[str, str]]:
    """Split a docstring into its description and the ``Args:`` section's entries."""
    if not doc:
        return "", {}
    text = inspect.cleandoc(doc)
    head, _, args_section = _split_args(text)
    params: dict[str, str] = {}
    for line in args_section.splitlines():
        match = re.match(r"^\s*(\w+)(?:\s*\([^)]*\))?\s*:\s*(.+)$", line)
        if match:
            params[match.group(1)] = match.group(2).strip()
    return head.strip(), params


def _split_args(text: str) -> tuple[str, str, str]:
    parts = re.split(r"^(?:Args|Arguments|Parameters):\s*$", text, maxsplit=1, flags=re.M)
    if len(parts) == 2:
        return parts[0], "", parts[1]
    return text, "", ""


def _build(fn: Callable[..., Any], *, name: str | None, description: str | None, idempotent: bool) -> Tool:
    tool_name = name or fn.__name__
    if not TOOL_NAME.match(tool_name):
        raise ToolDefinitionError(f"tool name {tool_name!r} must match {TOOL_NAME.pattern}")
    doc_description, param_docs = _describe(fn.__doc__)
    try:
        hints = get_type_hints(fn)
    except Exception as exc:  # unresolvable annotations are the developer's to fix
        raise ToolDefinitionError(f"tool {tool_name!r}: cannot resolve type hints: {exc}") from exc
    fields: dict[str, Any] = {}
    context_param: str | None = None
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {tool_name!r}: *args and **kwargs are not supported")
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, FieldInfo(default=default, description=param_docs.get(param.name)))
    model = create_model(  # type: ignore[call-overload]
        f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    return Tool(
        name=tool_name,
        description=description or doc_description or tool_name,
        function=fn,
        arguments_model=model,
        context_param=context_param,
        idempotent=idempotent,
    )


@overload
def tool(fn: Callable[..., Any], /) -> Tool: ...
@overload
def tool(
    *, name: str | None = None, description: str | None = None, idempotent: bool = False
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    idempotent: bool = False,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a tool of a function: ``@tool`` or ``@tool(name=..., idempotent=True)``.

    `idempotent=True` lets the runtime re-run the call after a crash left its outcome
    unknown; otherwise such a call gets a synthetic ``interrupted`` result.
    """
    if fn is not None:
        return _build(fn, name=name, description=description, idempotent=idempotent)

    def decorate(f: Callable[..., Any]) -> Tool:
        return _build(f, name=name, description=description, idempotent=idempotent)

    return decorate

