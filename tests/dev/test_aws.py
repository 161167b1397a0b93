"""The embedded AWS: one per process, and which requests its journal gate keeps."""

from __future__ import annotations

from typing import Any

import pytest

from agent_runtime.dev.aws import LocalAws, LocalAwsError
from agent_runtime.dev.journal_wsgi import is_journaled


def environ(method: str, service: str | None, target: str | None = None, path: str = "/") -> Any:
    env = {"REQUEST_METHOD": method, "PATH_INFO": path}
    if service:
        env["HTTP_AUTHORIZATION"] = (
            f"AWS4-HMAC-SHA256 Credential=local/20261121/us-east-1/{service}/aws4_request"
        )
    if target:
        env["HTTP_X_AMZ_TARGET"] = target
    return env


def test_only_writes_that_hold_durable_state_are_journaled() -> None:
    for target in ("GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems", "DescribeTable"):
        assert not is_journaled(environ("POST", "dynamodb", f"DynamoDB_20120810.{target}"))
    for target in ("PutItem", "TransactWriteItems", "CreateTable", "BatchWriteItem"):
        assert is_journaled(environ("POST", "dynamodb", f"DynamoDB_20120810.{target}"))
    assert not is_journaled(environ("GET", "s3")) and not is_journaled(environ("HEAD", "s3"))
    assert is_journaled(environ("PUT", "s3")) and is_journaled(environ("DELETE", "s3"))
    assert is_journaled(environ("POST", "scheduler", path="/schedules/one"))
    assert is_journaled(environ("POST", "events", "AWSEvents.PutRule"))
    # Not state, or not replayable: SQS, Step Functions, KMS, event deliveries, moto's own API.
    assert not is_journaled(environ("POST", "sqs", "AmazonSQS.SendMessage"))
    assert not is_journaled(environ("POST", "states", "AWSStepFunctions.StartExecution"))
    assert not is_journaled(environ("POST", "kms", "TrentService.CreateKey"))
    assert not is_journaled(environ("POST", "events", "AWSEvents.PutEvents"))
    assert not is_journaled(environ("POST", None, path="/moto-api/reset"))
    # A presigned upload carries its credential scope in the query string.
    presigned = environ("PUT", None, path="/bucket/key")
    presigned["QUERY_STRING"] = "X-Amz-Credential=local%2F20261121%2Fus-east-1%2Fs3%2Faws4_request"
    assert is_journaled(presigned)


def test_one_local_aws_per_process(local_aws: LocalAws) -> None:
    with pytest.raises(LocalAwsError, match="already runs"):
        LocalAws().start()
    assert local_aws.gate is not None and local_aws.gate.journal is None


def test_queue_counts_are_counted_only_when_read(local_aws: LocalAws) -> None:
    from moto.sqs.models import sqs_backends

    from agent_runtime.dev.moto_sqs import QueueCount

    assert local_aws.resources is not None
    sqs, url = local_aws.client("sqs"), local_aws.resources.queue_url
    for n in range(3):
        sqs.send_message(QueueUrl=url, MessageBody=f"m{n}", MessageGroupId=f"g{n}", MessageDeduplicationId=f"d{n}")
    assert len(sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1)["Messages"]) == 1
    names = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible", "ApproximateNumberOfMessagesDelayed"]
    answered = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=names)["Attributes"]
    assert answered == dict(zip(names, ["2", "1", "0"], strict=True))
    everything = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert everything["ApproximateNumberOfMessages"] == "2" and everything["FifoQueue"] == "true"
    queue = sqs_backends["123456789012"][local_aws.region].queues[url.rsplit("/", 1)[-1]]
    count = queue.attributes["ApproximateNumberOfMessages"]
    assert isinstance(count, QueueCount) and count == 2 and int(count) == 2
