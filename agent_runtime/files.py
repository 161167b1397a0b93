"""Every instance's filesystem: paths, media types, limits, and the `Files` port.

Paths look like absolute POSIX paths (``/attachments/receipt.png``) but name files in a
flat namespace, as S3 keys do: there are no directories to create or remove, a prefix
(``/notes/``) only selects the files whose paths start with it, and a file ``/notes``
may sit beside ``/notes/todo.md``. Every path is validated (`validate_path`) before any
adapter turns it into a key.

Adapters: `agent_runtime.adapters.memory_files.MemoryFiles` (the reference semantics)
and `agent_runtime.adapters.aws.s3_files.S3Files` (bytes in S3, one metadata item per
file in the instance's DynamoDB partition). One contract suite checks both:
`agent_runtime.testing.files_contract`.

Limits are module constants, read when a call is made (tests lower them): a file holds
at most `FILE_MAX_BYTES`; an instance at most `INSTANCE_MAX_BYTES` in at most
`INSTANCE_MAX_FILES` files. Large files go through a presigned upload
(`Files.presign_upload`, then `Files.complete_upload`), never through a Lambda's body.

Media types: a given type is reduced to ``type/subtype`` (parameters dropped, lower
case) and must be in `MEDIA_TYPES` or be ``text/*``, or `UnsupportedMediaType` is
raised. Without one, the type is guessed from the extension; a guess outside the
allowlist (``.exe``, ``.mp4``) stores the file as opaque ``application/octet-stream``,
which is itself allowed, rather than refusing it.
"""

from __future__ import annotations

import builtins
import mimetypes
import re
import secrets
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from agent_runtime.errors import (
    FileNotFound,
    FilesQuotaExceeded,
    FileTooLarge,
    InvalidInput,
    UnsupportedMediaType,
)
from agent_runtime.events import iso
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Fence

# --- limits ---------------------------------------------------------------------------

FILE_MAX_BYTES = 100 * 1024 * 1024
INSTANCE_MAX_BYTES = 1024**3
INSTANCE_MAX_FILES = 10_000

PATH_MAX_CHARS = 512
#: UTF-8 bytes: the DynamoDB sort key ``FILE#<path>`` stays under its 1024-byte limit.
PATH_MAX_BYTES = 1000
SEGMENT_MAX_CHARS = 255
PATH_MAX_DEPTH = 16

#: `list`, `grep` and `find` return at most this many entries per call.
PAGE_MAX = 1000
#: `grep` searches only the first this-many bytes of each file ...
GREP_MAX_FILE_BYTES = 1024 * 1024
#: ... of at most this many text-like files; a wider search is refused (narrow the prefix).
GREP_MAX_FILES = 1000
GREP_PATTERN_MAX_CHARS = 1000
#: A matching line longer than this is returned cut to it.
GREP_LINE_MAX_CHARS = 1000
#: `**` segments allowed in one glob (each multiplies the matching work).
GLOB_MAX_DOUBLE_STARS = 4

#: Presigned URLs live at most this long (seconds).
URL_MAX_EXPIRES = 3600
#: An upload may be completed until this long after its URL expired; then it is forgotten.
UPLOAD_COMPLETE_GRACE = 3600

# --- media types ----------------------------------------------------------------------

#: Allowed besides every ``text/*`` type.
MEDIA_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/pdf",
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/xml",
        "application/octet-stream",
        "application/zip",
        "application/gzip",
        "application/rtf",
        "application/msword",
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/epub+zip",
    }
)
#: Searched by `grep` besides ``text/*``.
TEXT_MEDIA_TYPES = frozenset(
    {
        "application/json",
        "application/x-ndjson",
        "application/yaml",
        "application/x-yaml",
        "application/xml",
    }
)
DEFAULT_MEDIA_TYPE = "application/octet-stream"

# Guesses that Python's built-in table lacks or that vary between versions; then that
# table alone (not /etc/mime.types), so a guess is the same on every machine.
_EXTENSIONS = {
    ".md": "text/markdown",
    ".markdown": "text/markdown",
    ".yaml": "application/yaml",
    ".yml": "application/yaml",
    ".jsonl": "application/x-ndjson",
    ".ndjson": "application/x-ndjson",
    ".csv": "text/csv",
    ".webp": "image/webp",
    ".gz": "application/gzip",
    ".log": "text/plain",
    ".toml": "text/plain",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}
_GUESSERS: list[mimetypes.MimeTypes] = []


def _guesser() -> mimetypes.MimeTypes:
    """The standard table (not the host's files), built on first use: it costs an import."""
    if not _GUESSERS:
        _GUESSERS.append(mimetypes.MimeTypes(filenames=()))
    return _GUESSERS[0]
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")


