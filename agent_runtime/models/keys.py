"""A provider's API key from the stack's model secret, read once per process.

The stack names one secret (``AGENT_RUNTIME_MODEL_SECRET_ARN``): an SSM parameter, written
``ssm:<name>`` or as a parameter ARN, or a Secrets Manager secret (any other id or ARN).
It holds either the key itself, or a JSON object with a key per provider, which is how a
deployment that calls more than one provider keeps them apart::

    {"ANTHROPIC_API_KEY": "sk-ant-...", "OPENAI_API_KEY": "sk-..."}

The secret's text is read once per process and shared by every provider (one AWS call on
a cold worker, not one per provider); each provider then picks its own field out of it.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from typing import Any

from agent_runtime.errors import ModelError
from agent_runtime.settings import ENV_MODEL_SECRET_ARN

__all__ = ["ENV_MODEL_SECRET_ARN", "api_key_from_secret", "read_secret", "secret_ref"]


def secret_ref() -> str | None:
    """The model secret the stack named for this function, if any."""
    return os.environ.get(ENV_MODEL_SECRET_ARN) or None


def api_key_from_secret(ref: str, *, fields: Sequence[str], provider: str) -> str:
    """The key in the secret `ref`: its whole text, or in a JSON secret the first of
    `fields` present (e.g. ``("OPENAI_API_KEY", "api_key")``). `provider` names the
    provider in error messages. Raises `ModelError` when there is no key."""
    value = read_secret(ref)
    if value.startswith("{"):
        try:
            data = json.loads(value)
        except ValueError as err:
            raise ModelError(
                f"the secret {ref} is not valid JSON", details={"secret": ref}
            ) from err
        found = next((data[name] for name in fields if isinstance(data, dict) and data.get(name)), "")
        value = str(found).strip()
    if not value:
        raise ModelError(f"the secret {ref} holds no {provider} API key", details={"secret": ref})
    return value


@functools.cache
def read_secret(ref: str) -> str:
    """The secret's text, read once per process (`read_secret.cache_clear()` forgets it)."""
    import boto3  # only a deployment that keeps its key in AWS pays for this import

    arn = ref.removeprefix("ssm:")
    fields = arn.split(":") if arn.startswith("arn:") else []
    region = fields[3] if len(fields) > 3 and fields[3] else None
    try:
        if ref.startswith("ssm:") or (len(fields) > 2 and fields[2] == "ssm"):
            ssm: Any = boto3.client("ssm", region_name=region)
            return str(ssm.get_parameter(Name=arn, WithDecryption=True)["Parameter"]["Value"]).strip()
        secrets: Any = boto3.client("secretsmanager", region_name=region)
        return str(secrets.get_secret_value(SecretId=arn)["SecretString"]).strip()
    except Exception as err:
        raise ModelError(f"could not read the secret {ref}: {err}", details={"secret": ref}) from err
