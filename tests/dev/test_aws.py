"""The embedded AWS: one per process, and the change tracker that drives autosaving."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from agent_runtime.dev.aws import ChangeTracker, LocalAws, LocalAwsError


def call(tracker: ChangeTracker, method: str, service: str, target: str | None = None) -> None:
    environ = {
        "REQUEST_METHOD": method,
        "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=local/20261121/us-east-1/{service}/aws4_request",
    }
    if target:
        environ["HTTP_X_AMZ_TARGET"] = target
    tracker(environ, lambda *args: None)


def test_only_writes_count_as_changes() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return [b""]

    tracker = ChangeTracker(app)
    for target in ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable"):
        call(tracker, "POST", "dynamodb", f"DynamoDB_20120810.{target}")
    call(tracker, "POST", "sqs", "AmazonSQS.ReceiveMessage")
    call(tracker, "GET", "s3")
    call(tracker, "HEAD", "s3")
    assert (
        tracker.generation("dynamodb"),
        tracker.generation("s3"),
        tracker.generation("sqs"),
    ) == (0, 0, 0)
    call(tracker, "POST", "dynamodb", "DynamoDB_20120810.TransactWriteItems")
    call(tracker, "PUT", "s3")
    call(tracker, "POST", "sqs", "AmazonSQS.SendMessage")
    assert (
        tracker.generation("dynamodb"),
        tracker.generation("s3"),
        tracker.generation("sqs"),
    ) == (1, 1, 1)
    tracker({"REQUEST_METHOD": "DELETE"}, lambda *args: None)  # unsigned: counts for every service
    assert (tracker.generation("dynamodb"), tracker.generation("s3")) == (2, 2)


def test_one_local_aws_per_process(local_aws: LocalAws) -> None:
    with pytest.raises(LocalAwsError, match="already runs"):
        LocalAws().start()
    assert local_aws.tracker is not None
    before = local_aws.tracker.generation("dynamodb")
    local_aws.client("dynamodb").list_tables()
    local_aws.client("dynamodb").delete_table(TableName="agent-runtime")
    assert local_aws.tracker.generation("dynamodb") == before + 1
