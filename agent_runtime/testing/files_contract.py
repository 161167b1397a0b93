"""The contract of the `Files` port: one suite for every adapter.

It runs here on `MemoryFiles` (the reference) and on `S3Files` under moto, and on any
adapter of yours: import it into a test module and give it three fixtures, ``files``
(your `agent_runtime.files.Files`, empty), ``stores`` (the `agent_runtime.ports.Stores`
over the same table, for fences) and ``clock`` (a `FakeClock`):

    # tests/test_my_files.py   (pytest-asyncio, asyncio_mode = "auto")
    from agent_runtime.testing.files_contract import *  # noqa: F403

    @pytest.fixture
    def files(stores): ...

A presigned upload is sent with `requests` to the URL the adapter gives (moto intercepts
`requests` in process), or with ``files.put_upload`` when the URL is ``memory://``.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from agent_runtime import files as fs
from agent_runtime.errors import (
    AbortRequested,
    FileNotFound,
    FilesQuotaExceeded,
    FileTooLarge,
    InvalidInput,
    StaleAttempt,
    UnsupportedMediaType,
)
from agent_runtime.files import Files, Upload
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence
from agent_runtime.ports import Stores
from agent_runtime.testing.backends import FakeClock
from agent_runtime.testing.contract import INST, claim, draft

pytestmark = pytest.mark.asyncio

OTHER = InstanceRef("ticket-agent", "T-2")


def send_upload(files: Files, upload: Upload, data: bytes) -> None:
    """What a client does with an `Upload`: send the body to its URL."""
    if upload.url.startswith("memory://"):
        files.put_upload(upload.upload_id, data)  # type: ignore[attr-defined]
        return
    import requests

    response = requests.request(
        upload.method, upload.url, data=data, headers=upload.headers, timeout=60
    )
    response.raise_for_status()


async def paths(files: Files, prefix: str = "/", instance: InstanceRef = INST) -> list[str]:
    page = await files.list(instance, prefix, limit=fs.PAGE_MAX)
    return [info.path for info in page.files]


async def fenced(stores: Stores, clock: FakeClock, attempt: str = "a1", lease: float = 60) -> Fence:
    """A running attempt's fence on a fresh submission of `INST`."""
    await stores.ledger.admit(INST, draft("x"), now=clock())
    claimed = await claim(stores, clock, attempt, lease)
    assert claimed.record
    return Fence.of(claimed.record)


# --- write, read, stat, list, delete -----------------------------------------------------


async def test_write_read_stat_round_trip(files: Files, clock: FakeClock) -> None:
    created = clock()
    info = await files.write(INST, "/notes/todo.txt", b"buy milk\n", now=created)
    assert info.path == "/notes/todo.txt" and info.size == 9 and info.media_type == "text/plain"
    assert info.sha256 == hashlib.sha256(b"buy milk\n").hexdigest()
    assert info.created_at == info.updated_at == created
    assert await files.read(INST, "/notes/todo.txt") == b"buy milk\n"
    assert await files.stat(INST, "/notes/todo.txt") == info
    assert info.as_json()["created_at"].endswith("Z")
    clock.advance(30)
    again = await files.write(INST, "/notes/todo.txt", b"buy oat milk\n", now=clock())
    assert again.created_at == created and again.updated_at == clock()
    assert again.sha256 == hashlib.sha256(b"buy oat milk\n").hexdigest()
    assert await files.read(INST, "/notes/todo.txt") == b"buy oat milk\n"
    assert await files.usage(INST) == (13, 1)


async def test_an_empty_file(files: Files, clock: FakeClock) -> None:
    info = await files.write(INST, "/empty", b"", now=clock())
    assert info.size == 0 and info.sha256 == hashlib.sha256(b"").hexdigest()
    assert await files.read(INST, "/empty") == b""
    assert await files.grep(INST, "x") == []


async def test_missing_files(files: Files, clock: FakeClock) -> None:
    assert await files.stat(INST, "/nope") is None
    with pytest.raises(FileNotFound):
        await files.read(INST, "/nope")
    assert await files.delete(INST, "/nope") is False
    assert await files.usage(INST) == (0, 0)


