"""Converse requests for `agent_runtime.models.bedrock`: our messages, tools and attached
files in the shapes of Bedrock's ``Converse`` / ``ConverseStream``.

Consecutive same-role messages are merged and tool results come first in their user turn;
text that is blank is left out (Converse refuses it), as is thinking without a signature
(thinking with one goes back as ``reasoningContent``). Converse refuses ``toolUse`` /
``toolResult`` blocks in a request without ``toolConfig``, so when none is sent
(``tool_choice="none"``, or no tools) earlier calls and results are written as text.
``tool_choice`` ``auto`` sends no ``toolChoice`` (it is the default, and some models refuse
the field), ``required`` sends ``any``. A tool result is ``[{"text": ...}]`` with
``status`` ``success`` or ``error`` (an interrupted call counts as an error).

Attached files (`FilePart`), from the bytes of `ModelRequest.files`: PNG, JPEG, GIF and
WebP images an ``image`` block (the bytes decide the format, as a refused image would fail
every later turn too); UTF-8 text up to 100 kB inline between a header and a trailer
naming the path, as the anthropic provider does (every model reads text, and it takes
none of the five document places); PDF, DOC(X) and XLS(X), and CSV, HTML, plain text and
Markdown over 100 kB, a ``document`` block after a line naming the file's path (a
document's ``name`` allows only letters, digits, single spaces, hyphens, parentheses and
brackets, so it is the path made to fit, and Converse wants a text block beside a
document); anything else, or what is over Converse's limits (20 images of 3.75 MB, 5
documents of 4.5 MB), a one-line note naming the file. The newest attachments are served
first: older ones past the limits become notes. Bytes go to boto3 raw (it base64-encodes
them).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agent_runtime.messages import (
    FilePart,
    Message,
    Part,
    TextPart,
    ThinkingPart,
    ToolCallPart,
    ToolResultPart,
)
from agent_runtime.models.attachments import MAX_INLINE_TEXT_BYTES
from agent_runtime.models.attachments import human_size as _human_size
from agent_runtime.models.attachments import image_type as _image_type
from agent_runtime.models.attachments import is_text as _is_text
from agent_runtime.models.attachments import media_type as _media_type
from agent_runtime.models.base import ModelRequest

logger = logging.getLogger(__name__)

#: Converse's limits on attachments (the ``Message.content`` reference): per request, at
#: most 20 images of 3.75 MB each and 5 documents of 4.5 MB each.
MAX_IMAGES = 20
MAX_IMAGE_BYTES = 3_750_000
MAX_DOCUMENTS = 5
MAX_DOCUMENT_BYTES = 4_500_000

#: Media types Converse reads as a ``document``, by its ``format``.
DOCUMENT_FORMATS: Mapping[str, str] = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_TEXT_FORMATS = frozenset({"csv", "html", "txt", "md"})
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .doc and .xls
_SIGNATURES = {"doc": _OLE, "xls": _OLE, "docx": b"PK\x03\x04", "xlsx": b"PK\x03\x04"}

Block = dict[str, Any]


def converse_arguments(model_id: str, request: ModelRequest) -> dict[str, Any]:
    """The keyword arguments of ``converse_stream`` for `request`."""
    send_tools = bool(request.tools) and request.tool_choice != "none"
    arguments: dict[str, Any] = {
        "modelId": model_id,
        "messages": to_converse_messages(
            request.messages, files=request.files, tool_blocks=send_tools
        ),
    }
    if request.system and request.system.strip():
        arguments["system"] = [{"text": request.system}]
    inference: dict[str, Any] = {"maxTokens": request.settings.max_tokens}
    if request.settings.temperature is not None:
        inference["temperature"] = request.settings.temperature
    arguments["inferenceConfig"] = inference
    if send_tools:
        tool_config: dict[str, Any] = {
            "tools": [
                {
                    "toolSpec": {
                        "name": spec.name,
                        "description": spec.description or spec.name,
                        "inputSchema": {"json": spec.parameters},
                    }
                }
                for spec in request.tools
            ]
        }
        if request.tool_choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        arguments["toolConfig"] = tool_config
    return arguments


def to_converse_messages(
    messages: Sequence[Message],
    *,
    files: Mapping[str, bytes] | None = None,
    tool_blocks: bool = True,
) -> list[dict[str, Any]]:
    """Our history as Converse turns: consecutive same-role messages merged, parts Converse
    refuses left out, tool results first in their user turn, each `FilePart` made blocks
    from `files` (see `_attachment`) in its place. Without `tool_blocks`, tool calls and
    results become text (a request with no ``toolConfig`` may not hold them)."""
    attached = _attachments(messages, files or {})
    turns: list[tuple[Literal["user", "assistant"], list[Block]]] = []
    for m, message in enumerate(messages):
        blocks: list[Block] = []
        for p, part in enumerate(message.parts):
            if isinstance(part, FilePart):
                blocks.extend(attached.get((m, p), []))
            elif (block := _block(part, tool_blocks)) is not None:
                blocks.append(block)
        if not blocks:
            continue
        if turns and turns[-1][0] == message.role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((message.role, blocks))
    for role, blocks in turns:
        if role == "user":
            blocks.sort(key=lambda block: "toolResult" not in block)  # stable
    return [{"role": role, "content": blocks} for role, blocks in turns]


def _block(part: Part, tool_blocks: bool) -> Block | None:
    if isinstance(part, TextPart):
        return {"text": part.text} if part.text.strip() else None
    if isinstance(part, ThinkingPart):
        if part.signature is None or not part.thinking:
            return None
        reasoning = {"text": part.thinking, "signature": part.signature}
        return {"reasoningContent": {"reasoningText": reasoning}}
    if isinstance(part, ToolCallPart):
        if not tool_blocks:
            arguments = json.dumps(part.arguments, ensure_ascii=False)
            return {"text": f"[called tool {part.name} (call {part.id}) with {arguments}]"}
        return {"toolUse": {"toolUseId": part.id, "name": part.name, "input": part.arguments}}
    if isinstance(part, ToolResultPart):
        # An interrupted call's outcome is unknown: the model must not take it as a success.
        failed = part.is_error or part.status != "ok"
        content = part.content if part.content.strip() else "(no output)"
        if not tool_blocks:
            outcome = "error" if failed else "result"
            return {"text": f"[{outcome} of tool {part.name} (call {part.call_id}): {content}]"}
        return {
            "toolResult": {
                "toolUseId": part.call_id,
                "content": [{"text": content}],
                "status": "error" if failed else "success",
            }
        }
    return None


@dataclass
class _Room:
    """What a request may still carry, and the document names it already uses."""

    images: int = MAX_IMAGES
    documents: int = MAX_DOCUMENTS
    names: set[str] = field(default_factory=set)


def _attachments(
    messages: Sequence[Message], files: Mapping[str, bytes]
) -> dict[tuple[int, int], list[Block]]:
    """The blocks for every `FilePart`, by (message, part) index. The newest are decided
    first, so when a request has no room left it is the older files that become notes."""
    blocks: dict[tuple[int, int], list[Block]] = {}
    room = _Room()
    for m in reversed(range(len(messages))):
        message = messages[m]
        for p in reversed(range(len(message.parts))):
            part = message.parts[p]
            if isinstance(part, FilePart):
                blocks[(m, p)] = _attachment(part, files.get(part.path), room, message.role)
    return blocks


def _attachment(
    part: FilePart, data: bytes | None, room: _Room, role: Literal["user", "assistant"]
) -> list[Block]:
    """The blocks the model sees for one attached file. An image's bytes decide its format
    (a refused image would fail every later turn of the conversation too)."""
    media_type = _media_type(part)
    if role == "assistant":
        return [_note(part, "files in assistant turns are not sent")]
    if data is None:
        return [_note(part, "its content could not be read for this request")]
    if media_type.startswith("image/") and not _is_text(media_type):
        actual = _image_type(data)
        if actual is None:
            if media_type in ("image/png", "image/jpeg", "image/gif", "image/webp"):
                return [_note(part, f"its content is not a valid {media_type} image")]
            reason = f"the model reads PNG, JPEG, GIF and WebP images, not {media_type}"
            return [_note(part, reason)]
        if len(data) > MAX_IMAGE_BYTES:
            return [_note(part, "it is over Bedrock's limit of 3.75 MB per image")]
        if room.images == 0:
            return [_note(part, f"the request already holds Bedrock's {MAX_IMAGES} images")]
        room.images -= 1
        image_format = actual.removeprefix("image/")
        return [{"image": {"format": image_format, "source": {"bytes": data}}}]
    doc_format = DOCUMENT_FORMATS.get(media_type)
    if _is_text(media_type) and (len(data) <= MAX_INLINE_TEXT_BYTES or doc_format is None):
        if len(data) > MAX_INLINE_TEXT_BYTES:
            return [_note(part, "text files over 100 kB are not inlined")]
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return [_note(part, "its content is not UTF-8 text")]
        title = f"{_PREFIX}{part.path} ({media_type}, {_human_size(len(data))})]"
        return [{"text": f"{title}\n{text}\n[end of file {part.path}]"}]
    if doc_format is not None:
        if problem := _invalid_document(doc_format, data):
            return [_note(part, problem)]
        if len(data) > MAX_DOCUMENT_BYTES:
            return [_note(part, "it is over Bedrock's limit of 4.5 MB per document")]
        if room.documents == 0:
            reason = f"the request already holds Bedrock's {MAX_DOCUMENTS} documents"
            return [_note(part, reason)]
        room.documents -= 1
        name = document_name(part.path, room.names)
        described = f"{part.path} ({media_type}, {_human_size(len(data))})"
        header = {"text": f"{_PREFIX}{described} attached as the document named {name!r}]"}
        document = {"format": doc_format, "name": name, "source": {"bytes": data}}
        return [header, {"document": document}]
    return [_note(part, f"the model reads images, documents and text, not {media_type}")]


_PREFIX = "[file "


def _invalid_document(doc_format: str, data: bytes) -> str | None:
    if not data:
        return "it is empty"
    if doc_format == "pdf" and b"%PDF-" not in data[:1024]:
        return "its content is not a valid PDF"
    if (signature := _SIGNATURES.get(doc_format)) and not data.startswith(signature):
        return f"its content is not a valid {doc_format.upper()} file"
    if doc_format in _TEXT_FORMATS:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "its content is not UTF-8 text"
    return None


_NAME_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9 \-()\[\]]+")


def document_name(path: str, taken: set[str]) -> str:
    """A name Converse accepts for the document at `path`, unused in this request (added to
    `taken`): the path without its extension, other characters than letters, digits,
    spaces, hyphens, parentheses and brackets made hyphens, whitespace runs one space."""
    stem, dot, extension = path.rpartition(".")
    base = stem if dot and "/" not in extension and stem else path
    base = _NAME_NOT_ALLOWED.sub("-", re.sub(r"\s+", " ", base)).strip(" -")[:180]
    base = re.sub(r"-{2,}", "-", base) or "document"
    name, number = base, 1
    while name in taken:
        number += 1
        name = f"{base} ({number})"
    taken.add(name)
    return name


def _note(part: FilePart, reason: str) -> Block:
    # Path, type, size and reason only: never anything of the content.
    media_type = _media_type(part)
    logger.info("file %s (%s) not shown to the model: %s", part.path, media_type, reason)
    described = f"{part.path} ({media_type}, {_human_size(part.size)})"
    return {"text": f"{_PREFIX}{described} attached; not shown to the model: {reason}]"}
