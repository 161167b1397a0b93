"""Finished spans kept in the instance table, for the trace route (the ``table`` sink).

Items (same table as `adapters.aws.dynamodb`), one partition per trace, so a
submission's trace, its children's spans included, is one query:

    pk = "T#{trace_id:032x}"
    sk = "S#{start_ns:020d}#{span_id:016x}"     span: JSON (`SpanView` without the trace
                                                id), expires_at (TTL)

Spans are written as they end, one item each; a span written twice (an export retried)
overwrites itself. The local stack turns this sink on; deployed, spans go to X-Ray and
this sink is off unless ``AGENT_RUNTIME_TRACING`` names it too.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from agent_runtime.adapters.aws.offload import offload
from agent_runtime.tracing.spans import SpanView


def _trace_key(trace_id: str) -> str:
    return f"T#{trace_id}"


def span_view(span: ReadableSpan) -> SpanView:
    context = span.get_span_context()
    assert context is not None
    return SpanView(
        trace_id=f"{context.trace_id:032x}",
        span_id=f"{context.span_id:016x}",
        parent_span_id=f"{span.parent.span_id:016x}" if span.parent is not None else None,
        name=span.name,
        start=(span.start_time or 0) / 1e9,
        end=(span.end_time or span.start_time or 0) / 1e9,
        attributes={k: list(v) if isinstance(v, tuple) else v for k, v in (span.attributes or {}).items()},
    )


class DynamoDBSpans:
    """Writes finished spans (`exporter`) and reads a trace's spans back (`trace`)."""

    def __init__(self, client: Any, table: str, *, ttl_seconds: float) -> None:
        self.client = client
        self.table = table
        self.ttl_seconds = ttl_seconds

    def exporter(self) -> SpanExporter:
        return _Exporter(self)

    def put(self, views: Sequence[SpanView]) -> None:
        """Write finished spans, 25 to a BatchWriteItem (the exporter's thread calls this)."""
        expires = str(int(time.time() + self.ttl_seconds))
        requests = []
        for view in views:
            data = {k: v for k, v in view.__dict__.items() if k != "trace_id"}
            item = {
                "pk": {"S": _trace_key(view.trace_id)},
                "sk": {"S": f"S#{int(view.start * 1e9):020d}#{view.span_id}"},
                "span": {"S": json.dumps(data, separators=(",", ":"), default=str)},
                "expires_at": {"N": expires},
            }
            requests.append({"PutRequest": {"Item": item}})
        for start in range(0, len(requests), 25):
            pending: dict[str, Any] = {self.table: requests[start : start + 25]}
            for _ in range(5):
                pending = self.client.batch_write_item(RequestItems=pending).get("UnprocessedItems") or {}
                if not pending:
                    break

    async def trace(self, trace_id: str) -> list[SpanView]:
        """The trace's spans, by start time."""
        views: list[SpanView] = []
        query: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": _trace_key(trace_id)}},
        }
        while True:
            page = await offload(self.client.query, **query)
            for item in page.get("Items", []):
                views.append(SpanView(trace_id=trace_id, **json.loads(item["span"]["S"])))
            if "LastEvaluatedKey" not in page:
                return views
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


class _Exporter(SpanExporter):
    def __init__(self, store: DynamoDBSpans) -> None:
        self.store = store

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.put([span_view(s) for s in spans])
        except Exception:  # a lost span must not fail the run it describes
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


__all__ = ["DynamoDBSpans", "span_view"]
