"""The worker, and no other function, may invoke exactly the Bedrock models of the
``bedrock_models`` context (the test context names a foundation model and an inference
profile)."""

from __future__ import annotations

import json
from typing import Any

from infra.stack import HANDLERS, WEBSOCKET_HANDLER
from tests.infra.helpers import Resources, as_list, function_named, role_of, statements_of_role

NAMES = [spec.name for spec in (*HANDLERS, WEBSOCKET_HANDLER)]


def _bedrock(resources: Resources, name: str) -> list[dict[str, Any]]:
    role = role_of(function_named(resources, f"functions.{name}.handler")[1])
    return [s for s in statements_of_role(resources, role) if any(a.startswith("bedrock:") for a in as_list(s["Action"]))]


def test_only_the_worker_invokes_exactly_the_configured_models(resources: Resources) -> None:
    for name in NAMES:
        statements = _bedrock(resources, name)
        if name != "worker":
            assert statements == [], f"{name} may not call Bedrock"
            continue
        (statement,) = statements
        assert statement["Effect"] == "Allow"
        assert sorted(as_list(statement["Action"])) == ["bedrock:InvokeModel", "bedrock:InvokeModelWithResponseStream"]
        rendered = sorted(json.dumps(r, sort_keys=True) for r in as_list(statement["Resource"]))
        assert len(rendered) == 3
        assert any(":*::foundation-model/anthropic.claude-3-5-haiku-20241022-v1:0" in r for r in rendered)
        assert any(":*::foundation-model/amazon.nova-lite-v1:0" in r for r in rendered), "the profile's model, any region"
        assert any("inference-profile/us.amazon.nova-lite-v1:0" in r and "AWS::AccountId" in r for r in rendered)
