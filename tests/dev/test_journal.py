"""The local stack's journal: order, torn tails, group commit, and snapshots over it.

The file-level tests use the journal alone; the others run moto on loopback (`LocalAws`)
through the journal gate, "crash" by stopping moto without a snapshot (every answered write
was flushed before its answer), and start a fresh moto on the same folder.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from agent_runtime import settings
from agent_runtime.dev import persistence
from agent_runtime.dev.aws import LocalAws
from agent_runtime.dev.journal import Journal, read_segment
from agent_runtime.dev.persistence import LocalState
from agent_runtime.dev.state_files import LocalStateError

KEY = {"pk": {"S": "counter"}, "sk": {"S": "c"}}


def journal_with(folder: Path, payloads: list[bytes], *, generation: int = 0) -> Journal:
    journal = Journal(folder, generation=generation)
    assert list(journal.records()) == []
    journal.open()
    numbers = [journal.append(p) for p in payloads]
    journal.wait_durable(numbers[-1] if numbers else 0)
    return journal


def test_records_come_back_in_order_across_segments(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, [b"a", b"b"])
    journal.rotate(1)
    journal.append(b"c")
    journal.close()
    assert list(Journal(tmp_path, generation=0).records()) == [b"a", b"b", b"c"]
    # A snapshot that holds generation 0 replays only what came after it.
    assert list(Journal(tmp_path, generation=1).records()) == [b"c"]
    Journal(tmp_path, generation=1).drop_before(1)
    assert [n for n, _ in Journal(tmp_path, generation=1).segments()] == [1]


@pytest.mark.parametrize("cut", [1, 5, 12, 14])
def test_a_torn_last_record_is_ignored_and_cut_off(tmp_path: Path, cut: int) -> None:
    journal_with(tmp_path, [b"kept-1", b"kept-2", b"torn-3"]).close()
    segment = tmp_path / f"{0:012d}.log"
    whole = segment.read_bytes()
    segment.write_bytes(whole[: len(whole) - cut])  # the crash came mid-write
    again = Journal(tmp_path, generation=0)
    assert list(again.records()) == [b"kept-1", b"kept-2"]
    assert segment.stat().st_size == read_segment(segment)[1]  # the tail is gone
    again.open()
    again.wait_durable(again.append(b"after"))
    again.close()
    assert list(Journal(tmp_path, generation=0).records()) == [b"kept-1", b"kept-2", b"after"]


def test_a_checksum_mismatch_ends_the_journal_and_older_damage_is_refused(tmp_path: Path) -> None:
    journal = journal_with(tmp_path, [b"one", b"two"])
    journal.rotate(1)
    journal.append(b"three")
    journal.close()
    first = tmp_path / f"{0:012d}.log"
    data = bytearray(first.read_bytes())
    data[-1] ^= 0xFF  # "two" damaged in a segment that is not the last
    first.write_bytes(bytes(data))
    with pytest.raises(LocalStateError, match="damaged"):
        list(Journal(tmp_path, generation=0).records())
    assert list(Journal(tmp_path, generation=1).records()) == [b"three"]


def test_one_flush_serves_every_record_before_it_and_concurrent_writers_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal = journal_with(tmp_path, [])
    flushes: list[int] = []
    original = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (flushes.append(fd), original(fd)))
    numbers = [journal.append(b"a"), journal.append(b"b"), journal.append(b"c")]
    journal.wait_durable(numbers[-1])
    for number in numbers:  # already flushed: no more flushes
        journal.wait_durable(number)
    assert len(flushes) == 1

    def write(n: int) -> None:
        journal.wait_durable(journal.append(f"{n}".encode()))

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(write, range(200)))
    journal.close()
    records = list(Journal(tmp_path, generation=0).records())
    assert sorted(int(r) for r in records[3:]) == list(range(200))


# --- over moto ----------------------------------------------------------------------------


class Run:
    """One life of the local AWS on a state folder: snapshot loaded, journal replayed."""

    def __init__(self, root: Path) -> None:
        self.aws = LocalAws()
        self.aws.start()
        self.state = LocalState(root)
        self.restored = self.state.restore(self.aws.client)
        self.replayed = self.state.replay(self.aws.replay)
        assert self.aws.gate is not None
        self.aws.gate.attach(self.state.journal)
        self.dynamodb = self.aws.client("dynamodb")

    def add(self, n: int = 1) -> None:
        self.dynamodb.update_item(
            TableName=settings.LOCAL_TABLE,
            Key=KEY,
            UpdateExpression="ADD n :one",
            ExpressionAttributeValues={":one": {"N": str(n)}},
        )

    def counter(self) -> int:
        item = self.dynamodb.get_item(TableName=settings.LOCAL_TABLE, Key=KEY).get("Item")
        return int(item["n"]["N"]) if item else 0

    def snapshot(self) -> None:
        assert self.aws.gate is not None
        self.state.snapshot(self.aws.client, paused=self.aws.gate.paused)

    def crash(self) -> None:
        """What kill -9 leaves: the folder as it is (the answered writes are flushed)."""
        assert self.aws.gate is not None
        self.aws.gate.attach(None)
        self.aws.stop()


@pytest.fixture
def runs(tmp_path: Path) -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.aws.gate is not None and run.aws.resources is not None:
            run.crash()


def life(runs: list[Run], root: Path) -> Run:
    runs.append(Run(root))
    return runs[-1]


def test_a_replay_applies_each_write_once_around_snapshots(tmp_path: Path, runs: list[Run]) -> None:
    root = tmp_path / "state"
    first = life(runs, root)
    for _ in range(3):
        first.add()
    first.snapshot()
    for _ in range(2):
        first.add()
    segments_after_snapshot = sorted((root / "journal").iterdir())
    assert [p.name for p in segments_after_snapshot] == [f"{1:012d}.log"]  # the old one is gone
    first.crash()

    second = life(runs, root)
    # A counter is not idempotent: applied twice, a write would show.
    assert (second.counter(), second.restored.items, second.replayed) == (5, 1, 2)
    second.crash()

    # A crash between the snapshot's commit and the deletion of the segment it holds:
    # the old segment is back, and must not be replayed over the snapshot.
    shutil.copy(segments_after_snapshot[0], root / "journal" / f"{0:012d}.log")
    third = life(runs, root)
    assert (third.counter(), third.replayed) == (5, 2)
    third.crash()


def test_a_crash_during_a_snapshot_keeps_the_previous_one_and_the_journal(
    tmp_path: Path, runs: list[Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "state"
    first = life(runs, root)
    first.add(10)
    first.snapshot()
    first.add(1)

    def crash(*args: Any) -> dict[str, Any]:
        raise KeyboardInterrupt("killed mid-snapshot")

    monkeypatch.setattr(persistence, "save_events", crash)  # after the tables were dumped
    with pytest.raises(KeyboardInterrupt):
        first.snapshot()
    monkeypatch.undo()
    assert json.loads((root / "state.json").read_text())["journal_generation"] == 1
    first.add(100)  # writes go on after the failed snapshot
    first.crash()

    second = life(runs, root)
    assert second.counter() == 111
    second.snapshot()  # and the leftovers of the failed one are cleaned up
    assert [p.name for p in (root / "snapshots").iterdir()] == [f"{2:012d}"]
    second.crash()


def test_s3_writes_and_multipart_uploads_replay(tmp_path: Path, runs: list[Run]) -> None:
    root = tmp_path / "state"
    first = life(runs, root)
    s3 = first.aws.client("s3")
    bucket = settings.LOCAL_BUCKET
    s3.put_object(Bucket=bucket, Key="a/one", Body=b"one", ContentType="text/plain")
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    s3.copy_object(Bucket=bucket, Key="a/copy", CopySource={"Bucket": bucket, "Key": "a/one"})
    upload = s3.create_multipart_upload(Bucket=bucket, Key="big")["UploadId"]
    parts = []
    for number, body in enumerate([b"x" * (5 << 20), b"tail"], 1):
        etag = s3.upload_part(
            Bucket=bucket, Key="big", UploadId=upload, PartNumber=number, Body=body
        )["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(
        Bucket=bucket, Key="big", UploadId=upload, MultipartUpload={"Parts": parts}
    )
    first.crash()

    second = life(runs, root)
    s3 = second.aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys == ["a/copy", "a/one", "big"]
    one = s3.get_object(Bucket=bucket, Key="a/one")
    assert (one["Body"].read(), one["ContentType"]) == (b"one", "text/plain")
    assert s3.get_object(Bucket=bucket, Key="big")["Body"].read() == b"x" * (5 << 20) + b"tail"
    second.crash()


def test_concurrent_conditional_writes_replay_in_the_order_moto_applied_them(
    tmp_path: Path, runs: list[Run]
) -> None:
    """Optimistic increments from eight threads: each write is conditioned on the value the
    one before it left, so a replay in any order but moto's would refuse some of them."""
    root = tmp_path / "state"
    first = life(runs, root)

    def increments(thread: int) -> None:
        done = 0
        while done < 10:
            value = first.counter()
            try:
                first.dynamodb.put_item(
                    TableName=settings.LOCAL_TABLE,
                    Item={**KEY, "n": {"N": str(value + 1)}, "by": {"S": f"{thread}"}},
                    ConditionExpression="attribute_not_exists(n) OR n = :seen",
                    ExpressionAttributeValues={":seen": {"N": str(value)}},
                )
                done += 1
            except first.dynamodb.exceptions.ConditionalCheckFailedException:
                continue

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(increments, range(8)))
    assert first.counter() == 80
    first.crash()

    second = life(runs, root)
    assert (second.counter(), second.replayed) == (80, 80)  # refused writes are not journaled
    second.crash()