async def test_list_in_path_order_under_a_prefix_with_pages(files: Files, clock: FakeClock) -> None:
    for path in ["/notes/b/c.md", "/notesX", "/a.txt", "/notes/a.md", "/notes", "/notes-1", "/z/y"]:
        await files.write(INST, path, path.encode(), now=clock())
    assert await paths(files) == sorted(
        ["/a.txt", "/notes", "/notes-1", "/notes/a.md", "/notes/b/c.md", "/notesX", "/z/y"]
    )
    assert await paths(files, "/notes") == ["/notes/a.md", "/notes/b/c.md"]
    assert await paths(files, "/notes/") == ["/notes/a.md", "/notes/b/c.md"]
    assert await paths(files, "/notes/b") == ["/notes/b/c.md"]
    assert await paths(files, "/nothing") == []
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        page = await files.list(INST, after=after, limit=3)
        seen += [info.path for info in page.files]
        pages += 1
        if page.next_after is None:
            break
        after = page.next_after
    assert seen == await paths(files) and pages == 3
    inside = await files.list(INST, "/notes", after="/notes/a.md", limit=1)
    assert [i.path for i in inside.files] == ["/notes/b/c.md"] and inside.next_after is None
    assert (await files.list(INST, "/notes", after="/a.txt")).files[0].path == "/notes/a.md"
    assert (await files.list(INST, "/notes", after="/zzz")).files == []
    with pytest.raises(InvalidInput):
        await files.list(INST, limit=0)
    with pytest.raises(InvalidInput):
        await files.list(INST, after="no-slash")


async def test_delete(files: Files, clock: FakeClock) -> None:
    await files.write(INST, "/a", b"12345", now=clock())
    await files.write(INST, "/b", b"123", now=clock())
    assert await files.delete(INST, "/a") is True
    assert await files.stat(INST, "/a") is None
    assert await files.delete(INST, "/a") is False
    assert await paths(files) == ["/b"]
    assert await files.usage(INST) == (3, 1)


async def test_instances_are_isolated(files: Files, clock: FakeClock) -> None:
    await files.write(INST, "/same", b"mine", now=clock())
    assert await files.stat(OTHER, "/same") is None
    await files.write(OTHER, "/same", b"theirs", now=clock())
    assert await files.read(INST, "/same") == b"mine"
    assert await files.usage(OTHER) == (6, 1)


# --- validation --------------------------------------------------------------------------

BAD_PATHS = [
    pytest.param("a/b", id="relative"),
    pytest.param("", id="empty"),
    pytest.param("/", id="root"),
    pytest.param("/a/", id="trailing-slash"),
    pytest.param("/a//b", id="empty-segment"),
    pytest.param("/a/../b", id="dotdot"),
    pytest.param("/..", id="dotdot-alone"),
    pytest.param("/a/./b", id="dot"),
    pytest.param("/a\x00b", id="nul"),
    pytest.param("/a\nb", id="newline"),
    pytest.param("/a\x7fb", id="del"),
    pytest.param("/a\x85b", id="c1-control"),
    pytest.param("/a\\b", id="backslash"),
    pytest.param("/\ud800", id="lone-surrogate"),
    pytest.param("/" + "a" * 512, id="513-chars"),
    pytest.param("/" + "é" * 501, id="over-1000-utf8-bytes"),
    pytest.param("/" + "s" * 256, id="256-char-segment"),
    pytest.param("/a" * 17, id="17-levels"),
]


@pytest.mark.parametrize("path", BAD_PATHS)
async def test_bad_paths_are_refused_everywhere(files: Files, clock: FakeClock, path: str) -> None:
    calls: list[Any] = [
        files.write(INST, path, b"x", now=clock()),
        files.read(INST, path),
        files.stat(INST, path),
        files.delete(INST, path),
        files.copy(INST, "/ok", INST, path, now=clock()),
        files.presign_upload(INST, path, media_type="text/plain", size=1, now=clock()),
        files.download_url(INST, path),
    ]
    for call in calls:
        with pytest.raises(InvalidInput) as info:
            await call
        assert info.value.details["field"] in {"path", "target_path"}
    assert await files.usage(INST) == (0, 0)


async def test_the_longest_and_deepest_paths_are_fine(files: Files, clock: FakeClock) -> None:
    deep = "/a" * 16
    long = "/" + "b" * 255 + "/" + "c" * 255
    assert len(long) == 512
    for path in [deep, long, "/with space/ünïcode-名前.txt"]:
        await files.write(INST, path, b"ok", now=clock())
        assert await files.read(INST, path) == b"ok"


