"""`Variables` on DynamoDB, secrets encrypted with KMS.

One item per variable in the instance's partition::

    pk = "I#{agent}/{id}"   sk = "VAR#{name}"
    v            N   schema version (`VARIABLE_SCHEMA_VERSION`); a reader refuses others
    secret       BOOL
    value        S   a plain variable's value (absent for a secret)
    ciphertext   B   a secret's KMS ciphertext (absent for a plain variable)
    updated_at   N   epoch seconds of the last put

A secret is encrypted with KMS `Encrypt` (at most 4 KiB of plaintext: no envelope
needed) under an `EncryptionContext` of ``{"instance": "<agent>/<id>", "variable":
"<NAME>"}``, and decrypted with the same context and the configured key, so a ciphertext
copied to another instance or name does not decrypt. The plaintext is never written to
the table. Reads that are not `reveal` project the ciphertext away: it never leaves the
table except to be decrypted.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from agent_runtime.adapters.aws.dynamodb_items import Item, _code, _key, _n, _pk, _s
from agent_runtime.adapters.aws.offload import offload
from agent_runtime.ids import InstanceRef
from agent_runtime.variables import (
    VARIABLE_SCHEMA_VERSION,
    SecretNotReadable,
    SecretsUnavailable,
    SecretUnreadable,
    SecretValue,
    VariableInfo,
    check_value,
    encryption_context,
    plain_over_secret,
    validate_variable_name,
)

_PREFIX = "VAR#"
#: Everything but the ciphertext (``value`` is a reserved word).
_PLAIN_PROJECTION = "sk, #v, secret, #value, updated_at"
_NAMES = {"#v": "v", "#value": "value"}
#: KMS errors that mean "this ciphertext is not for this key and context".
_UNDECRYPTABLE = {"InvalidCiphertextException", "IncorrectKeyException"}


def _sk(name: str) -> str:
    return f"{_PREFIX}{name}"


def _checked(item: Item) -> Item:
    v = int(item["v"]["N"]) if "v" in item else None
    if v != VARIABLE_SCHEMA_VERSION:
        raise ValueError(
            f"unknown variable item version {v} (this runtime reads {VARIABLE_SCHEMA_VERSION})"
        )
    return item


def _is_secret(item: Item) -> bool:
    return bool(item.get("secret", {}).get("BOOL", False))


class DynamoDBVariables:
    """`Variables` over the instance table and a KMS key. Clients are passed in."""

    def __init__(
        self,
        client: Any,
        table: str,
        kms: Any,
        key_id: str | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.table = table
        #: A KMS client, or a function that makes one (on first use: most Lambdas never
        #: touch a secret, and a client costs cold-start time).
        self.kms = kms
        self.key_id = key_id
        self.clock = clock

    def _kms(self) -> Any:
        if self.key_id is None or self.kms is None:
            raise SecretsUnavailable()
        return self.kms() if callable(self.kms) else self.kms

    async def put(self, instance: InstanceRef, name: str, value: str, *, secret: bool) -> None:
        validate_variable_name(name)
        data = check_value(name, value, secret=secret)
        item: Item = {
            **_key(instance, _sk(name)),
            "v": _n(VARIABLE_SCHEMA_VERSION),
            "secret": {"BOOL": secret},
            "updated_at": _n(self.clock()),
        }
        if secret:
            blob = (await offload(self._kms().encrypt,
                KeyId=self.key_id,
                Plaintext=data,
                EncryptionContext=encryption_context(instance, name),
            ))["CiphertextBlob"]
            item["ciphertext"] = {"B": blob}
            await offload(self.client.put_item, TableName=self.table, Item=item)
            return
        item["value"] = _s(value)
        # A plain put and a secret put of one name may race:
        #   A: put(X, secret=True)  -> item holds ciphertext
        #   B: put(X, secret=False) -> must not replace it with a value in the clear
        # so a plain put only writes over nothing or over a plain item.
        try:
            await offload(
                self.client.put_item,
                TableName=self.table,
                Item=item,
                ConditionExpression="attribute_not_exists(sk) OR secret = :false",
                ExpressionAttributeValues={":false": {"BOOL": False}},
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                raise plain_over_secret(name) from None
            raise

    async def get(self, instance: InstanceRef, name: str) -> str | None:
        validate_variable_name(name)
        item = await self._get(instance, name, _PLAIN_PROJECTION, _NAMES)
        if item is None:
            return None
        if _is_secret(item):
            raise SecretNotReadable(
                name, f"{name} is a secret: its value is given to tools only (ctx.secret)"
            )
        return str(item["value"]["S"])

    async def reveal(self, instance: InstanceRef, name: str) -> SecretValue | None:
        validate_variable_name(name)
        item = await self._get(instance, name, "#v, secret, ciphertext", {"#v": "v"})
        if item is None:
            return None
        if not _is_secret(item) or "ciphertext" not in item:
            raise SecretNotReadable(name, f"{name} is not a secret: read it with get()")
        try:
            response = await offload(self._kms().decrypt,
                CiphertextBlob=item["ciphertext"]["B"],
                KeyId=self.key_id,
                EncryptionContext=encryption_context(instance, name),
            )
        except ClientError as error:
            if _code(error) in _UNDECRYPTABLE:
                raise SecretUnreadable(name) from None
            raise
        return SecretValue(bytes(response["Plaintext"]).decode("utf-8"))

    async def list(self, instance: InstanceRef) -> list[VariableInfo]:
        return [
            VariableInfo(
                name=item["sk"]["S"][len(_PREFIX) :],
                secret=_is_secret(item),
                set=True,
                updated_at=float(item["updated_at"]["N"]),
                value=None if _is_secret(item) else item["value"]["S"],
            )
            for item in await self._query(instance)
        ]

    async def delete(self, instance: InstanceRef, name: str) -> bool:
        validate_variable_name(name)
        try:
            await offload(
                self.client.delete_item,
                TableName=self.table,
                Key=_key(instance, _sk(name)),
                ConditionExpression="attribute_exists(sk)",
            )
        except ClientError as error:
            if _code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    async def values(self, instance: InstanceRef) -> dict[str, str]:
        return {
            item["sk"]["S"][len(_PREFIX) :]: item["value"]["S"]
            for item in await self._query(instance)
            if not _is_secret(item)
        }

    # --- reads ---------------------------------------------------------------------

    async def _get(
        self, instance: InstanceRef, name: str, projection: str, names: dict[str, str]
    ) -> Item | None:
        item = (await offload(
            self.client.get_item,
            TableName=self.table,
            Key=_key(instance, _sk(name)),
            ConsistentRead=True,
            ProjectionExpression=projection,
            ExpressionAttributeNames=names,
        )).get("Item")
        return None if item is None else _checked(item)

    async def _query(self, instance: InstanceRef) -> builtins.list[Item]:
        """Every variable item of the instance, in name order, without ciphertexts."""
        items: builtins.list[Item] = []
        kwargs: dict[str, Any] = {}
        while True:
            response = await offload(
                self.client.query,
                TableName=self.table,
                KeyConditionExpression="pk = :pk AND begins_with(sk, :prefix)",
                ExpressionAttributeValues={":pk": _s(_pk(instance)), ":prefix": _s(_PREFIX)},
                ProjectionExpression=_PLAIN_PROJECTION,
                ExpressionAttributeNames=_NAMES,
                ConsistentRead=True,
                **kwargs,
            )
            items.extend(_checked(item) for item in response["Items"])
            if "LastEvaluatedKey" not in response:
                return items
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
