"""Durable state: the instance table, the key of its secret variables, and the blob
bucket (with its access-log bucket).

The bucket's keys (see `agent_runtime.adapters.aws.s3_files` and ``dynamodb_items``)::

    instances/{agent}/{id}/files/{object id}   instance files' bytes    FILE_OBJECTS
    instances/{agent}/{id}/{name}/...          spilled attributes       (everything else)
    uploads/{agent}/{id}/{upload id}           presigned uploads' staging objects
"""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from agent_runtime import settings
from infra.config import StackConfig
from infra.constructs.common import removal_policy

#: Instance files' objects, as an IAM resource pattern. Agent names and instance ids hold
#: no "/", so the spilled attributes (``instances/{agent}/{id}/payloads/{hex}.json``,
#: ``journal/``, ``errors/``, ``tools/``) do not match, even for an instance called "files".
FILE_OBJECTS = "instances/*/*/files/*"
#: Staging objects of presigned uploads. An upload is completed within an hour of its URL
#: expiring (`agent_runtime.files.UPLOAD_COMPLETE_GRACE`), or never: S3 removes them after a day.
UPLOADS_PREFIX = "uploads/"
# Scratch space, expired after a day. The runtime writes nothing here today (upload staging
# is under UPLOADS_PREFIX); the rule stays for scratch objects an application may put.
TMP_PREFIX = "tmp/"


class Storage(Construct):
    """``table``: one row family per instance. ``secrets_key``: encrypts the table's secret
    variables. ``bucket``: files, spilled payloads, uploads."""

    def __init__(self, scope: Construct, construct_id: str, *, config: StackConfig) -> None:
        super().__init__(scope, construct_id)
        # With DESTROY, CloudFormation deletes the buckets only once they are empty.
        removal = removal_policy(config)
        prod = config.stage == "prod"
        # The ledger is the source of truth: production never deletes it with the stack.
        table_removal = RemovalPolicy.RETAIN if prod else removal

        self.table = dynamodb.Table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(
                name=settings.TABLE_PARTITION_KEY, type=dynamodb.AttributeType.STRING
            ),
            sort_key=dynamodb.Attribute(
                name=settings.TABLE_SORT_KEY, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=settings.TABLE_TTL_ATTRIBUTE,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            deletion_protection=prod,
            removal_policy=table_removal,
        )
        # Secret variables are ciphertexts in the table, readable only with this key: it
        # lives exactly as long as the table (a kept table with a deleted key would hold
        # secrets nobody can read). Deleting it is scheduled, not immediate (30 days).
        self.secrets_key = kms.Key(
            self,
            "SecretsKey",
            description="agent-runtime: encrypts instances' secret variables (in the instance table)",
            enable_key_rotation=True,
            removal_policy=table_removal,
        )
        number, string = dynamodb.AttributeType.NUMBER, dynamodb.AttributeType.STRING
        # Sparse, keys only: the META items of instances with unsettled work, by shard and
        # the time of their last progress (see agent_runtime.adapters.aws.dynamodb).
        self.table.add_global_secondary_index(
            index_name=settings.PENDING_INDEX,
            partition_key=dynamodb.Attribute(name=settings.PENDING_SHARD_ATTRIBUTE, type=number),
            sort_key=dynamodb.Attribute(name=settings.PENDING_SINCE_ATTRIBUTE, type=number),
            projection_type=dynamodb.ProjectionType.KEYS_ONLY,
        )
        # Sparse: every instance's META by agent name and last activity, for listings; it
        # projects what a listing shows (see agent_runtime.adapters.aws.dynamodb).
        self.table.add_global_secondary_index(
            index_name=settings.INSTANCES_INDEX,
            partition_key=dynamodb.Attribute(name=settings.INSTANCES_AGENT_ATTRIBUTE, type=string),
            sort_key=dynamodb.Attribute(name=settings.INSTANCES_ACTIVE_ATTRIBUTE, type=number),
            projection_type=dynamodb.ProjectionType.INCLUDE,
            non_key_attributes=list(settings.INSTANCES_INDEX_PROJECTED),
        )

        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            # Server access logs can only be delivered to SSE-S3 buckets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))],
            removal_policy=removal,
        )

        # Browsers PUT presigned uploads and may fetch presigned downloads (GET) from the
        # configured origins only; without origins, no CORS (downloads by link still work).
        cors = (
            [
                s3.CorsRule(
                    allowed_methods=[s3.HttpMethods.PUT, s3.HttpMethods.GET],
                    allowed_origins=list(config.cors_origins),
                    allowed_headers=["content-type", "content-md5", "x-amz-*"],
                    exposed_headers=["etag"],
                    max_age=3600,
                )
            ]
            if config.cors_origins
            else None
        )
        self.bucket = s3.Bucket(
            self,
            "Bucket",
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Objects are written once under keys the runtime chooses and never edited in
            # place; DynamoDB (with point-in-time recovery) holds the references to them.
            versioned=False,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="bucket/",
            cors=cors,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-uploads", prefix=UPLOADS_PREFIX, expiration=Duration.days(1)
                ),
                s3.LifecycleRule(id="expire-tmp", prefix=TMP_PREFIX, expiration=Duration.days(1)),
                s3.LifecycleRule(
                    id="abort-incomplete-uploads",
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                ),
            ],
            removal_policy=removal,
        )