def allowed_media_type(media_type: str) -> bool:
    return media_type.startswith("text/") or media_type in MEDIA_TYPES


def is_text(media_type: str) -> bool:
    """Whether `grep` searches files of this type."""
    return media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES


def media_type_for(path: str, given: str | None) -> str:
    """The media type a file at `path` is stored with (see the module docstring)."""
    if given is None:
        dot = path.rfind(".")
        extension = path[dot:].lower() if dot > path.rfind("/") else ""
        guessed = (
            _EXTENSIONS.get(extension) or _guesser().guess_type(f"file{extension}", strict=True)[0]
        )
        return guessed if guessed and allowed_media_type(guessed) else DEFAULT_MEDIA_TYPE
    if not isinstance(given, str):
        raise UnsupportedMediaType("media_type must be a string", details={"field": "media_type"})
    media_type = given.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media_type):
        raise UnsupportedMediaType(
            "media_type must look like type/subtype",
            details={"field": "media_type", "value": given[:100]},
        )
    if not allowed_media_type(media_type):
        raise UnsupportedMediaType(
            f"media type {media_type} is not accepted for files",
            details={"field": "media_type", "value": media_type},
        )
    return media_type


# --- paths ----------------------------------------------------------------------------


def _bad(field: str, value: object, message: str) -> InvalidInput:
    return InvalidInput(f"{field} {message}", details={"field": field, "value": str(value)[:100]})


def _check_path(path: object, field: str) -> str:
    if not isinstance(path, str) or not path.startswith("/"):
        raise _bad(field, path, "must be an absolute path starting with '/'")
    if len(path) > PATH_MAX_CHARS:
        raise _bad(field, path, f"must be at most {PATH_MAX_CHARS} characters")
    try:
        encoded = path.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(field, path, "must be valid Unicode") from None
    if len(encoded) > PATH_MAX_BYTES:
        raise _bad(field, path, f"must be at most {PATH_MAX_BYTES} bytes in UTF-8")
    if "\\" in path:
        raise _bad(field, path, "must not contain backslashes")
    if any(unicodedata.category(char) == "Cc" for char in path):
        raise _bad(field, path, "must not contain control characters")
    if path.endswith("/"):
        raise _bad(field, path, "must name a file: no trailing '/'")
    segments = path[1:].split("/")
    if len(segments) > PATH_MAX_DEPTH:
        raise _bad(field, path, f"must have at most {PATH_MAX_DEPTH} segments")
    for segment in segments:
        if not segment:
            raise _bad(field, path, "must not contain empty segments ('//')")
        if segment in {".", ".."}:
            raise _bad(field, path, "must not contain '.' or '..' segments")
        if len(segment) > SEGMENT_MAX_CHARS:
            raise _bad(field, path, f"segments must be at most {SEGMENT_MAX_CHARS} characters")
    return path


def validate_path(path: str, *, field: str = "path") -> str:
    """`path` if it names a file: starts with '/', no trailing '/', no empty, '.' or '..'
    segment, no control character or backslash, at most `PATH_MAX_CHARS` characters
    (`PATH_MAX_BYTES` in UTF-8), segments of at most `SEGMENT_MAX_CHARS`, at most
    `PATH_MAX_DEPTH` segments. Anything else raises `InvalidInput` naming `field`."""
    return _check_path(path, field)


def validate_prefix(prefix: str) -> str:
    """A listing prefix as the directory it names, ending in '/': ``/``, ``/notes/`` and
    ``/notes`` are fine (the last two both give ``/notes/``, which matches
    ``/notes/todo.md`` but not ``/notesX``)."""
    if prefix == "/":
        return prefix
    body = prefix[:-1] if isinstance(prefix, str) and prefix.endswith("/") else prefix
    return _check_path(body, "prefix") + "/"


def check_page_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= PAGE_MAX:
        raise _bad("limit", limit, f"must be an integer from 1 to {PAGE_MAX}")
    return limit


def check_expires(expires: int) -> int:
    if (
        not isinstance(expires, int)
        or isinstance(expires, bool)
        or not 1 <= expires <= URL_MAX_EXPIRES
    ):
        raise _bad("expires", expires, f"must be from 1 to {URL_MAX_EXPIRES} seconds")
    return expires


# --- limits ---------------------------------------------------------------------------


def check_size(size: int) -> None:
    """Refuse a file no instance could hold, before anything is written."""
    if size > FILE_MAX_BYTES:
        raise FileTooLarge(
            f"a file holds at most {FILE_MAX_BYTES} bytes",
            details={"limit": FILE_MAX_BYTES, "size": size},
        )
    if size > INSTANCE_MAX_BYTES:
        raise _quota("bytes", INSTANCE_MAX_BYTES)


