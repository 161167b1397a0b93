"""`Variables` in memory: the reference semantics of `agent_runtime.variables.Variables`.

Secrets are sealed, as the DynamoDB adapter's are with KMS: encrypted under a key made
per store and authenticated together with an encryption context naming the instance and
the variable, so a sealed value moved to another instance or name does not open, and no
structure of the store (nor its ``repr``) holds a plaintext. The cipher (a SHAKE-256
keystream and an HMAC-SHA256 tag) is there for those semantics, not to protect data at
rest: the key lives in the same process.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from agent_runtime.ids import InstanceRef
from agent_runtime.variables import (
    SecretNotReadable,
    SecretUnreadable,
    SecretValue,
    VariableInfo,
    check_value,
    encryption_context,
    plain_over_secret,
    validate_variable_name,
)

_NONCE = 16
_TAG = 32


class _Sealer:
    """Authenticated encryption with associated data, from the standard library."""

    def __init__(self) -> None:
        key = secrets.token_bytes(32)
        self._enc = hmac.digest(key, b"encrypt", "sha256")
        self._mac = hmac.digest(key, b"authenticate", "sha256")

    def __repr__(self) -> str:
        return "<sealer>"

    def _stream(self, nonce: bytes, size: int) -> bytes:
        return hashlib.shake_256(self._enc + nonce).digest(size)

    def _tag(self, nonce: bytes, aad: bytes, body: bytes) -> bytes:
        return hmac.digest(self._mac, nonce + len(aad).to_bytes(4, "big") + aad + body, "sha256")

    def seal(self, plaintext: bytes, context: Mapping[str, str]) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        body = bytes(
            a ^ b for a, b in zip(plaintext, self._stream(nonce, len(plaintext)), strict=True)
        )
        return nonce + self._tag(nonce, _aad(context), body) + body

    def open(self, sealed: bytes, context: Mapping[str, str]) -> bytes | None:
        """The plaintext, or None when the tag does not match (tampered, or another context)."""
        nonce, tag, body = sealed[:_NONCE], sealed[_NONCE : _NONCE + _TAG], sealed[_NONCE + _TAG :]
        if not hmac.compare_digest(tag, self._tag(nonce, _aad(context), body)):
            return None
        return bytes(a ^ b for a, b in zip(body, self._stream(nonce, len(body)), strict=True))


def _aad(context: Mapping[str, str]) -> bytes:
    return json.dumps(dict(context), sort_keys=True, separators=(",", ":")).encode()


@dataclass(frozen=True)
class StoredVariable:
    """One stored variable: `value` for a plain one, `sealed` (ciphertext) for a secret."""

    secret: bool
    updated_at: float
    value: str | None = None
    sealed: bytes | None = None


class MemoryVariables:
    """`Variables` over dicts and one lock. `items` (instance key -> name -> stored) is the
    raw state, as a DynamoDB scan would show it."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.items: dict[str, dict[str, StoredVariable]] = {}
        self._sealer = _Sealer()

    def _of(self, instance: InstanceRef) -> dict[str, StoredVariable]:
        return self.items.setdefault(instance.key, {})

    async def put(self, instance: InstanceRef, name: str, value: str, *, secret: bool) -> None:
        validate_variable_name(name)
        data = check_value(name, value, secret=secret)
        now = self.clock()
        if secret:
            stored = StoredVariable(
                secret=True,
                updated_at=now,
                sealed=self._sealer.seal(data, encryption_context(instance, name)),
            )
        else:
            stored = StoredVariable(secret=False, updated_at=now, value=value)
        with self.lock:
            known = self._of(instance).get(name)
            if known is not None and known.secret and not secret:
                raise plain_over_secret(name)
            self._of(instance)[name] = stored

    async def get(self, instance: InstanceRef, name: str) -> str | None:
        validate_variable_name(name)
        with self.lock:
            stored = self._of(instance).get(name)
        if stored is None:
            return None
        if stored.secret:
            raise SecretNotReadable(
                name, f"{name} is a secret: its value is given to tools only (ctx.secret)"
            )
        return stored.value

    async def reveal(self, instance: InstanceRef, name: str) -> SecretValue | None:
        validate_variable_name(name)
        with self.lock:
            stored = self._of(instance).get(name)
        if stored is None:
            return None
        if not stored.secret or stored.sealed is None:
            raise SecretNotReadable(name, f"{name} is not a secret: read it with get()")
        plaintext = self._sealer.open(stored.sealed, encryption_context(instance, name))
        if plaintext is None:
            raise SecretUnreadable(name)
        return SecretValue(plaintext.decode("utf-8"))

    async def list(self, instance: InstanceRef) -> list[VariableInfo]:
        with self.lock:
            stored = sorted(self._of(instance).items())
        return [
            VariableInfo(
                name=name,
                secret=s.secret,
                set=True,
                updated_at=s.updated_at,
                value=None if s.secret else s.value,
            )
            for name, s in stored
        ]

    async def delete(self, instance: InstanceRef, name: str) -> bool:
        validate_variable_name(name)
        with self.lock:
            return self._of(instance).pop(name, None) is not None

    async def values(self, instance: InstanceRef) -> dict[str, str]:
        with self.lock:
            stored = sorted(self._of(instance).items())
        return {name: s.value for name, s in stored if not s.secret and s.value is not None}
