"""Build the CDK app: context from ``cdk.json`` (plus overrides), one stack.

``cdk.json``'s context is loaded here, so ``python app.py`` and the tests synthesize what
the CDK CLI does. The stack is named ``AgentRuntime-<stage>``, so dev and prod deploy
side by side.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import aws_cdk as cdk

from infra.config import StackConfig
from infra.stack import AgentRuntimeStack

CDK_JSON = Path(__file__).resolve().parents[1] / "cdk.json"


def project_context(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """``cdk.json``'s context with `overrides` on top. (Context the CDK CLI passes, from
    ``-c`` or ``cdk.context.json``, still wins over both.)"""
    context = dict(json.loads(CDK_JSON.read_text()).get("context", {}))
    return {**context, **(overrides or {})}


def build_app(
    context: dict[str, Any] | None = None, *, outdir: str | None = None
) -> tuple[cdk.App, AgentRuntimeStack]:
    """The app and its one stack; account and region come from the CLI's environment."""
    app = cdk.App(context=project_context(context), outdir=outdir)
    config = StackConfig.from_context(app.node)
    stack = AgentRuntimeStack(
        app,
        f"AgentRuntime-{config.stage}",
        config=config,
        description="agent-runtime: durable, addressable AI agents",
        env=cdk.Environment(
            account=os.environ.get("CDK_DEFAULT_ACCOUNT"),
            region=os.environ.get("CDK_DEFAULT_REGION"),
        ),
    )
    cdk.Tags.of(stack).add("project", "agent-runtime")
    cdk.Tags.of(stack).add("stage", config.stage)
    return app, stack
