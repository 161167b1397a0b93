"""Keep moto's SQS requests from costing O(queue length) several times over.

moto builds a queue's whole attribute map (``Queue.attributes``) wherever it needs one
attribute of it, and that map holds three message counts, each a walk over every message of
the queue that asks each message the time, twice. A ``SendMessage`` to a FIFO queue builds the
map four times (to learn whether the queue deduplicates by content) and a ``ReceiveMessage``
three times per message it returns (for the retention period): with a hundred wake-ups waiting
in the local stack's queue, each send walked the queue a dozen times, about 12 ms of the
process's one interpreter, more than any DynamoDB request.

`lazy_queue_counts` makes the counts lazy: the map holds a `QueueCount` that counts when it is
shown (``str``, as ``GetQueueAttributes`` answers) or compared, so the requests that only read
another attribute no longer count anything. What a client reads is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["QueueCount", "lazy_queue_counts"]

_PATCHED = False


class QueueCount:
    """One of a queue's message counts, counted when it is read."""

    __slots__ = ("_count", "_queue")

    def __init__(self, queue: Any, count: Callable[[Any], int]) -> None:
        self._queue = queue
        self._count = count

    def __int__(self) -> int:
        return self._count(self._queue)

    def __index__(self) -> int:
        return int(self)

    def __str__(self) -> str:
        return str(int(self))

    def __repr__(self) -> str:
        return f"QueueCount({int(self)})"

    def __eq__(self, other: object) -> bool:
        return int(self) == other if isinstance(other, int | str) else NotImplemented

    def __hash__(self) -> int:
        return hash(int(self))


def lazy_queue_counts() -> None:
    """Idempotent; moto's queues count their messages only when a count is read."""
    global _PATCHED
    if _PATCHED:
        return
    from moto.sqs.models import Queue

    def lazy(name: str) -> property:
        counted: property = getattr(Queue, name)
        fget = counted.fget
        assert fget is not None
        return property(lambda queue: QueueCount(queue, fget), doc=counted.__doc__)

    for name in (
        "approximate_number_of_messages",
        "approximate_number_of_messages_delayed",
        "approximate_number_of_messages_not_visible",
    ):
        setattr(Queue, name, lazy(name))
    _PATCHED = True
