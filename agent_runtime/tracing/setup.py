"""Making the tracing: an SDK tracer provider with the configured sinks.

``AGENT_RUNTIME_TRACING`` names the sinks, comma-separated:

- ``table``: finished spans go to the instance table (`DynamoDBSpans`) in batches, with a TTL, where
  the trace route (``GET .../submissions/{id}/trace``) reads them. The local stack sets
  it: its handlers run in processes of their own, and the table is what they share.
- ``xray``: spans go to AWS X-Ray's OTLP endpoint, signed with the function's role
  (`agent_runtime.tracing.xray`), in batches exported before each invocation returns.

The provider is this module's own, not OpenTelemetry's global one: configuring it twice
(tests, the local stack) is allowed, and an application's provider stays untouched.
The SDK is imported here only, so a process with tracing off never loads it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from agent_runtime import settings
from agent_runtime.tracing.spans import PresetIds, SpanReader, Tracing


def build(processors: Sequence[SpanProcessor], *, reader: SpanReader | None = None) -> Tracing:
    """A `Tracing` whose spans go through `processors` (tests pass an in-memory exporter's)."""
    ids = PresetIds(RandomIdGenerator())
    resource = Resource.create(
        {
            "service.name": os.environ.get("POWERTOOLS_SERVICE_NAME", settings.SERVICE_NAME),
            "cloud.provider": "aws",
            "faas.name": os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local"),
        }
    )
    provider = TracerProvider(resource=resource, id_generator=ids)  # type: ignore[arg-type]
    for processor in processors:
        provider.add_span_processor(processor)
    tracer = provider.get_tracer("agent_runtime")
    return Tracing(tracer, ids, flush=provider.force_flush, reader=reader)


def with_exporter(exporter: SpanExporter, *, reader: SpanReader | None = None) -> Tracing:
    """Each span exported as it ends (tests)."""
    return build([SimpleSpanProcessor(exporter)], reader=reader)


def from_environment(sinks: frozenset[str]) -> Tracing:
    processors: list[SpanProcessor] = []
    reader: Any = None
    if "table" in sinks:
        from agent_runtime.adapters.aws.bootstrap import clients
        from agent_runtime.adapters.aws.dynamodb_spans import DynamoDBSpans

        store = DynamoDBSpans(clients().dynamodb, os.environ[settings.ENV_TABLE], ttl_seconds=settings.TRACE_TTL_SECONDS)
        # In batches from the SDK's export thread (never on the event loop), at the latest
        # when the invocation ends (`tracing.flush`): one BatchWriteItem per 25 spans.
        processors.append(BatchSpanProcessor(store.exporter()))
        reader = store
    if "xray" in sinks:
        from agent_runtime.tracing.xray import xray_exporter

        processors.append(BatchSpanProcessor(xray_exporter()))
    return build(processors, reader=reader)


__all__ = ["build", "from_environment", "with_exporter"]
