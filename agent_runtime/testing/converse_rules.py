"""What Bedrock's Converse API refuses, for `agent_runtime.testing.fake_bedrock`.

`converse_problem(body)` is the first reason Bedrock would answer a Converse or
ConverseStream request body (JSON, blobs as base64) with a ``ValidationException``, among
those a client library is likely to get wrong: roles that do not start with the user or
do not alternate, empty content, blank text, a block with more or less than one content
type, images and documents outside user turns or over their limits, bytes that are not
what their format says, document names with characters Converse does not allow, a
document without a text block beside it, tool results that do not answer the previous
turn's tool uses, tool blocks without ``toolConfig``, and a malformed ``toolConfig``.
Where Bedrock's wording is known, the message uses it.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_DOCUMENT_BYTES",
    "MAX_IMAGES",
    "MAX_IMAGE_BYTES",
    "converse_problem",
]

MAX_IMAGES, MAX_IMAGE_BYTES = 20, 3_750_000
MAX_DOCUMENTS, MAX_DOCUMENT_BYTES = 5, 4_500_000
_IMAGE_SIGNATURES = {
    "png": (b"\x89PNG\r\n\x1a\n",),
    "jpeg": (b"\xff\xd8\xff",),
    "gif": (b"GIF87a", b"GIF89a"),
    "webp": (b"RIFF",),  # and "WEBP" at offset 8
}
_DOCUMENT_FORMATS = frozenset({"pdf", "csv", "doc", "docx", "xls", "xlsx", "html", "txt", "md"})
_DOCUMENT_NAME = re.compile(r"[A-Za-z0-9()\[\]-]+( [A-Za-z0-9()\[\]-]+)*")
_TOOL_NAME = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_CHOICES = {"auto", "any", "tool"}

_START = (
    "A conversation must start with a user message. "
    "Try again with a conversation that starts with a user message."
)
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. "
    "Make sure the conversation alternates between user and assistant roles and try again."
)
_TOOL_CONFIG = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)


def converse_problem(body: Any) -> str | None:
    """Why Bedrock would refuse `body`, or None."""
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return "The messages field is required."
    if not body["messages"]:
        return "The messages field must hold at least one message."
    for n, block in enumerate(body.get("system") or []):
        if not isinstance(block, dict) or not str(block.get("text", "")).strip():
            return f"The text field in the SystemContentBlock object at system.{n} is blank."
    temperature = (body.get("inferenceConfig") or {}).get("temperature")
    if temperature is not None and not 0 <= temperature <= 1:
        return "inferenceConfig.temperature must be between 0 and 1"
    if problem := _tools_problem(body.get("toolConfig")):
        return problem
    uses_tools, pending = False, set[str]()
    images = documents = 0
    previous = None
    for i, message in enumerate(body["messages"]):
        role, content = message.get("role"), message.get("content")
        if role not in ("user", "assistant"):
            return f"messages.{i}.role must be user or assistant"
        if i == 0 and role != "user":
            return _START
        if role == previous:
            return _ALTERNATE
        previous = role
        if not isinstance(content, list) or not content:
            return (
                f"The content field in the Message object at messages.{i} is empty. "
                "Add a ContentBlock object to the content field and try again."
            )
        kinds: list[str] = []
        results: set[str] = set()
        for j, block in enumerate(content):
            where = f"messages.{i}.content.{j}"
            if problem := _block_problem(block, role, where):
                return problem
            ((kind, value),) = block.items()
            kinds.append(kind)
            uses_tools = uses_tools or kind in ("toolUse", "toolResult")
            if kind == "toolResult":
                results.add(str(value.get("toolUseId")))
        images += kinds.count("image")
        documents += kinds.count("document")
        if "document" in kinds and "text" not in kinds:
            return f"The message at messages.{i} holds a document but no text block."
        if role == "assistant":
            pending = {str(b["toolUse"].get("toolUseId")) for b in content if "toolUse" in b}
            continue
        if missing := sorted(pending - results):
            return (
                f"Expected toolResult blocks at messages.{i}.content "
                f"for the following Ids: {', '.join(missing)}"
            )
        if results - pending:
            return (
                f"The number of toolResult blocks at messages.{i}.content exceeds "
                "the number of toolUse blocks of previous turn."
            )
        pending = set()
    if images > MAX_IMAGES or documents > MAX_DOCUMENTS:
        return f"A request may hold at most {MAX_IMAGES} images and {MAX_DOCUMENTS} documents."
    if uses_tools and not body.get("toolConfig"):
        return _TOOL_CONFIG
    return None


def _block_problem(block: Any, role: str, where: str) -> str | None:
    if not isinstance(block, dict) or len(block) != 1:
        return f"The ContentBlock object at {where} must set exactly one content type."
    ((kind, value),) = block.items()
    if kind == "text" and not (isinstance(value, str) and value.strip()):
        return (
            f"The text field in the ContentBlock object at {where} is blank. "
            "Add text to the text field, and try again."
        )
    if kind in ("image", "document", "toolResult") and role != "user":
        return f"The {kind} field at {where} is only allowed in user messages."
    if kind in ("toolUse", "reasoningContent") and role != "assistant":
        return f"The {kind} field at {where} is only allowed in assistant messages."
    if kind in ("image", "document"):
        return _media_problem(kind, value, where)
    if kind in ("toolUse", "toolResult") and not isinstance(value, dict):
        return f"The {kind} field at {where} must be an object."
    if kind == "toolResult" and not isinstance(value.get("content"), list):
        return f"The content field of the toolResult at {where} must be a list."
    if kind not in ("text", "toolUse", "toolResult", "reasoningContent", "cachePoint"):
        return f"The ContentBlock object at {where} has an unsupported type {kind!r}."
    return None


def _tools_problem(config: Any) -> str | None:
    if config is None:
        return None
    tools = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(tools, list) or not tools:
        return "The toolConfig.tools field must hold at least one tool."
    names = set()
    for n, tool in enumerate(tools):
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        if not isinstance(spec, dict) or not _TOOL_NAME.fullmatch(str(spec.get("name", ""))):
            return f"toolConfig.tools.{n}.toolSpec.name must match [a-zA-Z0-9_-]{{1,64}}"
        if not isinstance((spec.get("inputSchema") or {}).get("json"), dict):
            return f"toolConfig.tools.{n}.toolSpec.inputSchema.json must be a JSON schema object"
        names.add(spec["name"])
    choice = config.get("toolChoice")
    if choice is None:
        return None
    if not isinstance(choice, dict) or len(choice) != 1 or not choice.keys() <= _CHOICES:
        return "toolConfig.toolChoice must set exactly one of auto, any or tool"
    if "tool" in choice and choice["tool"].get("name") not in names:
        return "toolConfig.toolChoice.tool.name must name one of the tools"
    return None


def _media_problem(kind: str, block: Any, where: str) -> str | None:
    """Why Bedrock would refuse an ``image`` or ``document`` block with ``bytes``."""
    if not isinstance(block, dict):
        return f"The {kind} field at {where} must be an object."
    fmt, source = str(block.get("format")), block.get("source")
    allowed = _IMAGE_SIGNATURES if kind == "image" else _DOCUMENT_FORMATS
    if fmt not in allowed:
        return f"{where}.{kind}.format must be one of {', '.join(sorted(allowed))}"
    if kind == "document" and not _DOCUMENT_NAME.fullmatch(str(block.get("name", ""))[:200]):
        return (
            f"The document file name at {where} can only contain alphanumeric characters, "
            "whitespace characters, hyphens, parentheses, and square brackets. The name "
            "can't contain more than one consecutive whitespace character."
        )
    if not isinstance(source, dict) or not isinstance(source.get("bytes"), str):
        return f"{where}.{kind}.source.bytes is required"
    try:
        data = base64.b64decode(source["bytes"], validate=True)
    except binascii.Error:
        return f"{where}.{kind}.source.bytes is not valid base64"
    if kind == "image":
        if len(data) > MAX_IMAGE_BYTES:
            return f"The image at {where} is larger than 3.75 MB."
        webp_ok = fmt != "webp" or data[8:12] == b"WEBP"
        if not data.startswith(_IMAGE_SIGNATURES[fmt]) or not webp_ok:
            return f"The image at {where} is not a valid {fmt} image."
    elif len(data) > MAX_DOCUMENT_BYTES:
        return f"The document at {where} is larger than 4.5 MB."
    elif fmt == "pdf" and b"%PDF-" not in data[:1024]:
        return f"The document at {where} is not a valid pdf."
    return None
