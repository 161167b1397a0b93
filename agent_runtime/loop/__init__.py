"""The turn loop: the durable step machine (`attempt`), its steps (`steps`), the
built-in tools behind one router (`builtins`), the application's tools (`tools`) and
the one place a submission settles (`settle`).

Names are loaded on first use: the service side (admission, reads, abort) settles through
`settle` without loading the step machine, which only the worker runs.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "MAX_RESULT_REPAIRS": "attempt",
    "Attempt": "attempt",
    "Checkpoint": "attempt",
    "Builtin": "builtins",
    "CallContext": "builtins",
    "Family": "builtins",
    "Handled": "builtins",
    "Router": "builtins",
    "input_message": "inputs",
    "Settlement": "settle",
    "settle": "settle",
    "Finish": "steps",
    "Suspend": "steps",
    "Yield": "steps",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(f"agent_runtime.loop.{module}"), name)
