"""`Files` on S3 and DynamoDB: bytes in S3, one metadata item per file in the instance's
partition, so that `stat`, `list` and `find` never list S3 (and `grep` reads only the
objects of candidate files).

Items: `agent_runtime.adapters.aws.dynamodb_files` (FILE, FILES and UPLOAD in the instance's
partition) holds them and the transaction that points a path at an object.

S3 keys are made of the validated instance key and random hex ids, never of a path:

    instances/{agent}/{id}/files/{object_id}   one object per write, never written again
    uploads/{agent}/{id}/{upload_id}           a presigned upload's staging object

One object per write. A write puts its bytes under a fresh key first, then commits the
FILE item pointing at it (conditioned on the item it read: nothing, or the same
``s3_key``), the usage change and, for a fenced write, a ``ConditionCheck`` on the
submission item, all in one ``TransactWriteItems``; only after that commit does it
delete the object the item pointed at before. So:

    A (stale): put obj-a ........................ commit -> refused by the fence: delete obj-a
    B (current):          put obj-b; commit FILE -> obj-b; delete the old object

a stale attempt can never clobber the bytes a newer write points at (no two writes share
a key), and a committed item never points at a missing object (an object is deleted only
after the commit that stopped pointing at it, and no other item ever pointed at it). A
reader whose object vanished between reading the item and the object (an overwrite
committed meanwhile) reads the item again. A copy is an S3 server-side copy to a fresh
key of the target (bytes never pass through Lambda); a completed upload is copied from
its staging key to a fresh key and hashed there, where nobody else can write.

What can leak, and the bound: an object whose write was interrupted between the S3 put
(or copy) and DynamoDB's answer (a crash, a timeout, an ambiguous error: an object is
deleted only when DynamoDB said no), or whose deletion failed after a commit that
dropped it. Each is at most `FILE_MAX_BYTES`, at most one per interrupted write, counts
in no usage, and lies under the instance's ``files/`` prefix, where
`S3Files.unreferenced_objects` finds it for a sweeper (delete those older than any
Lambda runs). Staging objects of uploads never completed lie under ``uploads/``, each
at most the declared size where the URL signs ``Content-Length`` (SigV4); a bucket
lifecycle rule on ``uploads/`` expires them.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime import files as fs
from agent_runtime import settings
from agent_runtime.adapters.aws.dynamodb_files import (
    FILE_SCHEMA_VERSION,
    MAX_RETRIES,
    Contended,
    Entry,
    FileItems,
    UploadAlreadyCompleted,
    check_version,
    file_sk,
    upload_sk,
)
from agent_runtime.adapters.aws.dynamodb_items import Item, Items, _code, _key, _n, _s
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.adapters.aws.s3 import S3Blobs
from agent_runtime.errors import AgentRuntimeError, Conflict, FileNotFound
from agent_runtime.files import FileInfo, FilePage, GrepMatch, Upload
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence

log = logging.getLogger(__name__)

_MISSING = {"NoSuchKey", "404", "NotFound"}
_CHUNK = 1024 * 1024


def _object_key(instance: InstanceRef) -> str:
    return f"instances/{instance.key}/files/{fs.new_object_id()}"


def _staged_key(instance: InstanceRef, upload_id: str) -> str:
    return f"uploads/{instance.key}/{upload_id}"


def _missing(error: ClientError) -> bool:
    return _code(error) in _MISSING


class S3Files(FileItems):
    """`Files` over one DynamoDB table and one bucket. Clients are passed in."""

    def __init__(self, dynamodb_client: Any, table: str, s3_client: Any, bucket: str) -> None:
        # The base gives the fence (`_fence_condition`, `_fence_error`); its codec is unused.
        super().__init__(dynamodb_client, table, Items(S3Blobs(s3_client, bucket)))
        self.s3 = s3_client
        self.bucket = bucket

    # --- objects -------------------------------------------------------------------

    @asynccontextmanager
    async def _discarded_on_refusal(self, key: str) -> AsyncIterator[None]:
        """Delete the object `key` when what runs inside was refused for sure (a domain
        error, raised once DynamoDB said no): then no item points at it. Anything else
        (a timeout) may have committed, and the object stays."""
        try:
            yield
        except AgentRuntimeError:
            await self._discard(key)
            raise

    async def _discard(self, key: str | None) -> None:
        if key is None:
            return
        try:
            await offload(self.s3.delete_object, Bucket=self.bucket, Key=key)
        except ClientError:
            log.warning(
                "could not delete s3://%s/%s; it is left unreferenced",
                self.bucket,
                key,
                exc_info=True,
            )

    async def _fetch(
        self,
        instance: InstanceRef,
        path: str,
        entry: Entry | None = None,
        *,
        max_bytes: int | None = None,
    ) -> bytes | None:
        """The file's bytes (only the first `max_bytes`), or None without a file."""
        for _ in range(MAX_RETRIES):
            entry = entry or await self._entry_of(instance, path)
            if entry is None:
                return None
            if entry.info.size == 0:
                return b""  # S3 refuses a range read of an empty object
            ranged = (
                {}
                if max_bytes is None or entry.info.size <= max_bytes
                else {"Range": f"bytes=0-{max_bytes - 1}"}
            )
            try:
                response = await offload(self.s3.get_object, Bucket=self.bucket, Key=entry.key, **ranged)
            except ClientError as error:
                if not _missing(error):
                    raise
                entry = None  # overwritten or deleted since we read the item: read it again
                continue
            data: bytes = await offload(response["Body"].read)
            return data
        raise Conflict(f"{path} kept changing while it was read; try again", details={"path": path})

    # --- the port --------------------------------------------------------------------

    async def write(
        self,
        instance: InstanceRef,
        path: str,
        data: bytes,
        *,
        media_type: str | None = None,
        now: float,
        fence: Fence | None = None,
    ) -> FileInfo:
        path = fs.validate_path(path)
        kind = fs.media_type_for(path, media_type)
        fs.check_size(len(data))
        digest = hashlib.sha256(data).hexdigest()
        key = _object_key(instance)
        await offload(
            self.s3.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=kind, IfNoneMatch="*"
        )
        async with self._discarded_on_refusal(key):
            info, replaced = await self._commit(
                instance,
                path,
                key=key,
                size=len(data),
                media_type=kind,
                sha256=digest,
                now=now,
                fence=fence,
            )
        await self._discard(replaced)
        return info

    async def read(self, instance: InstanceRef, path: str) -> bytes:
        path = fs.validate_path(path)
        data = await self._fetch(instance, path)
        if data is None:
            raise FileNotFound(f"no file at {path}", details={"path": path})
        return data

    async def stat(self, instance: InstanceRef, path: str) -> FileInfo | None:
        entry = await self._entry_of(instance, fs.validate_path(path))
        return entry.info if entry else None

    async def list(
        self,
        instance: InstanceRef,
        prefix: str = "/",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> FilePage:
        prefix = fs.validate_prefix(prefix)
        after = None if after is None else fs.validate_path(after, field="after")
        fs.check_page_limit(limit)
        infos: builtins.list[FileInfo] = []
        async for entry in self._query(instance, prefix, after=after, page=limit + 1):
            infos.append(entry.info)
            if len(infos) > limit:
                break
        page = infos[:limit]
        return FilePage(page, page[-1].path if len(infos) > limit else None)

    async def delete(self, instance: InstanceRef, path: str, *, fence: Fence | None = None) -> bool:
        path = fs.validate_path(path)
        for _ in range(MAX_RETRIES):
            old = await self._entry_of(instance, path)
            if old is None and fence is None:
                return False
            items: builtins.list[Item] = []
            if old is not None:
                gone: Item = {
                    "TableName": self.table,
                    "Key": _key(instance, file_sk(path)),
                    "ConditionExpression": "s3_key = :old",
                    "ExpressionAttributeValues": {":old": _s(old.key)},
                }
                items = [{"Delete": gone}, self._usage_update(instance, -old.info.size, -1)]
            try:
                # Without a file, a fenced delete still checks its fence (a stale attempt
                # learns it is stale).
                reasons = await self._transact(fence, items)
            except Contended:
                continue
            if reasons is None:
                if old is None:
                    return False
                await self._discard(old.key)
                return True
        raise Conflict(
            f"{path} kept changing while it was deleted; try again", details={"path": path}
        )

    async def grep(
        self, instance: InstanceRef, pattern: str, *, prefix: str = "/", limit: int = 100
    ) -> builtins.list[GrepMatch]:
        regex = fs.compile_grep(pattern)
        prefix = fs.validate_prefix(prefix)
        fs.check_page_limit(limit)
        matches: builtins.list[GrepMatch] = []
        searched = 0
        async for entry in self._query(instance, prefix):
            if not fs.is_text(entry.info.media_type):
                continue
            if searched >= fs.GREP_MAX_FILES:
                raise fs.too_many_to_grep()
            searched += 1
            data = await self._fetch(instance, entry.info.path, entry, max_bytes=fs.GREP_MAX_FILE_BYTES)
            if data is not None:
                matches += fs.grep_text(entry.info.path, data, regex, limit - len(matches))
            if len(matches) >= limit:
                break
        return matches

    async def find(
        self, instance: InstanceRef, glob: str, *, limit: int = 100
    ) -> builtins.list[FileInfo]:
        prefix, pattern = fs.compile_glob(glob)
        fs.check_page_limit(limit)
        found: builtins.list[FileInfo] = []
        async for entry in self._query(instance, prefix):
            if pattern.fullmatch(entry.info.path):
                found.append(entry.info)
                if len(found) >= limit:
                    break
        return found

    async def copy(
        self,
        source: InstanceRef,
        path: str,
        target: InstanceRef,
        target_path: str,
        *,
        now: float,
        fence: Fence | None = None,
    ) -> FileInfo:
        path = fs.validate_path(path)
        target_path = fs.validate_path(target_path, field="target_path")
        key = _object_key(target)
        for _ in range(MAX_RETRIES):
            entry = await self._entry_of(source, path)
            if entry is None:
                raise FileNotFound(f"no file at {path}", details={"path": path})
            fs.check_size(entry.info.size)
            try:
                copy_source = {"Bucket": self.bucket, "Key": entry.key}
                await offload(
                    self.s3.copy_object, Bucket=self.bucket, Key=key, CopySource=copy_source, MetadataDirective="COPY"
                )
                break
            except ClientError as error:
                if not _missing(error):
                    raise  # else: the source was overwritten meanwhile; read it again
        else:
            raise Conflict(
                f"{path} kept changing while it was copied; try again", details={"path": path}
            )
        info = entry.info
        async with self._discarded_on_refusal(key):
            copied, replaced = await self._commit(
                target,
                target_path,
                key=key,
                size=info.size,
                media_type=info.media_type,
                sha256=info.sha256,
                now=now,
                fence=fence,
            )
        await self._discard(replaced)
        return copied

    async def usage(self, instance: InstanceRef) -> tuple[int, int]:
        return await self._usage_of(instance)

    # --- presigned transfers ---------------------------------------------------------

    async def presign_upload(
        self,
        instance: InstanceRef,
        path: str,
        *,
        media_type: str,
        size: int,
        expires: int = 900,
        now: float,
    ) -> Upload:
        path = fs.validate_path(path)
        kind = fs.media_type_for(path, media_type)
        fs.check_declared_size(size)
        fs.check_expires(expires)
        old = await self._entry_of(instance, path)
        fs.check_quota(
            await self._usage_of(instance), size - (old.info.size if old else 0), 0 if old else 1
        )
        upload_id = fs.new_upload_id()
        staged = _staged_key(instance, upload_id)
        url_expires_at = now + expires
        forget_at = int(url_expires_at + fs.UPLOAD_COMPLETE_GRACE + 24 * 3600)
        item = {
            **_key(instance, upload_sk(upload_id)),
            "v": _n(FILE_SCHEMA_VERSION),
            "path": _s(path),
            "media_type": _s(kind),
            "size": _n(size),
            "url_expires_at": _n(url_expires_at),
            "staged_key": _s(staged),
            "state": _s("staged"),
            settings.TABLE_TTL_ATTRIBUTE: _n(forget_at),
        }
        await offload(
            self.client.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(sk)"
        )
        # With SigV4 the URL signs Content-Type and Content-Length: S3 refuses another body size.
        params = {"Bucket": self.bucket, "Key": staged, "ContentType": kind, "ContentLength": size}
        url: str = self.s3.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
        return Upload(upload_id, url, "PUT", {"Content-Type": kind}, url_expires_at)

    async def _completed(self, instance: InstanceRef, upload_id: str) -> FileInfo | None:
        item = await self._get(instance, upload_sk(upload_id))
        if item is None or item["state"]["S"] != "completed":
            return None
        check_version(item)
        return FileInfo(**json.loads(item["info"]["S"]))

    async def complete_upload(
        self, instance: InstanceRef, upload_id: str, *, now: float
    ) -> FileInfo:
        fs.validate_upload_id(upload_id)
        item = await self._get(instance, upload_sk(upload_id))
        if item is None:
            raise fs.upload_not_found(upload_id)
        check_version(item)
        if item["state"]["S"] == "completed":
            return FileInfo(**json.loads(item["info"]["S"]))
        if now > float(item["url_expires_at"]["N"]) + fs.UPLOAD_COMPLETE_GRACE:
            raise fs.upload_not_found(upload_id, "expired")
        path, staged, declared = item["path"]["S"], item["staged_key"]["S"], int(item["size"]["N"])
        kind = fs.media_type_for(path, item["media_type"]["S"])
        key = _object_key(instance)
        try:
            head = await offload(self.s3.head_object, Bucket=self.bucket, Key=staged)
            fs.check_uploaded_size(int(head["ContentLength"]), declared)
            # The URL may still put other bytes at the staging key: copy them first to a
            # key nobody else writes, and measure and hash that copy.
            copy_source = {"Bucket": self.bucket, "Key": staged}
            await offload(
                self.s3.copy_object, Bucket=self.bucket, Key=key, CopySource=copy_source, MetadataDirective="COPY"
            )
        except ClientError as error:
            if not _missing(error):
                raise
            # Nothing uploaded yet, or a call completing it meanwhile removed the staging object.
            info = await self._completed(instance, upload_id)
            if info is None:
                raise fs.upload_not_found(upload_id, "has nothing uploaded yet") from None
            return info

        def completed(info: FileInfo) -> builtins.list[Item]:
            return [
                {
                    "Update": {
                        "TableName": self.table,
                        "Key": _key(instance, upload_sk(upload_id)),
                        "UpdateExpression": "SET #state = :completed, info = :info",
                        "ConditionExpression": "#state = :staged",
                        "ExpressionAttributeNames": {"#state": "state"},
                        "ExpressionAttributeValues": {
                            ":completed": _s("completed"),
                            ":staged": _s("staged"),
                            ":info": _s(json.dumps(info.as_record())),
                        },
                    }
                }
            ]

        try:
            async with self._discarded_on_refusal(key):
                size, digest = await offload(self._digest, key)
                fs.check_uploaded_size(size, declared)
                info, replaced = await self._commit(
                    instance,
                    path,
                    key=key,
                    size=size,
                    media_type=kind,
                    sha256=digest,
                    now=now,
                    fence=None,
                    extra=completed,
                )
        except UploadAlreadyCompleted:
            won = await self._completed(instance, upload_id)
            if won is None:
                raise
            return won
        await self._discard(staged)
        await self._discard(replaced)
        return info

    def _digest(self, key: str) -> tuple[int, str]:
        """Size and sha256 of an object, streamed a chunk at a time (blocking: offloaded)."""
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        hasher = hashlib.sha256()
        size = 0
        for chunk in body.iter_chunks(chunk_size=_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
        return size, hasher.hexdigest()

    async def download_url(
        self, instance: InstanceRef, path: str, *, expires: int = 300
    ) -> str | None:
        path = fs.validate_path(path)
        fs.check_expires(expires)
        entry = await self._entry_of(instance, path)
        if entry is None:
            return None
        params = {
            "Bucket": self.bucket,
            "Key": entry.key,
            "ResponseContentType": entry.info.media_type,
        }
        url: str = self.s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires)
        return url

    # --- maintenance -----------------------------------------------------------------

    async def unreferenced_objects(self, instance: InstanceRef) -> builtins.list[str]:
        """Objects under the instance's ``files/`` prefix that no FILE item points at:
        leaked by interrupted writes, or belonging to a write in flight right now (so a
        sweeper deletes only those older than a Lambda can run). Lists S3: not for the
        request path."""
        referenced = {entry.key async for entry in self._query(instance, "/")}

        def listed() -> set[str]:
            pages = self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"instances/{instance.key}/files/"
            )
            return {obj["Key"] for page in pages for obj in page.get("Contents", [])}

        return sorted(await offload(listed) - referenced)