@pytest.mark.parametrize("prefix", ["notes", "/a//", "/../", "/a/./", "//"])
async def test_bad_prefixes_are_refused(files: Files, prefix: str) -> None:
    with pytest.raises(InvalidInput) as info:
        await files.list(INST, prefix)
    assert info.value.details["field"] == "prefix"
    with pytest.raises(InvalidInput):
        await files.grep(INST, "x", prefix=prefix)


async def test_media_types_given_or_guessed(files: Files, clock: FakeClock) -> None:
    cases = {
        ("/a.txt", "Text/Plain; charset=utf-8"): "text/plain",
        ("/b.bin", "IMAGE/PNG"): "image/png",
        ("/c.png", None): "image/png",
        ("/d.md", None): "text/markdown",
        ("/e.json", None): "application/json",
        ("/f.yaml", None): "application/yaml",
        ("/g.csv", None): "text/csv",
        ("/h.pdf", None): "application/pdf",
        ("/i", None): "application/octet-stream",
        ("/j.exe", None): "application/octet-stream",
        ("/k.mp4", None): "application/octet-stream",
        ("/dir.d/l", None): "application/octet-stream",
    }
    for (path, given), expected in cases.items():
        assert (
            await files.write(INST, path, b"x", media_type=given, now=clock())
        ).media_type == expected


@pytest.mark.parametrize(
    "media_type", ["application/x-evil", "video/mp4", "png", "", "text/", "a/b c", "image/svg+xml"]
)
async def test_unsupported_media_types_are_refused(
    files: Files, clock: FakeClock, media_type: str
) -> None:
    with pytest.raises(UnsupportedMediaType):
        await files.write(INST, "/x.png", b"x", media_type=media_type, now=clock())
    with pytest.raises(UnsupportedMediaType):
        await files.presign_upload(INST, "/x.png", media_type=media_type, size=1, now=clock())
    assert await files.stat(INST, "/x.png") is None


# --- limits ------------------------------------------------------------------------------


async def test_a_file_over_the_size_limit_is_refused(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs, "FILE_MAX_BYTES", 10)
    await files.write(INST, "/ok", b"x" * 10, now=clock())
    with pytest.raises(FileTooLarge) as info:
        await files.write(INST, "/big", b"x" * 11, now=clock())
    assert info.value.details["limit"] == 10
    with pytest.raises(FileTooLarge):
        await files.write(INST, "/ok", b"x" * 11, now=clock())
    with pytest.raises(FileTooLarge):
        await files.presign_upload(INST, "/big", media_type="text/plain", size=11, now=clock())
    assert await files.stat(INST, "/big") is None
    assert await files.read(INST, "/ok") == b"x" * 10
    assert await files.usage(INST) == (10, 1)


async def test_the_instance_byte_limit(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs, "INSTANCE_MAX_BYTES", 10)
    await files.write(INST, "/a", b"x" * 6, now=clock())
    with pytest.raises(FilesQuotaExceeded) as info:
        await files.write(INST, "/b", b"x" * 5, now=clock())
    assert info.value.details == {"quota": "bytes", "limit": 10}
    assert await files.stat(INST, "/b") is None
    assert await files.usage(INST) == (6, 1)
    with pytest.raises(FilesQuotaExceeded):
        await files.write(INST, "/a", b"x" * 11, now=clock())  # bigger than the whole quota
    with pytest.raises(FilesQuotaExceeded):
        await files.presign_upload(INST, "/b", media_type="text/plain", size=5, now=clock())
    await files.write(INST, "/a", b"x" * 2, now=clock())  # an overwrite frees 4 bytes
    await files.write(INST, "/b", b"x" * 8, now=clock())
    assert await files.usage(INST) == (10, 2)
    with pytest.raises(FilesQuotaExceeded):
        await files.copy(INST, "/b", INST, "/c", now=clock())
    assert await files.stat(INST, "/c") is None
    await files.delete(INST, "/b")
    await files.copy(INST, "/a", INST, "/c", now=clock())
    assert await files.usage(INST) == (4, 2)


async def test_the_instance_file_count_limit(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs, "INSTANCE_MAX_FILES", 2)
    await files.write(INST, "/a", b"1", now=clock())
    await files.write(INST, "/b", b"2", now=clock())
    with pytest.raises(FilesQuotaExceeded) as info:
        await files.write(INST, "/c", b"3", now=clock())
    assert info.value.details == {"quota": "files", "limit": 2}
    assert await files.stat(INST, "/c") is None and await files.usage(INST) == (2, 2)
    await files.write(INST, "/b", b"22", now=clock())  # an overwrite adds no file
    await files.delete(INST, "/a")
    await files.write(INST, "/c", b"3", now=clock())
    assert await paths(files) == ["/b", "/c"] and await files.usage(INST) == (3, 2)


