"""What every provider decides alike about an attached file (`FilePart`): its media type,
whether its bytes really are the image they claim, whether it is text to inline, and the
one-line note the model sees in place of a file it cannot be shown.

Providers build their own blocks from these; only the shapes differ between APIs. The
notes and inlined text carry a file's path, type and size, never anything of its content
into the logs.
"""

from __future__ import annotations

import base64
import logging
from typing import Literal

from agent_runtime.messages import FilePart

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_MEDIA_TYPES",
    "INLINE_PREFIX",
    "MAX_INLINE_TEXT_BYTES",
    "NO_ROOM",
    "ImageMediaType",
    "b64",
    "base64_size",
    "human_size",
    "image_type",
    "inline_text",
    "is_text",
    "media_type",
    "note_text",
]

ImageMediaType = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]
IMAGE_MEDIA_TYPES: tuple[ImageMediaType, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")

#: Text-like files up to this size are inlined as text; larger ones become a note.
MAX_INLINE_TEXT_BYTES = 100_000
INLINE_PREFIX = "[file "
NO_ROOM = "the request has no room left for it after more recent attachments"

#: Not under ``text/`` but text all the same (so are ``+json``, ``+xml`` and ``+yaml`` types).
_TEXT_MEDIA_TYPES = frozenset(
    f"application/{name}"
    for name in ("json", "x-ndjson", "xml", "yaml", "x-yaml", "toml", "javascript", "sql", "x-sh")
)


def media_type(part: FilePart) -> str:
    """The part's media type without parameters, lower-cased."""
    return part.media_type.split(";", 1)[0].strip().lower()


def is_text(media_type: str) -> bool:
    return (
        media_type.startswith("text/")
        or media_type in _TEXT_MEDIA_TYPES
        or media_type.endswith(("+json", "+xml", "+yaml"))
    )


def image_type(data: bytes) -> ImageMediaType | None:
    """The image type the bytes' signature names, among PNG, JPEG, GIF and WebP."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def base64_size(size: int) -> int:
    return 4 * ((size + 2) // 3)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def human_size(size: int) -> str:
    if size < 1000:
        return f"{size} B"
    value = size / 1000
    for unit in ("kB", "MB"):
        if value < 1000:
            return f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def note_text(part: FilePart, reason: str) -> str:
    """The text the model sees for a file it is not shown, naming the file and why."""
    kind = media_type(part)
    logger.info("file %s (%s) not shown to the model: %s", part.path, kind, reason)
    described = f"{part.path} ({kind}, {human_size(part.size)})"
    return f"{INLINE_PREFIX}{described} attached; not shown to the model: {reason}]"


def inline_text(part: FilePart, data: bytes) -> tuple[str, int]:
    """A text file's content between a header and a trailer naming its path, with the
    request bytes it takes; or (too big, not UTF-8) a note saying so, taking none. Check
    with `is_text` first."""
    if len(data) > MAX_INLINE_TEXT_BYTES:
        return note_text(part, "text files over 100 kB are not inlined"), 0
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return note_text(part, "its content is not UTF-8 text"), 0
    header = f"{INLINE_PREFIX}{part.path} ({media_type(part)}, {human_size(len(data))})]"
    return f"{header}\n{text}\n[end of file {part.path}]", len(data)
