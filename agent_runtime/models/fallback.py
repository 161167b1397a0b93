"""Named models with fallbacks: ``models={"fast": ["anthropic/claude-haiku-4-5",
"bedrock/us.amazon.nova-lite-v1:0", "openai/gpt-4.1-mini"]}`` and ``model="fast"``.

A call goes to the first entry; a transient failure (overloaded, 429, 5xx, a timeout, a
connection error) before the first streamed delta moves to the next. After a delta has
reached the caller the failure is raised (retrying elsewhere would repeat text), as is
any permanent error and the last entry's failure. The response names the entry that
served (`ModelResponse.model`, the ``provider/model`` string), which the turn's events
and the submission's usage record.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence

from agent_runtime.errors import TransientModelError
from agent_runtime.models.base import (
    Model,
    ModelEvent,
    ModelRequest,
    ModelResponse,
    ResponseDone,
    resolve_model,
)

log = logging.getLogger("agent_runtime")


class FallbackModel(Model):
    def __init__(self, name: str, entries: Sequence[str | Model]) -> None:
        self.name = name
        self.entries = tuple(entries)
        self._models: list[Model] | None = None

    def models(self) -> list[Model]:
        if self._models is None:  # providers connect lazily: resolving is cheap
            self._models = [resolve_model(entry) for entry in self.entries]
        return self._models

    def served_by(self, response: ModelResponse) -> str:
        return response.model or self.name

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        failure: TransientModelError | None = None
        for model in self.models():
            started = False
            try:
                async for event in model.stream(request):
                    if isinstance(event, ResponseDone):
                        yield ResponseDone(response=event.response.model_copy(update={"model": model.name}))
                        return
                    started = True
                    yield event
            except TransientModelError as exc:
                if started:
                    raise
                failure = exc
                log.warning("model failed before answering; trying the next", extra={"named": self.name, "model": model.name, "error": str(exc)})
                continue
            raise RuntimeError(f"model {model.name} ended its stream without a response")
        assert failure is not None
        raise failure


__all__ = ["FallbackModel"]