# --- fencing -----------------------------------------------------------------------------


async def test_a_stale_attempt_cannot_write_and_the_newer_content_survives(
    files: Files, stores: Stores, clock: FakeClock
) -> None:
    # A claims and stalls past its lease; B claims and writes; A wakes and tries to write.
    stale = await fenced(stores, clock, "attempt-a", lease=10)
    await files.write(INST, "/report.md", b"draft by A", now=clock(), fence=stale)
    clock.advance(11)
    current = await claim(stores, clock, "attempt-b", lease=10)
    assert current.state == "claimed" and current.record
    fence = Fence.of(current.record)
    await files.write(INST, "/report.md", b"final by B", now=clock(), fence=fence)
    with pytest.raises(StaleAttempt):
        await files.write(INST, "/report.md", b"late A", now=clock(), fence=stale)
    with pytest.raises(StaleAttempt):
        await files.write(INST, "/new.md", b"late A", now=clock(), fence=stale)
    with pytest.raises(StaleAttempt):
        await files.delete(INST, "/report.md", fence=stale)
    with pytest.raises(StaleAttempt):
        await files.delete(INST, "/never.md", fence=stale)
    with pytest.raises(StaleAttempt):
        await files.copy(INST, "/report.md", OTHER, "/copy.md", now=clock(), fence=stale)
    assert await files.read(INST, "/report.md") == b"final by B"
    assert await paths(files) == ["/report.md"] and await paths(files, instance=OTHER) == []
    assert await files.usage(INST) == (10, 1)
    assert await files.delete(INST, "/never.md", fence=fence) is False
    assert await files.delete(INST, "/report.md", fence=fence) is True


async def test_an_abort_request_stops_fenced_writes(
    files: Files, stores: Stores, clock: FakeClock
) -> None:
    fence = await fenced(stores, clock)
    await files.write(INST, "/a", b"before", now=clock(), fence=fence)
    await stores.ledger.request_abort(INST, fence.submission_id, now=clock())
    with pytest.raises(AbortRequested):
        await files.write(INST, "/a", b"after", now=clock(), fence=fence)
    with pytest.raises(AbortRequested):
        await files.delete(INST, "/a", fence=fence)
    assert await files.read(INST, "/a") == b"before"
    assert await files.write(INST, "/a", b"unfenced", now=clock())  # the service may still write


# --- grep and find -----------------------------------------------------------------------


async def _corpus(files: Files, clock: FakeClock) -> None:
    await files.write(
        INST, "/notes/a.md", b"# Title\nTODO: call Bob\ndone\nTODO: pay\n", now=clock()
    )
    await files.write(INST, "/notes/b.txt", b"nothing here\r\ntodo lower\r\n", now=clock())
    await files.write(INST, "/data/c.json", b'{"todo": "TODO: json"}', now=clock())
    await files.write(INST, "/img/d.png", b"TODO: not text", now=clock())
    await files.write(INST, "/bin/e", b"TODO: opaque", now=clock())


async def test_grep(files: Files, clock: FakeClock) -> None:
    await _corpus(files, clock)
    found = await files.grep(INST, r"TODO: \w+")
    assert [(m.path, m.line, m.text) for m in found] == [
        ("/data/c.json", 1, '{"todo": "TODO: json"}'),
        ("/notes/a.md", 2, "TODO: call Bob"),
        ("/notes/a.md", 4, "TODO: pay"),
    ]
    assert [(m.path, m.line) for m in await files.grep(INST, "(?i)^todo", prefix="/notes")] == [
        ("/notes/a.md", 2),
        ("/notes/a.md", 4),
        ("/notes/b.txt", 2),
    ]
    assert (await files.grep(INST, "todo lower$"))[0].text == "todo lower"
    assert len(await files.grep(INST, "TODO", limit=2)) == 2
    assert await files.grep(INST, "TODO", prefix="/img") == []
    with pytest.raises(InvalidInput) as info:
        await files.grep(INST, "(unclosed")
    assert info.value.details["field"] == "pattern"
    with pytest.raises(InvalidInput):
        await files.grep(INST, "x", limit=0)


