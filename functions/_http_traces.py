"""The trace route of the HTTP Lambda, as a Powertools router that `functions.http_api`
includes (it lends its `serve`, which runs an endpoint behind the agent's route hook,
and its OpenAPI reply shapes, so the route behaves and is documented like the others):

    GET /agents/{name}/{id}/submissions/{submission_id}/trace   the submission's spans; 404 without
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse

from agent_runtime import endpoints_traces
from agent_runtime.protocol_traces import Trace

Serve = Callable[..., Response[Any]]


def router(serve: Serve, responses: Callable[[dict[int, OpenAPIResponse]], dict[int, OpenAPIResponse]]) -> Router:
    routes = Router()
    ok: OpenAPIResponse = {
        "description": "The submission's spans and those below it (its children's too), by start time",
        "content": {"application/json": {"model": Trace}},
    }

    @routes.get(
        "/agents/<name>/<id>/submissions/<submission_id>/trace",
        summary="Read a submission's trace (404 trace_not_found where spans are not kept)",
        responses=responses({200: ok}),
    )
    def trace(name: str, id: str, submission_id: str) -> Response[Any]:
        return serve(endpoints_traces.trace, name=name, id=id, submission_id=submission_id)

    return routes


__all__ = ["router"]