def check_declared_size(size: int) -> None:
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _bad("size", size, "must be a byte count")
    check_size(size)


def check_uploaded_size(size: int, declared: int) -> None:
    """The uploaded object must hold what `presign_upload` was told (and signed)."""
    check_size(size)
    if size != declared:
        raise InvalidInput(
            f"the upload holds {size} bytes, not the {declared} declared",
            details={"field": "size", "size": size, "declared": declared},
        )


def check_quota(usage: tuple[int, int], add_bytes: int, add_files: int) -> None:
    """Refuse a change that takes an instance with `usage` (bytes, files) over its limits.
    A change that adds nothing (an overwrite with a smaller file, a delete) always passes."""
    used_bytes, used_files = usage
    if add_files > 0 and used_files + add_files > INSTANCE_MAX_FILES:
        raise _quota("files", INSTANCE_MAX_FILES)
    if add_bytes > 0 and used_bytes + add_bytes > INSTANCE_MAX_BYTES:
        raise _quota("bytes", INSTANCE_MAX_BYTES)


def _quota(quota: str, limit: int) -> FilesQuotaExceeded:
    return FilesQuotaExceeded(
        f"an instance's files may hold at most {limit} {quota}",
        details={"quota": quota, "limit": limit},
    )


# --- ids ------------------------------------------------------------------------------

_UPLOAD_ID = re.compile(r"up-[0-9a-f]{32}")


def new_object_id() -> str:
    """A fresh id for one write's bytes: no two writes ever share an object."""
    return secrets.token_hex(16)


def new_upload_id() -> str:
    return f"up-{secrets.token_hex(16)}"


def upload_not_found(upload_id: str, why: str = "is unknown") -> FileNotFound:
    return FileNotFound(f"upload {upload_id} {why}", details={"upload_id": upload_id})


def validate_upload_id(upload_id: str) -> str:
    if not isinstance(upload_id, str) or not _UPLOAD_ID.fullmatch(upload_id):
        raise _bad("upload_id", upload_id, "must be an id returned by presign_upload")
    return upload_id


# --- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class FileInfo:
    """A file's metadata: what `stat`, `list` and `find` return (never the bytes)."""

    path: str
    size: int
    media_type: str
    sha256: str
    created_at: float
    updated_at: float

    def as_json(self) -> dict[str, Any]:
        """The wire form: times as ISO-8601 UTC."""
        return {
            "path": self.path,
            "size": self.size,
            "media_type": self.media_type,
            "sha256": self.sha256,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }

    def as_record(self) -> dict[str, Any]:
        """Every field as stored (epoch seconds); `FileInfo(**record)` reads it back."""
        return asdict(self)


@dataclass(frozen=True)
class FilePage:
    """Files in path order; pass `next_after` as ``after`` for the next page (None: no more)."""

    files: builtins.list[FileInfo]
    next_after: str | None


@dataclass(frozen=True)
class GrepMatch:
    path: str
    line: int
    text: str


@dataclass(frozen=True)
class Upload:
    """A presigned upload: send the body (exactly the declared size) with `method` to
    `url` with `headers` before `expires_at`, then call `Files.complete_upload`."""

    upload_id: str
    url: str
    method: str
    headers: dict[str, str] = field(default_factory=dict)
    expires_at: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "upload_id": self.upload_id,
            "url": self.url,
            "method": self.method,
            "headers": dict(self.headers),
            "expires_at": iso(self.expires_at),
        }


# --- matching -------------------------------------------------------------------------


def under(path: str, prefix: str) -> bool:
    """Whether `path` is in the directory `prefix` (as `validate_prefix` returns it)."""
    return path.startswith(prefix)


def compile_glob(glob: str) -> tuple[str, re.Pattern[str]]:
    """A glob as (the literal directory it starts with, a pattern the whole path must
    match): ``*`` and ``?`` match within a segment, a ``**`` segment any number of
    segments (at least one when it ends the glob). ``[`` has no special meaning."""
    segments = _check_path(glob, "glob")[1:].split("/")
    collapsed = [
        s for i, s in enumerate(segments) if not (s == "**" and i and segments[i - 1] == "**")
    ]
    if collapsed.count("**") > GLOB_MAX_DOUBLE_STARS:
        raise _bad("glob", glob, f"may have at most {GLOB_MAX_DOUBLE_STARS} '**' segments")
    literal: builtins.list[str] = []
    wild = False
    parts: builtins.list[str] = []
    for index, segment in enumerate(collapsed):
        last = index == len(collapsed) - 1
        if segment == "**":
            parts.append("(?:/[^/]+)+" if last else "(?:/[^/]+)*")
            wild = True
            continue
        if "*" in segment or "?" in segment:
            wild = True
        elif not wild and not last:
            literal.append(segment)
        parts.append("/" + "".join(_glob_char(char) for char in segment))
    prefix = "/" + "".join(f"{segment}/" for segment in literal)
    return prefix, re.compile("".join(parts), re.DOTALL)


