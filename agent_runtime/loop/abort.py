"""An abort reaching running code between boundaries: while a model call, a tool or an
`on_dispatch` handler runs, the submission's abort flag is polled (one consistent read
per interval) and the attempt's `AbortSignal` is set when it is raised. A model call
stops at once (`cancelled_on_abort`); a tool is told through its context's signal.

The poll is a timer, not a task sleeping in a loop: most blocks (a model call, a turn's
tools) end well within one interval, and then nothing ran at all; a task would have been
created, scheduled, cancelled and awaited for each of them. When the timer fires, one
read runs as a task of its own; the next read is timed from its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

from agent_runtime.errors import AbortRequested
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.ports import Ledger
from agent_runtime.tools import AbortSignal

log = logging.getLogger("agent_runtime")
T = TypeVar("T")


def watching_abort(ledger: Ledger, record: SubmissionRecord, signal: AbortSignal, seconds: float) -> AbortWatch:
    """For the block's duration, poll `record`'s abort flag every `seconds` and set `signal`."""
    return AbortWatch(ledger, record, signal, seconds)


class AbortWatch:
    """The poll of one ``async with watching_abort(...)`` block."""

    def __init__(self, ledger: Ledger, record: SubmissionRecord, signal: AbortSignal, seconds: float) -> None:
        self.ledger = ledger
        self.record = record
        self.signal = signal
        self.seconds = seconds
        self._timer: asyncio.TimerHandle | None = None
        self._read: asyncio.Task[None] | None = None

    async def __aenter__(self) -> None:
        if self.seconds > 0 and not self.signal.aborted:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._due)

    async def __aexit__(self, *exc: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        read, self._read = self._read, None
        if read is not None and not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await read

    def _due(self) -> None:
        self._timer = None
        self._read = asyncio.ensure_future(self._poll())

    async def _poll(self) -> None:
        try:
            requested = await self.ledger.abort_requested(self.record.ref, self.record.id)
        except Exception:  # a failed read is retried next interval; boundaries still check
            log.warning("reading the abort flag of %s failed", self.record.id, exc_info=True)
            requested = False
        if requested:
            self.signal.abort("aborted on request")
        elif not self.signal.aborted:
            self._timer = asyncio.get_running_loop().call_later(self.seconds, self._due)


def cancelled_on_abort(signal: AbortSignal, submission_id: str) -> AbortScope:
    """For the block's duration, an abort of `signal` cancels the running task where it
    waits, and the block raises `AbortRequested` instead of `CancelledError` (as
    `asyncio.timeout` raises `TimeoutError`). The work stays in the caller's task: no
    task of its own to create, schedule and await for each model call. Enter it only
    while `signal` is not set (the abort would otherwise cancel a task that is running)."""
    return AbortScope(signal, submission_id)


class AbortScope:
    """One ``async with cancelled_on_abort(...)`` block."""

    def __init__(self, signal: AbortSignal, submission_id: str) -> None:
        self.signal = signal
        self.submission_id = submission_id
        self._fired = False

    async def __aenter__(self) -> None:
        if self.signal.aborted:
            raise RuntimeError("cancelled_on_abort entered with its signal already set")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("cancelled_on_abort is used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        self._forget = self.signal.on_abort(self._cancel)

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        self._forget()
        # Only our own cancellation becomes an abort: one asked by someone else as well
        # (the caller's timeout, the task's own cancel) goes on as it came.
        if self._fired and self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise AbortRequested(self.submission_id) from None

    def _cancel(self) -> None:
        self._fired = True
        self._task.cancel()


async def reply_though_aborted(reply: Coroutine[Any, Any, T], submission_id: str) -> T:
    """A model call begun with the abort already seen (during the turn's last tool),
    where `cancelled_on_abort` cannot be entered: it is cancelled at its first wait, as
    the call of a running attempt would be, and raises `AbortRequested`; a reply that
    needed no wait stands (the settle still honours the abort)."""
    task = asyncio.ensure_future(reply)
    try:
        await asyncio.sleep(0)  # its first step runs
    finally:
        if not task.done():  # or this step was cancelled: stop the stream
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if task.cancelled():
        raise AbortRequested(submission_id)
    return task.result()
