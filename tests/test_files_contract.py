"""The files contract (`agent_runtime.testing.files_contract`) on every adapter here:
memory (the reference) and S3 + DynamoDB on moto; plus what only the AWS adapter does."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from botocore.exceptions import ClientError

from agent_runtime import files as fs
from agent_runtime.adapters.aws.s3_files import S3Files
from agent_runtime.adapters.memory import MemoryLedger
from agent_runtime.adapters.memory_files import MemoryFiles
from agent_runtime.errors import FilesQuotaExceeded, StaleAttempt
from agent_runtime.files import Files
from agent_runtime.ids import InstanceRef
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.testing.contract import INST, claim
from agent_runtime.testing.files_contract import *  # noqa: F403
from agent_runtime.testing.files_contract import fenced, send_upload


@pytest.fixture
def stores(backend: Backend) -> Stores:
    return backend.stores


@pytest.fixture
def files(backend: Backend) -> Files:
    if backend.kind == "memory":
        ledger = backend.stores.ledger
        assert isinstance(ledger, MemoryLedger)
        return MemoryFiles(ledger.table)
    assert backend.resources
    return S3Files(
        backend.clients["dynamodb"],
        backend.resources.table,
        backend.clients["s3"],
        backend.resources.bucket,
    )


@pytest.mark.parametrize("backend", ["memory"], indirect=True)
async def test_memory_files_over_one_table_share_their_files(
    backend: Backend, files: Files, clock: FakeClock
) -> None:
    assert isinstance(files, MemoryFiles)
    await files.write(INST, "/shared", b"x", now=clock())
    assert await MemoryFiles(files.table).read(INST, "/shared") == b"x"


# --- the AWS adapter only ----------------------------------------------------------------

moto_only = pytest.mark.parametrize("backend", ["moto"], indirect=True)


def _objects(backend: Backend, prefix: str) -> set[str]:
    assert backend.resources
    listed = backend.clients["s3"].list_objects_v2(Bucket=backend.resources.bucket, Prefix=prefix)
    return {obj["Key"] for obj in listed.get("Contents", [])}


def _referenced(backend: Backend, instance: InstanceRef) -> set[str]:
    assert backend.resources
    response = backend.clients["dynamodb"].query(
        TableName=backend.resources.table,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :file)",
        ExpressionAttributeValues={":pk": {"S": f"I#{instance.key}"}, ":file": {"S": "FILE#"}},
    )
    return {item["s3_key"]["S"] for item in response["Items"]}


def _download(url: str) -> requests.Response:
    """A client's GET (moto intercepts `requests` in process)."""
    return requests.get(url, timeout=10)


def _stored_objects(backend: Backend, instance: InstanceRef) -> set[str]:
    return _objects(backend, f"instances/{instance.key}/files/")


@moto_only
async def test_overwrites_and_deletes_leave_no_unreferenced_object(
    backend: Backend, files: Files, clock: FakeClock
) -> None:
    assert isinstance(files, S3Files)
    await files.write(INST, "/a.txt", b"one", now=clock())
    await files.write(INST, "/a.txt", b"two", now=clock())
    await files.write(INST, "/b.txt", b"two", now=clock())  # same bytes, its own object
    await files.write(INST, "/c.txt", b"three", now=clock())
    await files.delete(INST, "/c.txt")
    await files.copy(INST, "/a.txt", INST, "/b.txt", now=clock())
    objects = _stored_objects(backend, INST)
    assert objects == _referenced(backend, INST) and len(objects) == 2
    assert await files.unreferenced_objects(INST) == []
    await files.delete(INST, "/a.txt")
    await files.delete(INST, "/b.txt")
    assert _stored_objects(backend, INST) == set()


