"""The HTTP API's catalog and console routes, a Powertools `Router` the HTTP Lambda
(`functions.http_api`) includes:

    GET /agents                              the agents whose route hook lets the caller through
    GET /agents/{name}                       an agent's description (tools, subagents, handoffs, ...)
    GET /agents/{name}/instances             its instances, latest admission first: ?limit=&cursor=
    GET /agents/{name}/{id}/submissions      an instance's submissions: ?after=&limit=
    GET /console/...                         the console's static files (`agent_runtime.console`)

The agent's routes run behind its `route` hook like every /agents route (`serve`, given
by the HTTP Lambda); ``GET /agents`` asks each agent's hook (`answer` runs it with no hook
of its own). The console's files are public: they hold no data, and the page calls the
public API with the credentials its user gives it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.api_gateway import Router
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel

from agent_runtime import console, endpoints_catalog
from agent_runtime.endpoints_catalog import Work
from agent_runtime.errors import NotFound
from agent_runtime.protocol_catalog import (
    AgentDescription,
    AgentsList,
    InstancesPage,
    InstancesQuery,
    SubmissionsPage,
    SubmissionsQuery,
)

#: Runs an endpoint behind the agent's route hook, with these path parameters.
Serve = Callable[..., Response[Any]]
#: Runs work that asks the hooks itself (no agent of its own).
Answer = Callable[[Work], Response[Any]]
#: Adds the error replies to a route's documented replies.
Responses = Callable[[dict[int, OpenAPIResponse]], dict[int, OpenAPIResponse]]

#: Query strings of these routes, for the OpenAPI document (parsed after the hook).
QUERIES: dict[tuple[str, str], type[BaseModel]] = {
    ("get", "/agents/{name}/instances"): InstancesQuery,
    ("get", "/agents/{name}/{id}/submissions"): SubmissionsQuery,
}

_NO_STORE = "no-store"


def _json(model: type[BaseModel], description: str) -> OpenAPIResponse:
    return {"description": description, "content": {"application/json": {"model": model}}}


def catalog_routes(*, serve: Serve, answer: Answer, responses: Responses) -> Router:
    router = Router()

    @router.get(
        "/agents",
        summary="List the agents the caller reaches (each agent's route hook decides)",
        responses=responses({200: _json(AgentsList, "The agents, by name")}),
    )
    def agents() -> Response[Any]:
        return answer(endpoints_catalog.agents)

    @router.get(
        "/agents/<name>",
        summary="Describe an agent: tools, subagents, handoffs, skills, variables (names only), policies",
        responses=responses({200: _json(AgentDescription, "The agent as defined")}),
    )
    def describe(name: str) -> Response[Any]:
        return serve(endpoints_catalog.describe, name=name)

    @router.get(
        "/agents/<name>/instances",
        summary="List an agent's instances, latest admission first",
        responses=responses({200: _json(InstancesPage, "One page of instances")}),
    )
    def instances(name: str) -> Response[Any]:
        return serve(endpoints_catalog.instances, name=name)

    @router.get(
        "/agents/<name>/<id>/submissions",
        summary="List an instance's submissions in admission order",
        responses=responses({200: _json(SubmissionsPage, "One page of submissions")}),
    )
    def submissions(name: str, id: str) -> Response[Any]:
        return serve(endpoints_catalog.submissions, name=name, id=id)

    @router.get("/console", include_in_schema=False)
    def console_root() -> Response[Any]:
        # Relative, so the page's own relative links resolve below /console/ on any stage.
        return Response(status_code=308, body="", headers={"location": "console/"})

    @router.get("/console/.*", include_in_schema=False)
    def console_file() -> Response[Any]:
        name = router.current_event.path.partition("/console/")[2] or "index.html"
        if name == "config.json":
            body: bytes | None = console.config()
            media_type = "application/json"
        else:
            body = console.asset(name)
            media_type = console.MEDIA_TYPES.get(name, "")
        if body is None:
            raise NotFound(f"no console file {name!r}")
        return Response(status_code=200, body=body, headers={"content-type": media_type, "cache-control": _NO_STORE})

    return router


__all__ = ["QUERIES", "catalog_routes"]
