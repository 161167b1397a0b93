"""cdk-nag (AwsSolutions pack) acknowledgments: one helper, and a way to list them all.

An acknowledgment names one finding (``IAM5[Resource::*]``) on one construct, with the
reason it is acceptable; `acknowledgments` reads them back from the construct tree for
reports and tests.
"""

from __future__ import annotations

from typing import Any

import aws_cdk as cdk
from constructs import IConstruct

PACK = "AwsSolutions"
_METADATA = "aws:cdk:acknowledged-rules"


def rule_id(rule: str) -> str:
    """``"IAM5[Resource::*]"`` -> ``"AwsSolutions::AwsSolutions-IAM5[Resource::*]"``."""
    return f"{PACK}::{PACK}-{rule}"


def acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge finding `rule` (``"S1"``, ``"IAM5[Action::s3:*]"``) on `scope` and below."""
    if len(reason) < 20:
        raise ValueError(f"acknowledgment of {rule} needs a real reason")
    cdk.Validations.of(scope).acknowledge(cdk.Acknowledgment(id=rule_id(rule), reason=reason))


def acknowledgments(scope: IConstruct) -> list[tuple[str, str, str]]:
    """Every acknowledgment under `scope`: ``(construct path, rule id, reason)``."""
    found: list[tuple[str, str, str]] = []
    for construct in scope.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == _METADATA and isinstance(entry.data, dict):
                found.extend(
                    (construct.node.path, rule, str(why)) for rule, why in entry.data.items()
                )
    return sorted(found)


def finding_resource(scope: IConstruct, value: str) -> str:
    """`value` (an ARN that may hold tokens) written the way cdk-nag names it in an IAM5
    finding: ``{"Fn::GetAtt": ["Bucket", "Arn"]}`` -> ``<Bucket.Arn>``,
    ``{"Ref": "AWS::Region"}`` -> ``<AWS::Region>``, joins concatenated."""
    return _render(cdk.Stack.of(scope).resolve(value))


def _render(node: Any) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, dict) and len(node) == 1:
        ((function, argument),) = node.items()
        if function == "Ref":
            return f"<{argument}>"
        if function == "Fn::GetAtt":
            return f"<{argument[0]}.{argument[1]}>"
        if function == "Fn::Join":
            separator, parts = argument
            return str(separator).join(_render(part) for part in parts)
    raise ValueError(f"cannot render {node!r} as cdk-nag does")