@moto_only
async def test_refused_writes_leave_no_object(
    backend: Backend,
    files: Files,
    stores: Stores,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stale = await fenced(stores, clock, "attempt-a", lease=10)
    clock.advance(11)
    assert (await claim(stores, clock, "attempt-b")).state == "claimed"
    with pytest.raises(StaleAttempt):
        await files.write(INST, "/a", b"late", now=clock(), fence=stale)
    await files.write(INST, "/b", b"x" * 8, now=clock())
    monkeypatch.setattr(fs, "INSTANCE_MAX_BYTES", 10)
    with pytest.raises(FilesQuotaExceeded):
        await files.write(INST, "/c", b"x" * 3, now=clock())
    with pytest.raises(FilesQuotaExceeded):
        await files.copy(INST, "/b", INST, "/d", now=clock())
    assert (
        _stored_objects(backend, INST) == _referenced(backend, INST)
        and len(_referenced(backend, INST)) == 1
    )


@moto_only
async def test_a_completed_upload_leaves_no_staging_object_and_downloads(
    backend: Backend, files: Files, clock: FakeClock
) -> None:
    upload = await files.presign_upload(
        INST, "/u.txt", media_type="text/plain", size=5, now=clock()
    )
    assert upload.url.startswith("https://") and upload.headers == {"Content-Type": "text/plain"}
    send_upload(files, upload, b"hello")
    assert len(_objects(backend, f"uploads/{INST.key}/")) == 1
    await files.complete_upload(INST, upload.upload_id, now=clock())
    assert _objects(backend, f"uploads/{INST.key}/") == set()
    assert _stored_objects(backend, INST) == _referenced(backend, INST)
    url = await files.download_url(INST, "/u.txt")
    assert url
    response = _download(url)
    assert response.status_code == 200 and response.content == b"hello"
    assert response.headers["Content-Type"] == "text/plain"


@moto_only
async def test_object_keys_are_made_of_ids_not_paths(
    backend: Backend, files: Files, clock: FakeClock
) -> None:
    await files.write(INST, "/x/ü %2F?#.txt", b"x", now=clock())
    (key,) = _stored_objects(backend, INST)
    assert re.fullmatch(rf"instances/{INST.key}/files/[0-9a-f]{{32}}", key)


class _WriteAfterFileRead:
    """The DynamoDB client, except that once armed, the next read of a FILE item is
    followed by `act` (from another thread, as another process would) before the caller
    acts on what it read."""

    def __init__(self, client: Any, act: Callable[[], None]) -> None:
        self._client = client
        self._act = act
        self.armed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_item(self, **kwargs: Any) -> Any:
        item = self._client.get_item(**kwargs)
        if self.armed and kwargs["Key"]["sk"]["S"].startswith("FILE#"):
            self.armed = False
            thread = threading.Thread(target=self._act)
            thread.start()
            thread.join()
        return item


def _racing(files: S3Files, act: Callable[[S3Files], Any]) -> _WriteAfterFileRead:
    other = S3Files(files.client, files.table, files.s3, files.bucket)
    racer = _WriteAfterFileRead(files.client, lambda: asyncio.run(act(other)))
    files.client = racer
    racer.armed = True
    return racer


@moto_only
@pytest.mark.parametrize("existing", [False, True], ids=["create", "overwrite"])
async def test_a_write_racing_another_write_of_the_path(
    backend: Backend, files: Files, clock: FakeClock, existing: bool
) -> None:
    # A reads the FILE item -- B writes the path and commits -- A commits: its condition
    # (the item A read) fails, A reads again and commits over B, deleting B's object.
    assert isinstance(files, S3Files)
    if existing:
        await files.write(INST, "/p", b"first", now=clock())
    racer = _racing(files, lambda other: other.write(INST, "/p", b"theirs", now=clock()))
    await files.write(INST, "/p", b"mine", now=clock())
    assert not racer.armed
    assert await files.read(INST, "/p") == b"mine"
    assert await files.usage(INST) == (4, 1)
    assert (
        _stored_objects(backend, INST) == _referenced(backend, INST)
        and len(_referenced(backend, INST)) == 1
    )


@moto_only
async def test_a_read_racing_an_overwrite_reads_the_new_bytes(
    backend: Backend, files: Files, clock: FakeClock
) -> None:
    # R reads the FILE item (old object) -- W overwrites and deletes the old object --
    # R finds the object gone and reads the item again.
    assert isinstance(files, S3Files)
    await files.write(INST, "/p", b"old", now=clock())
    _racing(files, lambda other: other.write(INST, "/p", b"new", now=clock()))
    assert await files.read(INST, "/p") == b"new"


class _ConflictOnce:
    """The DynamoDB client, except that the next transaction loses to another one."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.armed = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs: Any) -> Any:
        if self.armed:
            self.armed = False
            reasons = [{"Code": "None"} for _ in kwargs["TransactItems"]]
            reasons[-1] = {"Code": "TransactionConflict", "Message": "conflict"}
            response: Any = {
                "Error": {"Code": "TransactionCanceledException", "Message": "cancelled"},
                "CancellationReasons": reasons,
            }
            raise ClientError(response, "TransactWriteItems")
        return self._client.transact_write_items(**kwargs)


@moto_only
async def test_a_transaction_conflict_is_tried_again(
    backend: Backend, files: Files, stores: Stores, clock: FakeClock
) -> None:
    assert isinstance(files, S3Files)
    fence = await fenced(stores, clock)
    client = files.client
    for act in [
        lambda: files.write(INST, "/a", b"x", now=clock(), fence=fence),
        lambda: files.delete(INST, "/a", fence=fence),
        lambda: files.delete(INST, "/gone", fence=fence),
    ]:
        files.client = racer = _ConflictOnce(client)
        await act()
        assert not racer.armed
    files.client = client
    assert await files.usage(INST) == (0, 0) and _stored_objects(backend, INST) == set()
