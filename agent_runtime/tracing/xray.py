"""Spans to AWS X-Ray through its OTLP endpoint, signed with the function's credentials.

Why this path and not the ADOT Lambda layer: the layer wraps every handler in the
OpenTelemetry auto-instrumentation (a wrapper script, an SDK and instrumentations loaded
at every cold start, whether a request is traced or not) and runs a collector extension
beside the function. Here the SDK and the OTLP exporter load only in a process that has
``xray`` among its sinks, the spans are exactly the runtime's own, and what leaves the
function is one signed HTTPS request per invocation, sent before it returns
(`agent_runtime.tracing.flush`). X-Ray's endpoint takes W3C trace ids as they are, so the
SDK's random ids (and the submission spans' derived ones) need no X-Ray id generator.

The endpoint (``https://xray.{region}.amazonaws.com/v1/traces``) needs the account's
CloudWatch Transaction Search turned on, and the role ``xray:PutTraceSegments`` and
``xray:PutSpans``; the stack grants both when tracing is on (`infra.constructs.functions`).
"""

from __future__ import annotations

import os
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

ENDPOINT = "https://xray.{region}.amazonaws.com/v1/traces"


class _SigV4(requests.auth.AuthBase):
    """Signs each export with SigV4 for the ``xray`` service (credentials refreshed by
    botocore's session, so a long-lived container keeps working)."""

    def __init__(self, region: str) -> None:
        import botocore.session

        self.region = region
        credentials = botocore.session.get_session().get_credentials()
        if credentials is None:
            raise RuntimeError("tracing to X-Ray needs AWS credentials; none were found")
        self.credentials = credentials

    def __call__(self, request: Any) -> Any:
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(method=request.method, url=request.url, data=request.body, headers=dict(request.headers))
        SigV4Auth(self.credentials.get_frozen_credentials(), "xray", self.region).add_auth(signed)
        request.headers.update(dict(signed.headers))
        return request


def xray_exporter(region: str | None = None) -> OTLPSpanExporter:
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    session = requests.Session()
    session.auth = _SigV4(region)
    return OTLPSpanExporter(endpoint=ENDPOINT.format(region=region), session=session, timeout=5)


__all__ = ["ENDPOINT", "xray_exporter"]
