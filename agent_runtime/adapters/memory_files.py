"""`Files` in memory: the reference semantics of an instance's filesystem.

The files live beside the `MemoryTable` they are built over (every `MemoryFiles` over
one table sees the same files, as every `S3Files` over one table and bucket does), and
every change happens under the table's lock, after `MemoryTable.fenced` when a fence is
given: a refused write changes nothing. Presigned uploads have no URL to upload to: the
`Upload` names ``memory://...`` and a test puts the bytes with `MemoryFiles.put_upload`.
"""

from __future__ import annotations

import builtins
import hashlib
import weakref
from collections import defaultdict
from dataclasses import dataclass, field

from agent_runtime import files as fs
from agent_runtime.adapters.memory import MemoryTable
from agent_runtime.errors import FileNotFound
from agent_runtime.files import FileInfo, FilePage, GrepMatch, Upload
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence


@dataclass
class _Stored:
    info: FileInfo
    data: bytes


@dataclass
class _Staged:
    instance: str
    path: str
    media_type: str
    size: int
    url_expires_at: float
    data: bytes | None = None
    completed: FileInfo | None = None


@dataclass
class _State:
    files: dict[str, dict[str, _Stored]] = field(default_factory=lambda: defaultdict(dict))
    uploads: dict[str, _Staged] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[MemoryTable, _State] = weakref.WeakKeyDictionary()


class MemoryFiles:
    """`Files` over a `MemoryTable`."""

    def __init__(self, table: MemoryTable) -> None:
        self.table = table
        self._state = _STATES.setdefault(table, _State())

    def _files(self, instance: InstanceRef) -> dict[str, _Stored]:
        return self._state.files[instance.key]

    def _usage(self, instance: InstanceRef) -> tuple[int, int]:
        files = self._files(instance)
        return sum(stored.info.size for stored in files.values()), len(files)

    def _put(
        self,
        instance: InstanceRef,
        path: str,
        data: bytes,
        media_type: str,
        sha256: str,
        now: float,
    ) -> FileInfo:
        """Under the lock, after the fence: the quota, then the write."""
        files = self._files(instance)
        old = files.get(path)
        old_size = old.info.size if old else 0
        fs.check_quota(self._usage(instance), len(data) - old_size, 0 if old else 1)
        created = old.info.created_at if old else now
        info = FileInfo(path, len(data), media_type, sha256, created, now)
        files[path] = _Stored(info, data)
        return info

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
        data = bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        with self.table.lock:
            if fence is not None:
                self.table.fenced(fence)
            return self._put(instance, path, data, kind, digest, now)

    async def read(self, instance: InstanceRef, path: str) -> bytes:
        path = fs.validate_path(path)
        with self.table.lock:
            stored = self._files(instance).get(path)
        if stored is None:
            raise FileNotFound(f"no file at {path}", details={"path": path})
        return stored.data

    async def stat(self, instance: InstanceRef, path: str) -> FileInfo | None:
        path = fs.validate_path(path)
        with self.table.lock:
            stored = self._files(instance).get(path)
        return stored.info if stored else None

    def _sorted(self, instance: InstanceRef, prefix: str) -> builtins.list[_Stored]:
        with self.table.lock:
            files = self._files(instance)
            return [files[p] for p in sorted(files) if fs.under(p, prefix)]

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
        infos = [
            s.info for s in self._sorted(instance, prefix) if after is None or s.info.path > after
        ]
        page = infos[:limit]
        return FilePage(page, page[-1].path if len(infos) > limit else None)

    async def delete(self, instance: InstanceRef, path: str, *, fence: Fence | None = None) -> bool:
        path = fs.validate_path(path)
        with self.table.lock:
            if fence is not None:
                self.table.fenced(fence)
            return self._files(instance).pop(path, None) is not None

    async def grep(
        self, instance: InstanceRef, pattern: str, *, prefix: str = "/", limit: int = 100
    ) -> builtins.list[GrepMatch]:
        regex = fs.compile_grep(pattern)
        prefix = fs.validate_prefix(prefix)
        fs.check_page_limit(limit)
        matches: builtins.list[GrepMatch] = []
        searched = 0
        for stored in self._sorted(instance, prefix):
            if not fs.is_text(stored.info.media_type):
                continue
            if searched >= fs.GREP_MAX_FILES:
                raise fs.too_many_to_grep()
            searched += 1
            matches += fs.grep_text(stored.info.path, stored.data, regex, limit - len(matches))
            if len(matches) >= limit:
                break
        return matches

    async def find(
        self, instance: InstanceRef, glob: str, *, limit: int = 100
    ) -> builtins.list[FileInfo]:
        prefix, pattern = fs.compile_glob(glob)
        fs.check_page_limit(limit)
        found = [s.info for s in self._sorted(instance, prefix) if pattern.fullmatch(s.info.path)]
        return found[:limit]

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
        with self.table.lock:
            stored = self._files(source).get(path)
            if stored is None:
                raise FileNotFound(f"no file at {path}", details={"path": path})
            fs.check_size(stored.info.size)
            if fence is not None:
                self.table.fenced(fence)
            info = stored.info
            return self._put(target, target_path, stored.data, info.media_type, info.sha256, now)

    async def usage(self, instance: InstanceRef) -> tuple[int, int]:
        with self.table.lock:
            return self._usage(instance)

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
        upload_id = fs.new_upload_id()
        with self.table.lock:
            old = self._files(instance).get(path)
            fs.check_quota(
                self._usage(instance), size - (old.info.size if old else 0), 0 if old else 1
            )
            self._state.uploads[upload_id] = _Staged(instance.key, path, kind, size, now + expires)
        url = f"memory://uploads/{instance.key}/{upload_id}"
        return Upload(upload_id, url, "PUT", {"Content-Type": kind}, now + expires)

    def put_upload(self, upload_id: str, data: bytes) -> None:
        """What a client's PUT to the presigned URL does (for tests)."""
        with self.table.lock:
            staged = self._state.uploads.get(upload_id)
            if staged is None:
                raise fs.upload_not_found(upload_id)
            staged.data = bytes(data)

    async def complete_upload(
        self, instance: InstanceRef, upload_id: str, *, now: float
    ) -> FileInfo:
        fs.validate_upload_id(upload_id)
        with self.table.lock:
            staged = self._state.uploads.get(upload_id)
            if staged is None or staged.instance != instance.key:
                raise fs.upload_not_found(upload_id)
            if staged.completed is not None:
                return staged.completed
            if now > staged.url_expires_at + fs.UPLOAD_COMPLETE_GRACE:
                raise fs.upload_not_found(upload_id, "expired")
            kind = fs.media_type_for(staged.path, staged.media_type)
            if staged.data is None:
                raise fs.upload_not_found(upload_id, "has nothing uploaded yet")
            data = staged.data
            fs.check_uploaded_size(len(data), staged.size)
            digest = hashlib.sha256(data).hexdigest()
            info = self._put(instance, staged.path, data, kind, digest, now)
            staged.completed = info
            staged.data = None
            return info

    async def download_url(
        self, instance: InstanceRef, path: str, *, expires: int = 300
    ) -> str | None:
        fs.validate_path(path)
        fs.check_expires(expires)
        return None
