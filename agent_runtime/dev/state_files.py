"""Files of the state folder: atomic, durable writes, JSON lines, and DynamoDB's binary values.

A write goes to a temporary name, is flushed to the disk (``fsync``) and renamed over the old
file, and the folder is flushed too, so after a crash a file is either its old or its new
version, and a rename that a later step relies on (the manifest naming a snapshot) is on disk.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from agent_runtime.errors import AgentRuntimeError

__all__ = [
    "LocalStateError",
    "all_pages",
    "decode_binary",
    "encode_binary",
    "fsync_dir",
    "jsonl",
    "read_json",
    "read_jsonl",
    "write_atomic",
]


class LocalStateError(AgentRuntimeError):
    """The state folder cannot be read: unknown format or version, or a damaged file."""

    type = "local_state_error"

    def __init__(self, message: str, *, path: Path) -> None:
        super().__init__(message, details={"path": str(path)})
        self.path = path


def all_pages(
    call: Callable[..., dict[str, Any]], items: str, token_in: str, token_out: str
) -> Iterator[Any]:
    kwargs: dict[str, Any] = {}
    while True:
        page = call(**kwargs)
        yield from page.get(items, [])
        token = page.get(token_out)
        if not token:
            return
        kwargs[token_in] = token


def encode_binary(value: Any) -> Any:
    """boto3's DynamoDB values hold `bytes` for B/BS; the wire JSON holds them as base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: encode_binary(v) for k, v in value.items()}
    if isinstance(value, list):
        return [encode_binary(v) for v in value]
    return value


def decode_binary(value: Any) -> Any:
    if isinstance(value, dict):
        decoded: dict[str, Any] = {}
        for key, inner in value.items():
            if key == "B" and isinstance(inner, str):
                decoded[key] = base64.b64decode(inner)
            elif key == "BS" and isinstance(inner, list):
                decoded[key] = [base64.b64decode(v) for v in inner]
            else:
                decoded[key] = decode_binary(inner)
        return decoded
    if isinstance(value, list):
        return [decode_binary(v) for v in value]
    return value


def jsonl(rows: list[Any]) -> bytes:
    return "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()


def read_jsonl(path: Path) -> Iterator[Any]:
    try:
        with path.open("rb") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise LocalStateError(f"{path}:{number}: {exc}", path=path) from exc
    except FileNotFoundError as exc:
        raise LocalStateError(f"{path} is listed in the manifest but missing", path=path) from exc


def read_json(path: Path) -> dict[str, Any]:
    try:
        value: dict[str, Any] = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise LocalStateError(f"cannot read {path}: {exc}", path=path) from exc
    return value


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make the names in `path` (a file created, renamed or removed) durable."""
    with contextlib.suppress(OSError):  # some file systems cannot open a folder
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
