"""Blocking AWS calls run off the event loop, on one bounded pool every adapter shares.

boto3 is synchronous. Called inside ``async def``, a DynamoDB round trip (5-20 ms, far
more on a throttle or a retry) would stall every other coroutine of the process: the
abort poll, the event flush timer, a model stream. Every adapter call goes through
`offload`, so the loop keeps running while the call waits in a thread.

The pool is bounded and shared, not one per adapter: a Lambda has a few vCPUs and
botocore keeps `max_pool_connections` (10 by default) HTTP connections per client, so
more threads than that would only queue on the connection pool. The context (tracing
spans, log context) is copied into the thread, as `asyncio.to_thread` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

__all__ = ["AWS_THREADS", "THREAD_NAME_PREFIX", "executor", "offload"]

#: Threads for blocking AWS calls: botocore's default connection pool size per client.
AWS_THREADS = 10
THREAD_NAME_PREFIX = "agent-runtime-aws"

P = ParamSpec("P")
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None


def executor() -> ThreadPoolExecutor:
    """The shared pool, made on first use (a handler that never calls AWS never starts it)."""
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(max_workers=AWS_THREADS, thread_name_prefix=THREAD_NAME_PREFIX)
    return _executor


async def offload(call: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``call(*args, **kwargs)`` in the shared pool; the loop runs on while it blocks."""
    context = contextvars.copy_context()
    bound = functools.partial(context.run, call, *args, **kwargs)
    return await asyncio.get_running_loop().run_in_executor(executor(), bound)
