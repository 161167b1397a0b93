"""Configuration from context, and what the prod stage changes in the template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from infra.app import build_app, project_context
from infra.config import StackConfig
from infra.stack import websocket_enabled
from tests.infra.helpers import of_type


class _Node:
    def __init__(self, values: dict[str, Any]) -> None:
        self.values = values

    def try_get_context(self, key: str) -> Any:
        return self.values.get(key)


def test_defaults() -> None:
    config = StackConfig.from_context(_Node({}))
    assert config.stage == "dev"
    assert config.log_retention_days == 30
    assert config.retain is False
    assert config.cors_origins == ()
    assert config.model_secret is None
    assert config.bundle is True
    assert (config.api_rate_limit, config.api_burst_limit, config.worker_concurrency) == (100, 200, 50)


def test_command_line_strings_are_parsed() -> None:
    config = StackConfig.from_context(
        _Node(
            {
                "stage": "prod",
                "log_retention_days": "90",
                "worker_memory_mb": "2048",
                "cors_origins": "https://a.example.com, https://b.example.com",
                "bundle": "false",
                "websocket": "auto",
                "model_secret": "",
                "worker_concurrency": "0",
                "api_rate_limit": "12.5",
            }
        )
    )
    assert config.worker_concurrency == 0 and config.api_rate_limit == 12.5
    assert config.log_retention_days == 90
    assert config.worker_memory_mb == 2048
    assert config.cors_origins == ("https://a.example.com", "https://b.example.com")
    assert config.bundle is False
    assert config.model_secret is None
    assert config.retain is True  # prod keeps data by default


@pytest.mark.parametrize(
    "values",
    [
        {"stage": "prod", "removal_policy": "destroy"},
        {"log_retention_days": 31},
        {"stage": "staging"},
        {"cors_origins": "example.com"},
        {"unknown_key": 1},
        {"worker_concurrency": 1},
        {"worker_concurrency": 1001},
        {"api_rate_limit": 0},
    ],
)
def test_rejected(values: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StackConfig.model_validate(values)


def test_cdk_json_context_is_valid() -> None:
    config = StackConfig.from_context(_Node(project_context()))
    assert config.stage == "dev"


def test_websocket_auto_follows_the_handler_module(tmp_path: Path) -> None:
    auto = StackConfig(websocket="auto")
    assert websocket_enabled(auto, root=tmp_path) is False
    (tmp_path / "functions").mkdir()
    (tmp_path / "functions" / "websocket.py").write_text("")
    assert websocket_enabled(auto, root=tmp_path) is True
    assert websocket_enabled(StackConfig(websocket=False), root=tmp_path) is False


def test_prod_retains_data_and_allows_configured_origins(tmp_path: Path) -> None:
    app, stack = build_app(
        {
            "stage": "prod",
            "bundle": False,
            "websocket": False,
            "cors_origins": "https://app.example.com",
            "model_secret": "arn:aws:secretsmanager:eu-west-1:123456789012:secret:model-key-AbC123",
        },
        outdir=str(tmp_path),
    )
    template = app.synth().get_stack_by_name(stack.stack_name).template
    resources = template["Resources"]
    assert stack.stack_name == "AgentRuntime-prod"

    (table,) = of_type(resources, "AWS::DynamoDB::Table").values()
    assert table["DeletionPolicy"] == "Retain"
    assert table["Properties"]["DeletionProtectionEnabled"] is True
    # The secret variables' key goes with the table: kept, never scheduled for deletion.
    (key,) = of_type(resources, "AWS::KMS::Key").values()
    assert key["DeletionPolicy"] == "Retain"
    for kind in ("AWS::S3::Bucket", "AWS::Logs::LogGroup"):
        assert {body["DeletionPolicy"] for body in of_type(resources, kind).values()} == {"Retain"}

    bucket = next(
        body
        for body in of_type(resources, "AWS::S3::Bucket").values()
        if "CorsConfiguration" in body["Properties"]
    )
    (rule,) = bucket["Properties"]["CorsConfiguration"]["CorsRules"]
    assert rule["AllowedOrigins"] == ["https://app.example.com"]
    # Presigned uploads (PUT) and downloads (GET) from the browser.
    assert rule["AllowedMethods"] == ["PUT", "GET"]
    (http_api,) = of_type(resources, "AWS::ApiGatewayV2::Api").values()
    cors = http_api["Properties"]["CorsConfiguration"]
    assert cors["AllowOrigins"] == ["https://app.example.com"]
    # The file and variable routes PUT and DELETE.
    assert set(cors["AllowMethods"]) == {"GET", "POST", "PUT", "DELETE", "OPTIONS"}

    # An existing secret is used, not created; the worker gets its ARN.
    assert of_type(resources, "AWS::SecretsManager::Secret") == {}
    worker = next(
        body
        for body in of_type(resources, "AWS::Lambda::Function").values()
        if body["Properties"]["Handler"] == "functions.worker.handler"
    )
    env = worker["Properties"]["Environment"]["Variables"]
    assert env["AGENT_RUNTIME_MODEL_SECRET_ARN"].endswith(":secret:model-key-AbC123")
    # No WebSocket API when it is off.
    assert "WebSocketUrl" not in template["Outputs"]
