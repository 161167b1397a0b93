"""Execution environments as child processes: closing the pool while an invocation runs."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agent_runtime.dev.lambda_environment import EnvironmentPool
from agent_runtime.dev.lambda_runtime import FunctionError, marshal
from tests.pipes import slow_pipe_closes


@pytest.fixture
def slow_pipe_close() -> Iterator[None]:
    """Two threads closing one pipe would collide every time (see `tests.pipes`)."""
    undo = slow_pipe_closes()
    yield
    undo()


def test_closing_the_pool_ends_a_running_invocation_cleanly(
    tmp_path: Path, slow_pipe_close: None
) -> None:
    """The invocation fails with Runtime.ExitError, neither thread raises, and the closing
    thread does not wait for the handler (which would sleep for 30 s)."""
    pool = EnvironmentPool(
        spec="tests.dev.handlers:blocked",
        function_name="blocked",
        memory_mb=128,
        arn="arn:aws:lambda:us-east-1:123456789012:function:blocked",
        max_concurrency=1,
    )
    pool.warm()
    started = tmp_path / "started"
    with ThreadPoolExecutor(1) as invoker:
        running = invoker.submit(
            pool.invoke,
            marshal({"started": str(started)}),
            request_id="r1",
            timeout=30.0,
            wait=30.0,
        )
        deadline = time.monotonic() + 10
        while not started.exists():
            assert time.monotonic() < deadline, "the handler never started"
            assert not running.done(), running.result()
            time.sleep(0.01)

        began = time.monotonic()
        pool.close()  # raised OSError (EBADF) when both threads closed the pipe
        assert time.monotonic() - began < 5
        outcome, error = running.result(timeout=10)  # ... or this one did

    assert outcome == "error"
    assert isinstance(error, FunctionError) and error.error_type == "Runtime.ExitError"
    # A closed pool refuses further work instead of starting an environment.
    outcome, error = pool.invoke(marshal({}), request_id="r2", timeout=1.0, wait=1.0)
    assert outcome == "error" and error.error_type == "Runtime.Shutdown"
    assert multiprocessing.active_children() == []  # no environment left behind
