"""The model provider's API key, in Secrets Manager (never in an environment variable)."""

from __future__ import annotations

import re

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import StackConfig
from infra.constructs.common import removal_policy
from infra.nag import acknowledge

# Secrets Manager appends "-" and six characters to a secret's name to form its ARN.
_COMPLETE_ARN = re.compile(r"^arn:[^:]+:secretsmanager:[^:]*:[^:]*:secret:.+-[A-Za-z0-9]{6}$")

PLACEHOLDER_DESCRIPTION = (
    "agent-runtime model API key. The stack created this secret with a random "
    "placeholder: put your provider's key in it "
    "(aws secretsmanager put-secret-value --secret-id <arn> --secret-string <key>), "
    "or deploy with -c model_secret=<arn or name> to use an existing secret."
)


class ModelSecret(Construct):
    """``secret``: the configured secret (by ARN or name), or a new placeholder one."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        reference = config.model_secret
        self.secret: secretsmanager.ISecret
        if reference is None:
            self.secret = secretsmanager.Secret(
                self,
                "Secret",
                description=PLACEHOLDER_DESCRIPTION,
                # CloudFormation cannot create a secret without a value; a random one is an
                # obvious placeholder that no provider accepts.
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=32
                ),
                removal_policy=removal_policy(config),
            )
            acknowledge(
                self.secret,
                "SMG4",
                "The secret holds a third-party model provider's API key, which only that "
                "provider can issue; Secrets Manager cannot rotate it. Rotate it at the "
                "provider and put the new key here.",
            )
        elif reference.startswith("arn:"):
            if _COMPLETE_ARN.match(reference):
                self.secret = secretsmanager.Secret.from_secret_complete_arn(
                    self, "Secret", reference
                )
            else:
                self.secret = secretsmanager.Secret.from_secret_partial_arn(
                    self, "Secret", reference
                )
        else:
            self.secret = secretsmanager.Secret.from_secret_name_v2(self, "Secret", reference)
