"""Synthesize the stack once per session (with cdk-nag) and share the template.

Every test here carries the ``infra`` marker (``-m "not infra"`` skips CDK entirely);
synthesis takes a few seconds, so it happens once for all of them. Dependencies are
not installed (``bundle=false``): the source asset is still built.
"""

from __future__ import annotations

import os

# Before aws_cdk loads: jsii prints a banner on every start under an end-of-life Node.js.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20")

from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Template

from infra.checks import Synthesis, synthesize

# The WebSocket surface is forced on so its routes are checked whether or not
# functions/websocket.py exists yet.
TEST_CONTEXT: dict[str, Any] = {
    "bundle": False,
    "websocket": True,
    "bedrock_models": "anthropic.claude-3-5-haiku-20241022-v1:0,us.amazon.nova-lite-v1:0",
}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "infra: synthesizes the CDK app (a few seconds)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.infra)


@pytest.fixture(scope="session")
def synthesis(tmp_path_factory: pytest.TempPathFactory) -> Synthesis:
    return synthesize(TEST_CONTEXT, outdir=tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session")
def template(synthesis: Synthesis) -> dict[str, Any]:
    return synthesis.template


@pytest.fixture(scope="session")
def resources(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(template["Resources"])


@pytest.fixture(scope="session")
def cdk_template(template: dict[str, Any]) -> Template:
    return Template.from_json(template)
