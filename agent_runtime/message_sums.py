"""Sums over a whole history, at a cost that does not grow with it.

A request carries the session's whole history, and some figures are sums over it (the
test models' token estimate, compaction's estimate, the count of attached files). Summed
in a Python loop, each turn of a long session pays again for every earlier message. A
history grows by appending the same (frozen) message objects turn after turn, so a
`MessageSum` remembers the total of the lists it has summed and, given a list that
extends one of them, adds only the new messages. The prefix check is one list
comparison in C (identity first, then equality), about a microsecond for a thousand
messages; the list it keeps grows with the new messages rather than being copied
whole at each call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from agent_runtime.messages import Message

#: Lists remembered per sum (about one per session a worker serves at once); past
#: it the memory starts afresh: a miss only costs one full sum.
REMEMBERED = 256


class MessageSum:
    """``sum(value(m) for m in messages)``, paying only for messages not summed before."""

    def __init__(self, value: Callable[[Message], int], *, remembered: int = REMEMBERED) -> None:
        self._value = value
        self._remembered = remembered
        #: id of a list's first message -> (the messages summed, their total). The list is
        #: this object's own copy (extended in place as the history grows) and holds the
        #: message, so that id is not reused while the entry lives.
        self._known: dict[int, tuple[list[Message], int]] = {}
        self._lock = threading.Lock()

    def __call__(self, messages: Sequence[Message]) -> int:
        if not messages:
            return 0
        current = messages if isinstance(messages, list) else list(messages)
        key = id(current[0])
        with self._lock:
            known = self._known.get(key)
            if known is not None:
                summed, total = known
                done = len(summed)
                if done == len(current) and summed == current:
                    return total  # asked again about the same messages
                if done < len(current) and summed == current[:done]:
                    added = current[done:]
                    total += sum(self._value(message) for message in added)
                    summed.extend(added)
                    self._known[key] = (summed, total)
                    return total
            total = sum(self._value(message) for message in current)
            if len(self._known) >= self._remembered:
                self._known.clear()
            self._known[key] = (list(current), total)
            return total


__all__ = ["REMEMBERED", "MessageSum"]
