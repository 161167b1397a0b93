"""Instance files, presigned uploads and secret variables: who may touch which objects,
the KMS key and who may use it, the bucket's lifecycle, the routes.

    action                               http_api   worker    others
    s3 get/put/delete  instances/*/*/files/*   allow      allow     deny
    s3 get/put/delete  uploads/*               allow      deny      deny
    kms:Encrypt        the secrets key         allow      -         -
    kms:Decrypt        the secrets key         -          allow     -
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

import pytest

from agent_runtime import settings
from agent_runtime.adapters.aws.s3_files import _object_key, _staged_key
from agent_runtime.ids import InstanceRef
from infra.constructs.api import HTTP_ROUTES
from infra.constructs.storage import FILE_OBJECTS, UPLOADS_PREFIX
from infra.stack import HANDLERS, WEBSOCKET_HANDLER
from tests.infra.helpers import (
    Resources,
    as_list,
    function_named,
    of_type,
    role_of,
    statements_of_role,
)

FILES = "/" + FILE_OBJECTS
UPLOADS = f"/{UPLOADS_PREFIX}*"
OBJECT_ACTIONS = {"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}
# Which object prefixes each function may touch; every other function is denied both.
FILE_ACCESS: dict[str, set[str]] = {"http_api": {FILES, UPLOADS}, "worker": {FILES}}
SECRETS_CONTEXT = {
    "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["instance", "variable"]},
    "Null": {"kms:EncryptionContext:instance": "false", "kms:EncryptionContext:variable": "false"},
}
NAMES = [spec.name for spec in (*HANDLERS, WEBSOCKET_HANDLER)]


def _function(resources: Resources, name: str) -> dict[str, Any]:
    return function_named(resources, f"functions.{name}.handler")[1]


def _bucket(resources: Resources) -> str:
    return next(
        name
        for name, body in of_type(resources, "AWS::S3::Bucket").items()
        if "LoggingConfiguration" in body["Properties"]
    )


def _key(resources: Resources) -> str:
    (key,) = of_type(resources, "AWS::KMS::Key")
    return key


def _objects(resources: Resources, name: str) -> dict[str, dict[str, set[str]]]:
    """``{effect: {object pattern: actions}}`` of a function's statements on the bucket's
    objects (``/*``, ``/uploads/*``, ...)."""
    bucket_arn = {"Fn::GetAtt": [_bucket(resources), "Arn"]}
    found: dict[str, dict[str, set[str]]] = {"Allow": {}, "Deny": {}}
    for statement in statements_of_role(resources, role_of(_function(resources, name))):
        for resource in as_list(statement["Resource"]):
            if isinstance(resource, dict) and "Fn::Join" in resource:
                separator, parts = resource["Fn::Join"]
                if separator == "" and len(parts) == 2 and parts[0] == bucket_arn:
                    actions = found[statement["Effect"]].setdefault(parts[1], set())
                    actions |= set(as_list(statement["Action"]))
    return found


def _kms_statements(resources: Resources) -> dict[str, list[dict[str, Any]]]:
    """Every statement with a KMS action, by the function whose role holds it."""
    roles = {role_of(_function(resources, name)): name for name in NAMES}
    found: dict[str, list[dict[str, Any]]] = {}
    for body in of_type(resources, "AWS::IAM::Policy").values():
        for statement in body["Properties"]["PolicyDocument"]["Statement"]:
            if any(action.startswith("kms:") for action in as_list(statement["Action"])):
                for role in body["Properties"]["Roles"]:
                    found.setdefault(roles.get(role["Ref"], role["Ref"]), []).append(statement)
    return found


# --- files and uploads -----------------------------------------------------------------


def test_the_object_patterns_are_the_runtimes_keys() -> None:
    instance = InstanceRef("support-assistant", "files")  # an id that is a prefix's name
    assert fnmatchcase(_object_key(instance), FILE_OBJECTS)
    assert fnmatchcase(_staged_key(instance, "u" * 32), UPLOADS_PREFIX + "*")
    # Spilled attributes lie beside the files, under instances/, and stay outside them.
    for spilled in ("payloads/0123abcd.json", "journal/0000000001.json", "errors/0000000001.json"):
        assert not fnmatchcase(f"instances/{instance.key}/{spilled}", FILE_OBJECTS), spilled


@pytest.mark.parametrize("name", NAMES)
def test_only_the_http_function_and_the_worker_touch_files_and_only_http_uploads(
    resources: Resources, name: str
) -> None:
    objects = _objects(resources, name)
    expected = FILE_ACCESS.get(name, set())
    allowed = {prefix for prefix in objects["Allow"] if prefix in (FILES, UPLOADS)}
    assert allowed == expected
    for prefix in expected:
        assert objects["Allow"][prefix] == OBJECT_ACTIONS
    if "/*" in objects["Allow"]:
        # The bucket-wide grant (spilled attributes) reaches files and uploads too: each
        # prefix the function is not granted is denied, for exactly the granted actions.
        assert objects["Allow"]["/*"] == OBJECT_ACTIONS
        assert objects["Deny"] == {prefix: OBJECT_ACTIONS for prefix in {FILES, UPLOADS} - expected}
    else:
        assert not expected and objects == {"Allow": {}, "Deny": {}}


@pytest.mark.parametrize("name", sorted(FILE_ACCESS))
def test_file_functions_may_list_the_bucket_so_a_missing_key_is_404(
    resources: Resources, name: str
) -> None:
    bucket_arn = {"Fn::GetAtt": [_bucket(resources), "Arn"]}
    statements = statements_of_role(resources, role_of(_function(resources, name)))
    assert [s for s in statements if s["Resource"] == bucket_arn] == [
        {"Action": "s3:ListBucket", "Effect": "Allow", "Resource": bucket_arn}
    ]


def test_bucket_lifecycle_expires_staged_uploads(resources: Resources) -> None:
    rules = resources[_bucket(resources)]["Properties"]["LifecycleConfiguration"]["Rules"]
    by_id = {rule["Id"]: rule for rule in rules}
    assert by_id["expire-uploads"] == {
        "Id": "expire-uploads",
        "Prefix": "uploads/",
        "ExpirationInDays": 1,
        "Status": "Enabled",
    }
    assert by_id["abort-incomplete-uploads"] == {
        "Id": "abort-incomplete-uploads",
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        "Status": "Enabled",
    }
    assert by_id["expire-tmp"]["Prefix"] == "tmp/"
    # Nothing else expires: files and spilled attributes live as long as their instance.
    assert set(by_id) == {"expire-uploads", "abort-incomplete-uploads", "expire-tmp"}


# --- secret variables ------------------------------------------------------------------


def test_secrets_key_is_symmetric_rotated_and_lives_with_the_table(resources: Resources) -> None:
    key = resources[_key(resources)]
    props = key["Properties"]
    assert props["EnableKeyRotation"] is True
    assert props.get("KeySpec", "SYMMETRIC_DEFAULT") == "SYMMETRIC_DEFAULT"
    assert props.get("KeyUsage", "ENCRYPT_DECRYPT") == "ENCRYPT_DECRYPT"
    (table,) = of_type(resources, "AWS::DynamoDB::Table").values()
    assert key["DeletionPolicy"] == table["DeletionPolicy"]
    assert key["UpdateReplacePolicy"] == table["UpdateReplacePolicy"]


def test_http_encrypts_and_the_worker_decrypts_secrets_only(resources: Resources) -> None:
    key_arn = {"Fn::GetAtt": [_key(resources), "Arn"]}

    def statement(action: str) -> dict[str, Any]:
        return {"Action": action, "Condition": SECRETS_CONTEXT, "Effect": "Allow", "Resource": key_arn}

    # No other role (function, state machine, scheduler) holds any KMS action.
    assert _kms_statements(resources) == {
        "http_api": [statement("kms:Encrypt")],
        "worker": [statement("kms:Decrypt")],
    }


@pytest.mark.parametrize("name", NAMES)
def test_the_secrets_key_is_in_the_environment_of_http_and_worker_only(
    resources: Resources, name: str
) -> None:
    env = _function(resources, name)["Properties"]["Environment"]["Variables"]
    if name in ("http_api", "worker"):
        assert env[settings.ENV_SECRETS_KEY] == {"Fn::GetAtt": [_key(resources), "Arn"]}
    else:
        assert settings.ENV_SECRETS_KEY not in env


# --- routes ----------------------------------------------------------------------------


def test_file_upload_and_variable_routes(resources: Resources) -> None:
    (http_api,) = [
        name
        for name, body in of_type(resources, "AWS::ApiGatewayV2::Api").items()
        if body["Properties"]["ProtocolType"] == "HTTP"
    ]
    keys = {
        body["Properties"]["RouteKey"]
        for body in of_type(resources, "AWS::ApiGatewayV2::Route").values()
        if body["Properties"]["ApiId"] == {"Ref": http_api}
    }
    assert keys == {f"{method.value} {path}" for method, path in HTTP_ROUTES}
    assert keys >= {
        "GET /agents/{name}/{id}/files",
        "PUT /agents/{name}/{id}/files/{path+}",
        "GET /agents/{name}/{id}/files/{path+}",
        "DELETE /agents/{name}/{id}/files/{path+}",
        "POST /agents/{name}/{id}/uploads",
        "POST /agents/{name}/{id}/uploads/{upload_id}/complete",
        "GET /agents/{name}/{id}/variables",
        "PUT /agents/{name}/{id}/variables/{variable}",
        "DELETE /agents/{name}/{id}/variables/{variable}",
    }
