"""What a Lambda handler loads on a cold start: never the model client, the SDK's client
or websockets, and no pydantic schema.

Each handler module is imported in a fresh interpreter, then the project's agents are
discovered as on a first invocation, with ``ANTHROPIC_API_KEY`` set so that an agent
choosing its model by it resolves an ``anthropic/...`` one. Resolving must not import
the model client (``httpx2``; the ``anthropic`` and ``openai`` SDKs are not used at all):
only the worker's function ships it (in its own layer), and only a model call needs it.

The runtime's pydantic models and adapters build their validators on first use
(``defer_build``), not at import: a cold handler builds only those it uses.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HANDLERS = sorted(
    f"functions.{path.stem}" for path in (ROOT / "functions").glob("*.py") if not path.stem.startswith("_")
)
# The model SDK and what only the command line, the client SDK, the local stack and the
# tests use (`infra.bundling.NOT_IN_LAMBDA_SOURCE` leaves the last ones out of Lambda);
# OpenTelemetry too: with tracing off (`agent_runtime.tracing`) nothing of it loads.
NEVER_LOADED = (
    "anthropic", "openai", "httpx2", "httpx", "websockets", "opentelemetry",
    "agent_runtime.client", "agent_runtime.cli", "agent_runtime.dev", "agent_runtime.testing",
)  # fmt: skip

_PROBE = """
import gc, json, sys
import {module}
collector = {{"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}
at_import = sorted(name for name in {never!r} if name in sys.modules)

def built(cls):
    found = []
    for sub in cls.__subclasses__():
        if sub.__module__.startswith(("agent_runtime", "functions")) and sub.__dict__.get("__pydantic_complete__"):
            found.append(sub.__qualname__)
        found += built(sub)
    return found

from pydantic import BaseModel
schemas = sorted(set(built(BaseModel)))
from agent_runtime.definition import AgentContext
from agent_runtime.registry import discover
registry = discover("agents")
model = registry.get("support-assistant").definition.configure(AgentContext(id="t-1")).model
at_discovery = sorted(name for name in {never!r} if name in sys.modules)
print(json.dumps({{"import": at_import, "discovery": at_discovery, "model": str(model), "gc": collector, "schemas": schemas}}))
"""


@pytest.mark.parametrize("module", HANDLERS)
def test_handler_loads_no_model_sdk_client_or_websockets(module: str) -> None:
    env = {
        **os.environ,
        "ANTHROPIC_API_KEY": "sk-never-used",
        "PYTHONPATH": str(ROOT),
        "POWERTOOLS_SERVICE_NAME": "agent-runtime",
    }
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, never=NEVER_LOADED)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["model"].startswith("anthropic/")  # the key is set: resolved, not called
    assert loaded["import"] == []
    assert loaded["discovery"] == []
    assert loaded["schemas"] == []  # no model of the runtime built its validator at import
    # The collector, paused for the imports (`functions.__init__`), runs again, and what
    # the imports made is frozen out of its way.
    assert loaded["gc"]["enabled"] is True
    assert loaded["gc"]["frozen"] > 10_000
