"""An abort reaching running code between boundaries: while a model call, a tool or an
`on_dispatch` handler runs, the submission's abort flag is polled (one consistent read
per interval) and the attempt's `AbortSignal` is set when it is raised."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from agent_runtime.ledger import SubmissionRecord
from agent_runtime.ports import Ledger
from agent_runtime.tools import AbortSignal

log = logging.getLogger("agent_runtime")


@contextlib.asynccontextmanager
async def watching_abort(ledger: Ledger, record: SubmissionRecord, signal: AbortSignal, seconds: float) -> AsyncIterator[None]:
    """For the block's duration, poll `record`'s abort flag every `seconds` and set `signal`."""
    if seconds <= 0 or signal.aborted:
        yield
        return

    async def poll() -> None:
        while not signal.aborted:
            await asyncio.sleep(seconds)
            try:
                requested = await ledger.abort_requested(record.ref, record.id)
            except Exception:  # a failed read is retried next interval; boundaries still check
                log.warning("reading the abort flag of %s failed", record.id, exc_info=True)
                continue
            if requested:
                signal.abort("aborted on request")

    poller = asyncio.ensure_future(poll())
    try:
        yield
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
