"""S3 blobs: spilled payloads, results and history parts, and instance files."""

from __future__ import annotations

from typing import Any

from agent_runtime.adapters.aws.offload import offload


class S3Blobs:
    """`BlobStore` over one bucket. The client is passed in, never made here."""

    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    async def put(self, key: str, data: bytes) -> None:
        await offload(self.client.put_object, Bucket=self.bucket, Key=key, Body=data)

    async def get(self, key: str) -> bytes:
        response = await offload(self.client.get_object, Bucket=self.bucket, Key=key)
        body: bytes = await offload(response["Body"].read)
        return body
