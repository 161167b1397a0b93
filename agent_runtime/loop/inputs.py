"""What a model call is made of besides the history: the submission's input as a message,
and the bytes of the files the messages attach.

A message refers to a file by path (`FilePart`); its bytes are read from the instance's
filesystem for each model call only, never stored with the message. At most
`FILES_PER_REQUEST` files are read per call (the latest attachments; older ones stay
in the history as parts, which providers describe as text), each at most
`FILE_READ_MAX_BYTES`; a file deleted meanwhile is simply absent (the provider says so
to the model).
"""

from __future__ import annotations

import json

from agent_runtime.errors import FileNotFound
from agent_runtime.files import FileInfo
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import SubmissionRecord
from agent_runtime.loop.child_runs import report_text
from agent_runtime.message_sums import MessageSum
from agent_runtime.messages import FilePart, Message
from agent_runtime.ports import Stores

FILES_PER_REQUEST = 20
#: Providers take documents up to 32 MB; nothing bigger is read into a Lambda for them.
FILE_READ_MAX_BYTES = 32 * 1024 * 1024


def file_part(info: FileInfo) -> FilePart:
    """How a message refers to a stored file."""
    return FilePart(path=info.path, media_type=info.media_type, size=info.size, sha256=info.sha256)


def input_message(record: SubmissionRecord) -> Message:
    """The submission's input as the user message its first turn applies."""
    payload = record.payload
    if record.kind == "direct" and isinstance(payload, dict) and isinstance(payload.get("message"), str):
        files = [FilePart(**part) for part in payload.get("attachments") or []]
        return Message.user(payload["message"], files=files)
    if record.kind == "task" and isinstance(payload, dict) and isinstance(payload.get("prompt"), str):
        files = [FilePart(**part) for part in payload.get("attachments") or []]
        return Message.user(payload["prompt"], files=files)  # a child sees its prompt, never the parent's transcript
    if record.kind == "child_report" and isinstance(payload, dict):
        return Message.user(report_text(payload), synthetic=True)
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return Message.user(text)


#: How many files the history attaches (most attach none: no walk back through it).
_attached = MessageSum(lambda message: len(message.files))


async def request_files(stores: Stores, instance: InstanceRef, messages: list[Message]) -> dict[str, bytes]:
    """The bytes of the latest attached files, by path."""
    if not _attached(messages):
        return {}
    latest: dict[str, FilePart] = {}
    for message in reversed(messages):
        for part in reversed(message.files):
            if len(latest) >= FILES_PER_REQUEST:
                break
            latest.setdefault(part.path, part)
    found: dict[str, bytes] = {}
    for path, part in latest.items():
        if part.size > FILE_READ_MAX_BYTES:
            continue
        try:
            found[path] = await stores.files.read(instance, path)
        except FileNotFound:
            continue
    return found


__all__ = ["FILES_PER_REQUEST", "FILE_READ_MAX_BYTES", "file_part", "input_message", "request_files"]
