"""`Runtime`: the service and the worker over the same parts.

Handlers use one side each (`functions/http_api.py`, `websocket.py` and
`dispatch_events.py` the `Service`; `functions/worker.py` the `Worker`); one object with
both is what the Lambda bootstrap builds per cold start, what the local stack serves
and what tests drive. It adds nothing of its own.
"""

from __future__ import annotations

from agent_runtime.loop.settle import Settlement
from agent_runtime.service import DEFAULT_SESSION, Service
from agent_runtime.worker import DrainResult, Worker


class Runtime(Service, Worker):
    """Admission, reads and abort (`Service`) and the drain (`Worker`)."""


__all__ = ["DEFAULT_SESSION", "DrainResult", "Runtime", "Settlement"]
