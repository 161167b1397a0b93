"""With ``tracing=xray`` every function is told the sink and may write spans to X-Ray,
and cfn-lint and cdk-nag stay clean; without it (the shared synthesis) none is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_runtime import settings
from infra.checks import Synthesis, cfn_lint, synthesize
from infra.stack import HANDLERS, WEBSOCKET_HANDLER
from tests.infra import helpers
from tests.infra.conftest import TEST_CONTEXT
from tests.infra.helpers import Resources

NAMES = [spec.name for spec in (*HANDLERS, WEBSOCKET_HANDLER)]


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize({**TEST_CONTEXT, "tracing": "xray"}, outdir=tmp_path_factory.mktemp("cdk.out.traced"))


def _xray_actions(resources: Resources, name: str) -> list[str]:
    role = helpers.role_of(helpers.function_named(resources, f"functions.{name}.handler")[1])
    return sorted(a for s in helpers.statements_of_role(resources, role) for a in helpers.as_list(s["Action"]) if a.startswith("xray:"))


def _environment(resources: Resources, name: str) -> dict[str, Any]:
    return dict(helpers.function_named(resources, f"functions.{name}.handler")[1]["Properties"]["Environment"]["Variables"])


def test_traced_functions_write_spans_to_xray(traced: Synthesis) -> None:
    resources = dict(traced.template["Resources"])
    for name in NAMES:
        assert _environment(resources, name)[settings.ENV_TRACING] == "xray", name
        assert _xray_actions(resources, name) == ["xray:PutSpans", "xray:PutSpansForIndexing", "xray:PutTraceSegments"], name
    assert traced.findings == []
    code, output = cfn_lint(traced.template_path)
    assert code == 0, output


def test_untraced_functions_are_told_nothing_and_granted_nothing(resources: Resources) -> None:
    for name in NAMES:
        assert settings.ENV_TRACING not in _environment(resources, name)
        assert _xray_actions(resources, name) == []


def test_the_trace_route_is_an_api_route(resources: Resources) -> None:
    keys = {r["Properties"]["RouteKey"] for r in helpers.of_type(resources, "AWS::ApiGatewayV2::Route").values()}
    assert "GET /agents/{name}/{id}/submissions/{submission_id}/trace" in keys


def test_the_tracing_layer_is_the_tracing_extra() -> None:
    from infra.bundling import ROOT, tracing_requirements

    assert [r.split(">")[0] for r in tracing_requirements(Path(ROOT))] == [
        "opentelemetry-api",
        "opentelemetry-sdk",
        "opentelemetry-exporter-otlp-proto-http",
    ]


def test_the_tracing_context_names_known_sinks() -> None:
    from pydantic import ValidationError

    from infra.config import StackConfig

    assert StackConfig(tracing="xray, table").tracing == ("table", "xray")  # type: ignore[arg-type]
    assert StackConfig().tracing == ()
    with pytest.raises(ValidationError, match="unknown sink"):
        StackConfig(tracing="jaeger")  # type: ignore[arg-type]
