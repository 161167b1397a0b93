"""The trace route's work, once the agent's `route` hook lets the request through.

The spans come from where the ``table`` sink keeps them (`agent_runtime.tracing.reader`):
the local stack turns it on; a deployment that sends spans only to X-Ray keeps none here
and answers 404, as for a submission that has no span yet.
"""

from __future__ import annotations

from agent_runtime import tracing
from agent_runtime.errors import TraceNotFound
from agent_runtime.protocol_traces import Trace, TraceSpan
from agent_runtime.routing import RouteRequest, RouteResponse, json_response
from agent_runtime.service import Service


async def trace(service: Service, req: RouteRequest) -> RouteResponse:
    name, instance_id, submission_id = req.params["name"], req.params["id"], req.params["submission_id"]
    record = await service.submission(name, instance_id, submission_id)  # 404 for an unknown one
    reader = tracing.reader()
    if reader is not None:
        from agent_runtime.tracing.spans import submission_spans

        trace_id, views = await submission_spans(reader, record)
        if views:
            spans = [TraceSpan(**{k: v for k, v in view.__dict__.items() if k != "trace_id"}) for view in views]
            return json_response(Trace(trace_id=trace_id, spans=spans))
    raise TraceNotFound(f"no trace of submission {submission_id!r}", details={"submission_id": submission_id})


__all__ = ["trace"]