async def test_grep_reads_only_the_first_bytes_of_a_file(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs, "GREP_MAX_FILE_BYTES", 16)
    await files.write(
        INST, "/long.txt", b"early needle\n" + b"." * 100 + b"\nlate needle\n", now=clock()
    )
    assert [m.line for m in await files.grep(INST, "needle")] == [1]


async def test_grep_refuses_to_search_too_many_files(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(fs, "GREP_MAX_FILES", 2)
    for name in "abc":
        await files.write(INST, f"/t/{name}.txt", b"hay", now=clock())
    await files.write(INST, "/t/d.png", b"hay", now=clock())
    assert len(await files.grep(INST, "hay", limit=2)) == 2  # found enough before the bound
    with pytest.raises(InvalidInput):
        await files.grep(INST, "needle")
    assert await files.grep(INST, "needle", prefix="/t/a.txt") == []


async def test_find(files: Files, clock: FakeClock) -> None:
    for path in [
        "/attachments/a.png",
        "/attachments/b.jpg",
        "/attachments/sub/c.png",
        "/a.md",
        "/x/y/z.md",
        "/x/y.md",
        "/ab.md",
    ]:
        await files.write(INST, path, b"x", now=clock())

    async def find(glob: str, limit: int = 100) -> list[str]:
        return [info.path for info in await files.find(INST, glob, limit=limit)]

    assert await find("/attachments/*.png") == ["/attachments/a.png"]
    assert await find("/attachments/*") == ["/attachments/a.png", "/attachments/b.jpg"]
    assert await find("/attachments/**") == [
        "/attachments/a.png",
        "/attachments/b.jpg",
        "/attachments/sub/c.png",
    ]
    assert await find("/**/*.png") == ["/attachments/a.png", "/attachments/sub/c.png"]
    assert await find("/**/*.md") == ["/a.md", "/ab.md", "/x/y.md", "/x/y/z.md"]
    assert await find("/x/**/*.md") == ["/x/y.md", "/x/y/z.md"]
    assert await find("/?.md") == ["/a.md"]
    assert await find("/a?.md") == ["/ab.md"]
    assert await find("/*/y.md") == ["/x/y.md"]
    assert await find("/x/y.md") == ["/x/y.md"]
    assert await find("/**/**/*.md", limit=2) == ["/a.md", "/ab.md"]
    assert await find("/nothing/*") == []
    for bad in ["*.md", "/a/../*", "/a//*", "/**/a/**/b/**/c/**/d/**/e"]:
        with pytest.raises(InvalidInput):
            await files.find(INST, bad)


# --- copy --------------------------------------------------------------------------------


async def test_copy_into_another_instance(files: Files, clock: FakeClock) -> None:
    source = await files.write(INST, "/attachments/r.png", b"\x89PNG...", now=clock())
    clock.advance(5)
    copied = await files.copy(INST, "/attachments/r.png", OTHER, "/inbox/r.png", now=clock())
    assert (copied.path, copied.size, copied.media_type, copied.sha256) == (
        "/inbox/r.png",
        source.size,
        "image/png",
        source.sha256,
    )
    assert copied.created_at == copied.updated_at == clock()
    assert await files.read(OTHER, "/inbox/r.png") == b"\x89PNG..."
    assert await files.usage(OTHER) == (source.size, 1)
    # The copy is independent of its source.
    await files.write(INST, "/attachments/r.png", b"changed", now=clock())
    assert await files.read(OTHER, "/inbox/r.png") == b"\x89PNG..."
    await files.delete(INST, "/attachments/r.png")
    assert await files.read(OTHER, "/inbox/r.png") == b"\x89PNG..."
    with pytest.raises(FileNotFound):
        await files.copy(INST, "/attachments/r.png", OTHER, "/again.png", now=clock())


async def test_a_fenced_copy(files: Files, stores: Stores, clock: FakeClock) -> None:
    fence = await fenced(stores, clock)
    await files.write(INST, "/a.txt", b"for the child", now=clock())
    info = await files.copy(INST, "/a.txt", OTHER, "/from-parent.txt", now=clock(), fence=fence)
    assert info.sha256 == hashlib.sha256(b"for the child").hexdigest()


# --- presigned uploads -------------------------------------------------------------------


async def test_a_large_presigned_upload(files: Files, clock: FakeClock) -> None:
    body = bytes(range(256)) * (20 * 1024 * 4)  # 20 MiB
    upload = await files.presign_upload(
        INST, "/big/video.bin", media_type="application/octet-stream", size=len(body), now=clock()
    )
    assert upload.method == "PUT" and upload.expires_at == clock() + 900
    assert upload.as_json()["upload_id"] == upload.upload_id
    with pytest.raises(FileNotFound):
        await files.complete_upload(INST, upload.upload_id, now=clock())  # nothing uploaded yet
    send_upload(files, upload, body)
    clock.advance(10)
    info = await files.complete_upload(INST, upload.upload_id, now=clock())
    assert info.size == len(body) and info.sha256 == hashlib.sha256(body).hexdigest()
    assert info.media_type == "application/octet-stream" and info.created_at == clock()
    assert await paths(files) == ["/big/video.bin"]
    assert await files.usage(INST) == (len(body), 1)
    clock.advance(10)
    assert await files.complete_upload(INST, upload.upload_id, now=clock()) == info
    assert await files.usage(INST) == (len(body), 1)
    assert await files.read(INST, "/big/video.bin") == body


async def test_an_upload_overwrites_and_is_checked_on_completion(
    files: Files, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = (await files.write(INST, "/doc.md", b"old", now=clock())).created_at
    upload = await files.presign_upload(
        INST, "/doc.md", media_type="text/markdown", size=3, now=clock()
    )
    send_upload(files, upload, b"new")
    clock.advance(1)
    info = await files.complete_upload(INST, upload.upload_id, now=clock())
    assert (
        info.created_at == created
        and info.updated_at == clock()
        and info.media_type == "text/markdown"
    )
    assert await files.read(INST, "/doc.md") == b"new" and await files.usage(INST) == (3, 1)
    # Limits apply to what was uploaded, when it completes.
    wrong = await files.presign_upload(
        INST, "/w.md", media_type="text/markdown", size=3, now=clock()
    )
    send_upload(files, wrong, b"four")
    with pytest.raises(InvalidInput):
        await files.complete_upload(INST, wrong.upload_id, now=clock())
    full = await files.presign_upload(
        INST, "/f.md", media_type="text/markdown", size=4, now=clock()
    )
    send_upload(files, full, b"full")
    monkeypatch.setattr(fs, "INSTANCE_MAX_BYTES", 5)
    with pytest.raises(FilesQuotaExceeded):
        await files.complete_upload(INST, full.upload_id, now=clock())
    assert await paths(files) == ["/doc.md"] and await files.usage(INST) == (3, 1)
    await files.delete(INST, "/doc.md")  # room again: the same upload can complete
    assert (await files.complete_upload(INST, full.upload_id, now=clock())).size == 4


async def test_unknown_and_expired_uploads(files: Files, clock: FakeClock) -> None:
    with pytest.raises(FileNotFound):
        await files.complete_upload(INST, fs.new_upload_id(), now=clock())
    with pytest.raises(InvalidInput):
        await files.complete_upload(INST, "../../etc", now=clock())
    upload = await files.presign_upload(
        INST, "/late.txt", media_type="text/plain", size=2, expires=60, now=clock()
    )
    with pytest.raises(FileNotFound):
        await files.complete_upload(OTHER, upload.upload_id, now=clock())  # another instance's
    send_upload(files, upload, b"hi")
    clock.advance(60 + fs.UPLOAD_COMPLETE_GRACE + 1)
    with pytest.raises(FileNotFound):
        await files.complete_upload(INST, upload.upload_id, now=clock())
    assert await files.stat(INST, "/late.txt") is None
    for expires in [0, fs.URL_MAX_EXPIRES + 1]:
        with pytest.raises(InvalidInput):
            await files.presign_upload(
                INST, "/x.txt", media_type="text/plain", size=1, expires=expires, now=clock()
            )
    with pytest.raises(InvalidInput):
        await files.presign_upload(INST, "/x.txt", media_type="text/plain", size=-1, now=clock())


async def test_download_url(files: Files, clock: FakeClock) -> None:
    assert await files.download_url(INST, "/nope") is None
    await files.write(INST, "/a.txt", b"hello", now=clock())
    url = await files.download_url(INST, "/a.txt", expires=60)
    assert url is None or url.startswith("http")
    with pytest.raises(InvalidInput):
        await files.download_url(INST, "/a.txt", expires=0)
