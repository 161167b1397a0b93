"""The composed local stack: environment, persistence across restarts and crashes, run_dev."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime import settings
from agent_runtime.dev import HandlerImportError, LocalStack, LocalStateError
from agent_runtime.dev.aws import LocalAws

ROOT = Path(__file__).resolve().parents[2]


def stack(state_dir: Path, **options: Any) -> LocalStack:
    return LocalStack(
        port=0,
        state_dir=state_dir,
        http_handler="tests.dev.handlers:echo",
        worker_handler="tests.dev.handlers:ok_worker",
        pollers=1,
        **options,
    )


def test_the_stack_serves_and_sets_the_environment(tmp_path: Path) -> None:
    before = os.environ.get("AWS_ENDPOINT_URL")
    with stack(tmp_path / "state") as running:
        # Measured, not bounded here: on a loaded machine a bound would only make the test flaky.
        assert running.ready_seconds > 0 and set(running.phases) == {
            "aws",
            "restore",
            "handler init",
        }
        assert os.environ["AWS_ENDPOINT_URL"] == running.aws.endpoint_url
        assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
        assert os.environ[settings.ENV_TABLE] == settings.LOCAL_TABLE
        assert os.environ[settings.ENV_QUEUE_URL].endswith(settings.LOCAL_QUEUE)
        assert os.environ[settings.ENV_BUCKET] == settings.LOCAL_BUCKET
        assert httpx.get(f"{running.url}/health").status_code == 200
        event = httpx.get(f"{running.url}/x").json()["event"]
        assert event["rawPath"] == "/x"
    assert os.environ.get("AWS_ENDPOINT_URL") == before
    assert (
        settings.ENV_TABLE not in os.environ
        or os.environ[settings.ENV_TABLE] != settings.LOCAL_TABLE
    )


QUEUE = "arn:aws:sqs:us-east-1:123456789012:extra"
PATTERN = json.dumps({"detail-type": [settings.EFFECT_DETAIL_TYPE]})
SCHEDULE: dict[str, Any] = {
    "Name": "effect-1",
    "GroupName": settings.LOCAL_SCHEDULE_GROUP,
    "ScheduleExpression": "at(2031-01-01T00:00:00)",
    "FlexibleTimeWindow": {"Mode": "OFF"},
    "Target": {"Arn": QUEUE, "RoleArn": "arn:aws:iam::123456789012:role/s", "Input": "{}"},
    "ActionAfterCompletion": "DELETE",
}


def put_everything(running: LocalStack) -> None:
    dynamodb, s3, sqs = (running.aws.client(s) for s in ("dynamodb", "s3", "sqs"))
    for n in range(60):  # more than one BatchWriteItem
        dynamodb.put_item(
            TableName=settings.LOCAL_TABLE,
            Item={
                "pk": {"S": "agent/one"},
                "sk": {"S": f"item#{n:03d}"},
                "n": {"N": str(n)},
                "blob": {"B": bytes([n, 0, 255])},
                "nested": {
                    "M": {"list": {"L": [{"B": b"\x01"}, {"S": "x"}]}, "set": {"BS": [b"a", b"b"]}}
                },
            },
        )
    dynamodb.create_table(
        TableName="extra",
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "id", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-kind",
                "KeySchema": [{"AttributeName": "kind", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )
    dynamodb.put_item(TableName="extra", Item={"id": {"S": "1"}, "kind": {"S": "k"}})
    s3.put_object(
        Bucket=settings.LOCAL_BUCKET,
        Key="agents/one/files/a b.png",
        Body=b"\x89PNG\x00",
        ContentType="image/png",
        Metadata={"origin": "test"},
    )
    s3.put_object(Bucket=settings.LOCAL_BUCKET, Key="empty", Body=b"")
    s3.create_bucket(Bucket="extra-bucket")
    s3.put_object(Bucket="extra-bucket", Key="k", Body=b"same")
    # The stack made the schedule group and the bus (with its dispatch rule) when it started.
    scheduler, events = running.aws.client("scheduler"), running.aws.client("events")
    scheduler.create_schedule(**SCHEDULE)
    events.put_rule(Name="effects", EventBusName=settings.LOCAL_EVENT_BUS, EventPattern=PATTERN)
    events.put_targets(
        Rule="effects", EventBusName=settings.LOCAL_EVENT_BUS, Targets=[{"Id": "q", "Arn": QUEUE}]
    )
    queue = sqs.create_queue(QueueName="extra.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    for n in range(12):
        sqs.send_message(
            QueueUrl=queue,
            MessageBody=f"m{n}",
            MessageGroupId=f"g{n % 2}",
            MessageDeduplicationId=f"d{n}",
            MessageAttributes={"bin": {"DataType": "Binary", "BinaryValue": b"\x00\x01"}},
        )


def test_data_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with stack(state, isolation="thread") as first:
        put_everything(first)
    manifest = json.loads((state / "state.json").read_text())
    assert (manifest["format"], manifest["version"]) == ("agent-runtime-local-state", 2)
    assert manifest["queues"]["extra.fifo"]["messages"] == 12

    with stack(state, isolation="thread") as second:
        restored = second.restored
        assert (restored.items, restored.objects, restored.messages, restored.schedules) == (
            61,
            3,
            12,
            1,
        )
        assert restored.replayed == 0  # a clean stop took a snapshot: the journal is empty
        scheduler, events = second.aws.client("scheduler"), second.aws.client("events")
        schedule = scheduler.get_schedule(Name="effect-1", GroupName=settings.LOCAL_SCHEDULE_GROUP)
        assert {k: schedule[k] for k in SCHEDULE if k != "Target"} == {
            k: v for k, v in SCHEDULE.items() if k != "Target"
        }
        assert schedule["Target"].items() >= SCHEDULE["Target"].items()  # moto adds defaults
        rule = events.describe_rule(Name="effects", EventBusName=settings.LOCAL_EVENT_BUS)
        assert rule["EventPattern"] == PATTERN
        targets = events.list_targets_by_rule(Rule="effects", EventBusName=settings.LOCAL_EVENT_BUS)
        assert targets["Targets"] == [{"Id": "q", "Arn": QUEUE}]
        # Back in their queue: the folder forgets them, so a crash now cannot deliver them twice.
        assert json.loads((state / "state.json").read_text())["queues"] == {}
        assert not (state / "sqs" / "extra.fifo.jsonl").exists()
        dynamodb, s3, sqs = (second.aws.client(s) for s in ("dynamodb", "s3", "sqs"))
        items = dynamodb.query(
            TableName=settings.LOCAL_TABLE,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": "agent/one"}},
        )["Items"]
        assert len(items) == 60
        assert items[7]["blob"] == {"B": bytes([7, 0, 255])}
        assert items[7]["nested"]["M"]["list"]["L"][0] == {"B": b"\x01"}
        assert sorted(items[7]["nested"]["M"]["set"]["BS"]) == [b"a", b"b"]
        by_kind = dynamodb.query(
            TableName="extra",
            IndexName="by-kind",
            KeyConditionExpression="kind = :k",
            ExpressionAttributeValues={":k": {"S": "k"}},
        )["Items"]
        assert by_kind == [{"id": {"S": "1"}, "kind": {"S": "k"}}]
        image = s3.get_object(Bucket=settings.LOCAL_BUCKET, Key="agents/one/files/a b.png")
        assert (image["Body"].read(), image["ContentType"], image["Metadata"]) == (
            b"\x89PNG\x00",
            "image/png",
            {"origin": "test"},
        )
        assert s3.get_object(Bucket=settings.LOCAL_BUCKET, Key="empty")["Body"].read() == b""
        assert s3.get_object(Bucket="extra-bucket", Key="k")["Body"].read() == b"same"
        queue = sqs.get_queue_url(QueueName="extra.fifo")["QueueUrl"]
        received: list[dict[str, Any]] = []
        while batch := sqs.receive_message(
            QueueUrl=queue,
            MaxNumberOfMessages=10,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages", []):
            received.extend(batch)
            sqs.delete_message_batch(
                QueueUrl=queue,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)
                ],
            )
        for group in ("g0", "g1"):
            bodies = [m["Body"] for m in received if m["Attributes"]["MessageGroupId"] == group]
            assert bodies == [f"m{n}" for n in range(12) if f"g{n % 2}" == group]
        assert received[0]["MessageAttributes"]["bin"]["BinaryValue"] == b"\x00\x01"


def test_an_unknown_state_version_is_refused(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text(
        json.dumps({"format": "agent-runtime-local-state", "version": 99})
    )
    with pytest.raises(LocalStateError, match="version 99; this version reads 1, 2"):
        stack(tmp_path).start()
    with LocalAws():  # nothing was left running
        pass


def test_a_failed_start_leaves_the_folder_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "sqs").mkdir()
    (tmp_path / "sqs" / "waiting.fifo.jsonl").write_text(
        json.dumps({"body": "wake", "group_id": "g", "deduplication_id": "d", "attributes": {}})
        + "\n"
    )
    manifest = {
        "format": "agent-runtime-local-state",
        "version": 1,
        "tables": {},
        "buckets": {},
        "queues": {
            "waiting.fifo": {
                "file": "sqs/waiting.fifo.jsonl",
                "messages": 1,
                "attributes": {"FifoQueue": "true"},
            }
        },
    }
    (tmp_path / "state.json").write_text(json.dumps(manifest))
    broken = LocalStack(
        port=0,
        state_dir=tmp_path,
        http_handler="tests.dev.broken_handler:handler",
        worker_handler="tests.dev.handlers:ok_worker",
        pollers=1,
        isolation="thread",
    )
    with pytest.raises(HandlerImportError, match="init failed on purpose"):
        broken.start()
    assert json.loads((tmp_path / "state.json").read_text())["queues"] == manifest["queues"]
    assert (tmp_path / "sqs" / "waiting.fifo.jsonl").exists()


def start_dev(state: Path) -> tuple[subprocess.Popen[str], str, str]:
    """Run ``run_dev`` in a child process; its URL and start-up line once it prints ready."""
    code = (
        "from agent_runtime.dev import run_dev; "
        f"run_dev(0, 'agents', {str(state)!r}, http_handler='tests.dev.handlers:store', "
        "worker_handler='tests.dev.handlers:ok_worker', autosave_interval=0.2, pollers=1, "
        "isolation='thread')"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if ready := re.fullmatch(r"ready: (http://127\.0\.0\.1:\d+)\n", line):
            return process, ready.group(1), "".join(lines[:-1])
    process.kill()
    raise AssertionError(f"no ready line: {lines}")


def stop_dev(process: subprocess.Popen[str], signum: int) -> int:
    process.send_signal(signum)
    try:
        return process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise


def test_run_dev_survives_kill_9_and_saves_on_sigterm(tmp_path: Path) -> None:
    state = tmp_path / "state"
    process, url, startup = start_dev(state)
    try:
        assert re.match(
            r"started in \d+\.\d\d s \(aws [0-9.]+ s, restore [0-9.]+ s, handler init", startup
        )
        assert httpx.post(f"{url}/store?key=crash", content=b"kept").text == "crash"
    finally:
        stop_dev(process, signal.SIGKILL)

    process, url, startup = start_dev(state)
    try:
        # No snapshot was taken: the journal had both writes, flushed before they were answered.
        assert "restored 0 items, 0 objects, 0 messages, 0 schedules, 2 journaled writes" in startup
        assert httpx.post(f"{url}/store?key=clean", content=b"also kept").text == "clean"
    finally:
        assert stop_dev(process, signal.SIGTERM) == 0
    assert process.stdout is not None and "stopping" in process.stdout.read()

    # A snapshot at the stop: the journal starts over.
    manifest = json.loads((state / "state.json").read_text())
    table = manifest["tables"][settings.LOCAL_TABLE]["file"]
    items = [json.loads(line) for line in (state / table).open()]
    assert sorted(item["pk"]["S"] for item in items) == ["clean", "crash"]
    index = manifest["buckets"][settings.LOCAL_BUCKET]["file"]
    objects = json.loads((state / index).read_text())["objects"]
    assert sorted(objects) == ["files/clean", "files/crash"]
    blob = state / "s3" / "blobs" / objects["files/clean"]["blob"]
    assert blob.read_bytes() == b"also kept"
