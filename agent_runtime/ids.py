"""Validation of every name and id before it becomes a key, a group id or an S3 key.

Limits are chosen so that the SQS FIFO `MessageGroupId` of an instance,
``"{agent}/{id}"``, always fits its 128 characters: agent names are at most 48
characters of ``[a-z0-9-]``, ids at most 79 URL-safe characters
(``[A-Za-z0-9._~-]``), so ``48 + 1 + 79 = 128``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agent_runtime.errors import InvalidInput

AGENT_NAME_MAX = 48
INSTANCE_ID_MAX = 79
SESSION_MAX = 64
KEY_MAX = 128

_AGENT_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_URL_SAFE = re.compile(r"^[A-Za-z0-9._~-]+$")
_SESSION = re.compile(r"^[A-Za-z0-9._-]+$")


#: Agent names already checked: a process knows a handful, and checks them on every call.
_VALID_NAMES: set[str] = set()


def validate_agent_name(name: str) -> str:
    if isinstance(name, str) and name in _VALID_NAMES:
        return name
    if not isinstance(name, str) or not 1 <= len(name) <= AGENT_NAME_MAX or not _AGENT_NAME.match(name):
        raise InvalidInput(
            f"agent name must be 1-{AGENT_NAME_MAX} characters of [a-z0-9-], "
            "starting and ending with a letter or digit",
            details={"field": "name", "value": str(name)[:100]},
        )
    if len(_VALID_NAMES) < 10_000:
        _VALID_NAMES.add(name)
    return name


def validate_instance_id(instance_id: str) -> str:
    if (
        not isinstance(instance_id, str)
        or not 1 <= len(instance_id) <= INSTANCE_ID_MAX
        or not _URL_SAFE.match(instance_id)
        or instance_id in {".", ".."}
    ):
        raise InvalidInput(
            f"instance id must be 1-{INSTANCE_ID_MAX} URL-safe characters [A-Za-z0-9._~-]",
            details={"field": "id", "value": str(instance_id)[:100]},
        )
    return instance_id


def validate_session(session: str) -> str:
    if (
        not isinstance(session, str)
        or not 1 <= len(session) <= SESSION_MAX
        or not _SESSION.match(session)
        or session in {".", ".."}
    ):
        raise InvalidInput(
            f"session must be 1-{SESSION_MAX} characters of [A-Za-z0-9._-]",
            details={"field": "session", "value": str(session)[:100]},
        )
    return session


def validate_key(key: str, *, field: str = "key") -> str:
    """Idempotency keys, dispatch ids and kv keys: printable, no separators."""
    if not isinstance(key, str) or not 1 <= len(key) <= KEY_MAX or not _URL_SAFE.match(key):
        raise InvalidInput(
            f"{field} must be 1-{KEY_MAX} URL-safe characters [A-Za-z0-9._~-]",
            details={"field": field, "value": str(key)[:100]},
        )
    return key


#: Instance keys already parsed (and so validated), by key: a record names its instance
#: by key, and a run asks a record for its instance a dozen times. Refs are frozen, so
#: one may be handed out again; past the bound the memory starts afresh.
_PARSED: dict[str, InstanceRef] = {}
_PARSED_MAX = 10_000


@dataclass(frozen=True, order=True)
class InstanceRef:
    """The address of an instance: `(agent name, id)`; validated on construction."""

    agent: str
    id: str

    def __post_init__(self) -> None:
        validate_agent_name(self.agent)
        validate_instance_id(self.id)

    @property
    def key(self) -> str:
        """`agent/id`: the partition key body, the FIFO group id, the S3 prefix."""
        return f"{self.agent}/{self.id}"

    @classmethod
    def parse(cls, key: str) -> InstanceRef:
        known = _PARSED.get(key) if cls is InstanceRef else None
        if known is not None:
            return known
        agent, sep, instance_id = key.partition("/")
        if not sep:
            raise InvalidInput("instance key must be 'agent/id'", details={"value": key[:200]})
        ref = cls(agent, instance_id)
        if cls is InstanceRef:
            if len(_PARSED) >= _PARSED_MAX:
                _PARSED.clear()
            _PARSED[key] = ref
        return ref

    def __str__(self) -> str:
        return self.key