def _glob_char(char: str) -> str:
    return "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)


def compile_grep(pattern: str) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not 1 <= len(pattern) <= GREP_PATTERN_MAX_CHARS:
        raise _bad("pattern", pattern, f"must be 1-{GREP_PATTERN_MAX_CHARS} characters")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise InvalidInput(
            f"pattern is not a valid regular expression: {error}", details={"field": "pattern"}
        ) from None


def grep_text(
    path: str, data: bytes, regex: re.Pattern[str], limit: int
) -> builtins.list[GrepMatch]:
    """Matching lines of the first `GREP_MAX_FILE_BYTES` of `data` (UTF-8, undecodable
    bytes replaced), numbered from 1, at most `limit`."""
    text = data[:GREP_MAX_FILE_BYTES].decode("utf-8", errors="replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    matches: builtins.list[GrepMatch] = []
    for number, line in enumerate(lines, 1):
        line = line.removesuffix("\r")
        if regex.search(line):
            matches.append(GrepMatch(path, number, line[:GREP_LINE_MAX_CHARS]))
            if len(matches) >= limit:
                break
    return matches


def too_many_to_grep() -> InvalidInput:
    return InvalidInput(
        f"grep searches at most {GREP_MAX_FILES} text files: narrow the prefix",
        details={"field": "prefix", "limit": GREP_MAX_FILES},
    )


# --- the port -------------------------------------------------------------------------


class Files(Protocol):
    """An instance's filesystem.

    Every path is validated first (`InvalidInput`), then the media type
    (`UnsupportedMediaType`) and the size (`FileTooLarge`); then, for a write given a
    `Fence`, that the attempt still holds its submission and no abort was asked
    (`StaleAttempt`, `AbortRequested`); then the instance's limits
    (`FilesQuotaExceeded`). A refused write changes nothing anyone can see.
    """

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
        """Create or overwrite the file (an overwrite keeps ``created_at``)."""
        ...

    async def read(self, instance: InstanceRef, path: str) -> bytes:
        """The file's bytes; `FileNotFound` when there is none."""
        ...

    async def stat(self, instance: InstanceRef, path: str) -> FileInfo | None: ...

    async def list(
        self,
        instance: InstanceRef,
        prefix: str = "/",
        *,
        after: str | None = None,
        limit: int = 100,
    ) -> FilePage:
        """Files under `prefix` (recursively), in path order, after the path `after`."""
        ...

    async def delete(self, instance: InstanceRef, path: str, *, fence: Fence | None = None) -> bool:
        """Remove the file; False when there was none (a stale fence still raises)."""
        ...

    async def grep(
        self, instance: InstanceRef, pattern: str, *, prefix: str = "/", limit: int = 100
    ) -> builtins.list[GrepMatch]:
        """Lines matching the Python regex `pattern` (searched with ``re.search``) in the
        text-like files (`is_text`) under `prefix`: the first `GREP_MAX_FILE_BYTES` of
        each, at most `GREP_MAX_FILES` files, in path then line order, at most `limit`."""
        ...

    async def find(
        self, instance: InstanceRef, glob: str, *, limit: int = 100
    ) -> builtins.list[FileInfo]:
        """Files whose path matches `glob` (`compile_glob`), in path order."""
        ...

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
        """Write a copy of `source`'s file at `target_path` of `target` (same bytes, media
        type and sha256; times as a write at `now`). `FileNotFound` without a source."""
        ...

    async def usage(self, instance: InstanceRef) -> tuple[int, int]:
        """(bytes, files) the instance's files hold."""
        ...

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
        """A URL to upload `size` bytes for `path` to, outside any Lambda. Limits are
        checked now against the current usage, and again on completion."""
        ...

    async def complete_upload(
        self, instance: InstanceRef, upload_id: str, *, now: float
    ) -> FileInfo:
        """The uploaded bytes become the file (size and sha256 computed from them, limits
        and media type checked). `FileNotFound` for an unknown id, an upload with nothing
        uploaded yet, or one forgotten `UPLOAD_COMPLETE_GRACE` after its URL expired;
        completing again returns the same `FileInfo`."""
        ...

    async def download_url(
        self, instance: InstanceRef, path: str, *, expires: int = 300
    ) -> str | None:
        """A presigned GET of the file's bytes; None without a file or where the adapter
        has no URLs (memory). The URL stops working once the file is overwritten."""
        ...
