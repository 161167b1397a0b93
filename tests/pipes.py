"""Make the race between two threads closing one pipe certain instead of rare.

`multiprocessing.connection.Connection.close` is "if the handle is set: close it, then unset
it". Two threads closing one pipe at about the same time can both pass the test before either
unsets the handle; the second ``close(2)`` then fails with EBADF, or closes whatever file
reused the number in between. The window is microseconds wide. `slow_pipe_closes` widens it
to `seconds`, far more than the gap between two threads woken by the same event.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from multiprocessing import connection
from typing import Any


def slow_pipe_closes(seconds: float = 0.3) -> Callable[[], None]:
    """Every pipe of this process takes `seconds` to close; returns the undo."""
    original = connection.Connection._close  # type: ignore[attr-defined]

    def slow(self: Any, _close: Callable[[int], None] = os.close) -> None:
        handle = self._handle  # read before the wait, as the real close reads it at once
        time.sleep(seconds)
        _close(handle)

    connection.Connection._close = slow  # type: ignore[attr-defined]

    def undo() -> None:
        connection.Connection._close = original  # type: ignore[attr-defined]

    return undo
