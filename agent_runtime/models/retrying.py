"""A provider's own retries: a transient failure before the first streamed delta is tried
again after a backoff with jitter, never sooner than the server's ``retry-after``; anything
else (a delta already out, a permanent error, attempts spent, a server asking to wait
longer than `MAX_RETRY_AFTER`) goes to the caller, whose durable retry decides."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent_runtime.errors import ModelError, TransientModelError

#: A server asking us to wait longer than this is not waited for inside one call: the
#: `TransientModelError` carries `retry_after` so the worker can reschedule the turn.
MAX_RETRY_AFTER = 60.0
MAX_BACKOFF = 20.0


@dataclass(frozen=True)
class Retries:
    max_attempts: int
    backoff: float
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep

    def wait_after(self, attempt: int, error: ModelError, *, yielded: bool) -> float | None:
        """Seconds to wait before trying again after `attempt` failed with `error`, or None
        when it must not be tried again here."""
        if (
            yielded
            or not isinstance(error, TransientModelError)
            or attempt >= self.max_attempts
            or (error.retry_after or 0.0) > MAX_RETRY_AFTER
        ):
            return None
        base = min(self.backoff * 2 ** (attempt - 1), MAX_BACKOFF)
        return max(base / 2 + random.uniform(0, base / 2), error.retry_after or 0.0)


__all__ = ["MAX_BACKOFF", "MAX_RETRY_AFTER", "Retries"]
