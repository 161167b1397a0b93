"""Lookups in a synthesized CloudFormation template (a plain dict)."""

from __future__ import annotations

from typing import Any

Resources = dict[str, dict[str, Any]]


def of_type(resources: Resources, kind: str) -> Resources:
    """The resources of CloudFormation type `kind`, by logical id."""
    return {name: body for name, body in resources.items() if body["Type"] == kind}


def one(resources: Resources, kind: str, **where: Any) -> tuple[str, dict[str, Any]]:
    """The single resource of `kind` whose properties include `where`."""
    found = [
        (name, body)
        for name, body in of_type(resources, kind).items()
        if all(body.get("Properties", {}).get(key) == value for key, value in where.items())
    ]
    assert len(found) == 1, f"expected one {kind} with {where}, found {[n for n, _ in found]}"
    return found[0]


def function_named(resources: Resources, handler: str) -> tuple[str, dict[str, Any]]:
    return one(resources, "AWS::Lambda::Function", Handler=handler)


def role_of(function: dict[str, Any]) -> str:
    """The logical id of a function's role (``Fn::GetAtt [role, Arn]``)."""
    return str(function["Properties"]["Role"]["Fn::GetAtt"][0])


def statements_of_role(resources: Resources, role: str) -> list[dict[str, Any]]:
    """Every statement of every AWS::IAM::Policy attached to `role`."""
    found: list[dict[str, Any]] = []
    for body in of_type(resources, "AWS::IAM::Policy").values():
        if {"Ref": role} in body["Properties"].get("Roles", []):
            found.extend(body["Properties"]["PolicyDocument"]["Statement"])
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resolve_join(value: Any, refs: dict[str, str]) -> str:
    """A ``Fn::Join`` of strings and ``Ref``s as a string, each ``Ref`` replaced by
    ``refs[logical id]``."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return refs[value["Ref"]]
    separator, parts = value["Fn::Join"]
    return str(separator).join(resolve_join(part, refs) for part in parts)
