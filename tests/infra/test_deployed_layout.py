"""The Lambda code as shipped, built for this machine by the deployment's own pipeline
(`infra.replica`: real pip, bytecode, sourceless layers, what is stripped stripped): every
function imports its handler in an isolated interpreter with exactly its import path,
finds the project's agents, and only the worker's can load the model SDK. A packaging
rule that drops something a handler needs fails here rather than after ``cdk deploy``.
"""

from __future__ import annotations

import json

import pytest

from infra import bundling
from infra.constructs.functions import HandlerSpec
from infra.replica import Replica, build
from infra.stack import HANDLERS, WEBSOCKET_HANDLER

FUNCTIONS = (*HANDLERS, WEBSOCKET_HANDLER)
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AGENT_RUNTIME_TABLE": "t",
    "AGENT_RUNTIME_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo",
    "AGENT_RUNTIME_BUCKET": "b",
    "POWERTOOLS_SERVICE_NAME": "agent-runtime",
    "ANTHROPIC_API_KEY": "sk-never-used",
}

_PROBE = """
import importlib, json, sys
module, attribute = {module!r}, {attribute!r}
handler = getattr(importlib.import_module(module), attribute)
from agent_runtime.registry import discover
agents = discover("agents").names()
try:
    import httpx2
    httpx2.AsyncClient()
    sdk = httpx2.__file__
except ImportError:
    sdk = None
print(json.dumps({{
    "callable": callable(handler),
    "agents": agents,
    "sdk": sdk,
    "pydantic": sys.modules["pydantic"].__file__,
    "handler_bytecode": sys.modules[module].__cached__,
    "shipped_only_for_the_cli": "httpx" in sys.modules,
}}))
"""


@pytest.fixture(scope="module")
def replica() -> Replica:
    return build()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=[spec.name for spec in FUNCTIONS])
def test_each_function_runs_from_its_deployed_layout(replica: Replica, spec: HandlerSpec) -> None:
    module, _, attribute = spec.handler.rpartition(".")
    result = replica.python(
        _PROBE.format(module=module, attribute=attribute),
        replica.path(calls_models=spec.calls_models),
        env=ENV,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["callable"] is True
    assert "support-assistant" in found["agents"]
    # Dependencies come from the common layer, as bytecode; the handler from the source
    # asset's precompiled cache.
    assert found["pydantic"].startswith(str(replica.common)) and found["pydantic"].endswith(".pyc")
    assert found["handler_bytecode"].startswith(str(replica.source))
    assert found["shipped_only_for_the_cli"] is False
    if spec.calls_models:
        assert replica.model is not None and found["sdk"].startswith(str(replica.model))
    else:
        assert found["sdk"] is None  # the model SDK is not in this function's layers


def test_the_layers_hold_no_sources_and_no_install_records(replica: Replica) -> None:
    for layer in (replica.common, replica.model):
        assert layer is not None
        site = layer / "python"
        assert not list(site.rglob("*.py")), "dependencies ship as bytecode only"
        assert not list(site.glob("*.dist-info/RECORD"))
        assert not [entry for entry in site.iterdir() if entry.name.split("-")[0] in bundling.NOT_FOR_LAMBDA]
