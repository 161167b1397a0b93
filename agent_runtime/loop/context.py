"""What a tool (or a dispatch handler) reaches besides its arguments: the instance's kv,
files, variables and secrets, and its event log (a Python spelling of Standard Agents'
ThreadState). One `Surroundings` per attempt.

Files written here are the attempt's: each write carries the attempt's fence, so a
stale attempt (its lease lost, another attempt running) cannot change a file.

Secrets: `secret(name)` returns the plaintext to the tool that asked, and remembers it for
the attempt; `redact` replaces every remembered plaintext with ``[secret]``. The step
machine passes every tool result and error through it before they are recorded,
streamed or shown to the model, and `emit` does the same to custom events, so a secret
a tool echoes back (by mistake, or in an exception message) goes nowhere.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from agent_runtime import events as ev
from agent_runtime.definition import AgentConfig
from agent_runtime.effects import EffectRecord
from agent_runtime.errors import InvalidInput
from agent_runtime.files import FileInfo, FilePage, GrepMatch, media_type_for
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence, SubmissionRecord
from agent_runtime.loop.effects_view import EffectsView
from agent_runtime.ports import KV, Stores
from agent_runtime.tools import ToolFailure
from agent_runtime.variables import SecretNotReadable, Variable, find_declared

REDACTED = "[secret]"


class KVView:
    """The instance's kv as tools see it."""

    def __init__(self, kv: KV, instance: InstanceRef) -> None:
        self._kv = kv
        self._instance = instance

    async def get(self, key: str) -> Any:
        return await self._kv.get(self._instance, key)

    async def put(self, key: str, value: Any) -> None:
        await self._kv.put(self._instance, key, value)

    async def delete(self, key: str) -> None:
        await self._kv.delete(self._instance, key)

    async def list(self, prefix: str = "") -> dict[str, Any]:
        return await self._kv.list(self._instance, prefix)


class FilesView:
    """The instance's filesystem as tools see it: writes fenced by the attempt."""

    def __init__(self, stores: Stores, fence: Fence, clock: Callable[[], float]) -> None:
        self._files = stores.files
        self._fence = fence
        self._instance = fence.instance
        self._clock = clock

    async def read(self, path: str) -> bytes:
        return await self._files.read(self._instance, path)

    async def write(self, path: str, data: bytes | str, *, media_type: str | None = None) -> FileInfo:
        raw = data.encode() if isinstance(data, str) else data
        kind = media_type or (media_type_for(path, None) if not isinstance(data, str) else _text_type(path))
        return await self._files.write(self._instance, path, raw, media_type=kind, now=self._clock(), fence=self._fence)

    async def stat(self, path: str) -> FileInfo | None:
        return await self._files.stat(self._instance, path)

    async def list(self, prefix: str = "/", *, limit: int = 1000) -> builtins.list[FileInfo]:
        found: builtins.list[FileInfo] = []
        after: str | None = None
        while len(found) < limit:
            page = await self._files.list(self._instance, prefix, after=after, limit=min(1000, limit - len(found)))
            found += page.files
            if page.next_after is None:
                break
            after = page.next_after
        return found

    async def page(self, prefix: str = "/", *, after: str | None = None, limit: int = 100) -> FilePage:
        return await self._files.list(self._instance, prefix, after=after, limit=limit)

    async def delete(self, path: str) -> bool:
        return await self._files.delete(self._instance, path, fence=self._fence)

    async def grep(self, pattern: str, *, prefix: str = "/", limit: int = 100) -> builtins.list[GrepMatch]:
        return await self._files.grep(self._instance, pattern, prefix=prefix, limit=limit)

    async def find(self, glob: str, *, limit: int = 100) -> builtins.list[FileInfo]:
        return await self._files.find(self._instance, glob, limit=limit)


def _text_type(path: str) -> str:
    guessed = media_type_for(path, None)
    return guessed if guessed != "application/octet-stream" else "text/plain"


class Surroundings:
    """Variables, secrets, custom events and effects for one attempt (of `record`), with
    the secrets it revealed."""

    def __init__(
        self,
        stores: Stores,
        config: AgentConfig,
        instance: InstanceRef,
        emit: Callable[..., Awaitable[None]],
        *,
        record: SubmissionRecord | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._stores = stores
        self._config = config
        self._instance = instance
        self._emit = emit
        self._revealed: set[str] = set()
        self.effects = (
            EffectsView(stores, config, instance, submission_id=record.id, session=record.session, clock=clock)
            if record is not None
            else None
        )

    def _effects(self) -> EffectsView:
        if self.effects is None:
            raise ToolFailure("this context cannot schedule effects (a context made by hand?)")
        return self.effects

    async def schedule(
        self,
        scope: str,
        name: str,
        args: dict[str, Any] | None,
        *,
        delay: float | None,
        at: datetime | None,
        session: str | None,
    ) -> str:
        return await self._effects().schedule(scope, name, args, delay=delay, at=at, session=session)

    async def scheduled_effects(self, name: str | None) -> builtins.list[EffectRecord]:
        return await self._effects().scheduled(name)

    async def cancel_effect(self, effect_id: str) -> EffectRecord:
        return await self._effects().cancel(effect_id)

    async def env(self, name: str) -> str | None:
        declared = find_declared(self._config.variables, name)
        if declared is not None and declared.secret:
            raise ToolFailure(f"{name} is a secret: read it with ctx.secret({name!r})")
        try:
            value = await self._stores.variables.get(self._instance, name)
        except SecretNotReadable:
            raise ToolFailure(f"{name} is a secret: read it with ctx.secret({name!r})") from None
        if value is None and isinstance(declared, Variable):
            return declared.default
        return value

    async def secret(self, name: str) -> str | None:
        declared = find_declared(self._config.variables, name)
        if declared is None or not declared.secret:
            raise ToolFailure(f"{name} is not a declared Secret of this agent")
        value = await self._stores.variables.reveal(self._instance, name)
        if value is None:
            return None
        plain = value.reveal()
        if plain:
            self._revealed.add(plain)
        return plain

    def redact(self, text: str) -> str:
        for plain in sorted(self._revealed, key=len, reverse=True):
            text = text.replace(plain, REDACTED)
        return text

    async def emit(self, name: str, data: Any) -> None:
        if not isinstance(name, str) or not 1 <= len(name) <= 64:
            raise InvalidInput("an event name is 1-64 characters", details={"field": "name"})
        try:
            text = json.dumps(data, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            raise InvalidInput("an event's data must be JSON", details={"field": "data"}) from None
        if len(text) > ev.CUSTOM_DATA_MAX:
            raise InvalidInput(f"an event's data is at most {ev.CUSTOM_DATA_MAX} characters of JSON", details={"field": "data"})
        await self._emit(ev.Custom, name=name, data=self.redact_data(data))

    def redact_data(self, data: Any) -> Any:
        if isinstance(data, str):
            return self.redact(data)
        if isinstance(data, dict):
            return {self.redact(str(k)): self.redact_data(v) for k, v in data.items()}
        if isinstance(data, list | tuple):
            return [self.redact_data(v) for v in data]
        return data


__all__ = ["REDACTED", "FilesView", "KVView", "Surroundings"]
