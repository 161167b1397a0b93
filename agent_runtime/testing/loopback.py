"""A test server on ``127.0.0.1`` (a free port by default), serving from a daemon thread:
what the local fakes of the model providers' HTTP APIs share (a context manager), with
the script of answers each fake takes its replies from."""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class LoopbackServer(ABC):
    #: The serving thread's name, and how often it looks for a shutdown.
    thread_name = "fake-server"
    poll_interval = 0.05

    def __init__(self, *, port: int = 0) -> None:
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @abstractmethod
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        """The request handler class, made when the server starts."""

    @property
    def address(self) -> str:
        """``http://127.0.0.1:<port>`` while running."""
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": self.poll_interval},
            name=self.thread_name,
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()




class ScriptedAnswers(Generic[T]):
    """A fake's answers, taken in order by the requests it serves, then `default` (None:
    the fake says its script is exhausted). Thread-safe: the server answers from threads."""

    def __init__(self, script: Iterable[T] = (), *, default: T | None = None) -> None:
        self.default = default
        self._script: deque[T] = deque(script)
        self._lock = threading.Lock()

    def add(self, *items: T) -> None:
        with self._lock:
            self._script.extend(items)

    @property
    def remaining(self) -> int:
        return len(self._script)

    def assert_done(self) -> None:
        if self._script:
            raise AssertionError(f"{type(self).__name__} has {len(self._script)} unused script item(s)")

    def _next_answer(self) -> T | None:
        with self._lock:
            return self._script.popleft() if self._script else self.default


__all__ = ["LoopbackServer", "ScriptedAnswers"]
