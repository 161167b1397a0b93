"""What the catalog routes do: the agents a caller reaches, one agent's description, its
instances, and an instance's submissions (wire models in `agent_runtime.protocol_catalog`).

The routes of one agent run behind its `route` hook through `endpoints.serve` (the hook
sees ``params`` with ``name`` and, for an instance's routes, ``id``). `GET /agents` has no
agent of its own: it asks every exposed agent's hook, and lists the agents whose hook
lets the request through, so a caller never learns of an agent its credentials do not
reach.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Coroutine
from types import MappingProxyType
from typing import Any

from agent_runtime.children import agent_name_of
from agent_runtime.handoffs import targets
from agent_runtime.ids import validate_agent_name
from agent_runtime.protocol import Submission, parse_query
from agent_runtime.protocol_catalog import (
    AgentDescription,
    AgentListing,
    AgentsList,
    DeclaredVariable,
    HandoffView,
    InstancesPage,
    InstancesQuery,
    SkillView,
    SubagentView,
    SubmissionsPage,
    SubmissionsQuery,
    ToolView,
)
from agent_runtime.routing import RouteRequest, RouteResponse, handle, json_response
from agent_runtime.service import Service

log = logging.getLogger("agent_runtime")

#: Work that asks the agents' hooks itself, given the service.
Work = Callable[[Service, RouteRequest], Coroutine[Any, Any, RouteResponse]]

#: Named among an agent's tools when it offers the built-in file tools.
FILE_TOOL_DESCRIPTION = "Built-in file tool over the instance's files."


async def agents(service: Service, req: RouteRequest) -> RouteResponse:
    listed: list[AgentListing] = []
    for entry in sorted(service.registry, key=lambda e: e.name):
        if entry.route is None:
            continue
        let_through = False

        async def noted(_: RouteRequest) -> RouteResponse:
            nonlocal let_through
            let_through = True
            return json_response({})

        asked = dataclasses.replace(req, params=MappingProxyType({"name": entry.name}))
        try:
            await handle(entry.route, asked, noted)
        except Exception:  # one failing hook hides its agent, not the others
            log.warning("a route hook failed while listing agents", extra={"agent": entry.name}, exc_info=True)
            continue
        if let_through:
            listed.append(AgentListing(name=entry.name, description=service.probe(entry.name).description))
    return json_response(AgentsList(agents=listed))


async def describe(service: Service, req: RouteRequest) -> RouteResponse:
    name = validate_agent_name(req.params["name"])
    entry = service.registry.get(name)
    config = service.probe(name)
    tools = [ToolView(name=t.name, description=t.description) for t in config.tools]
    tools += [ToolView(name=t, description=FILE_TOOL_DESCRIPTION) for t in config.file_tools]
    return json_response(
        AgentDescription(
            name=name,
            description=config.description,
            model=config.model_name,
            tools=tools,
            subagents=[
                SubagentView(
                    name=s.name,
                    agent=agent_name_of(s.name),
                    description=s.profile.description,
                    blocking=s.blocking,
                    resumable=s.resumable is not None,
                )
                for s in config.subagents
            ],
            handoffs=[HandoffView(name=p.name, description=p.handoff_description or p.description) for p in targets(config.handoffs)],
            skills=[SkillView(name=s.name, description=s.description) for s in config.skills],
            variables=[
                DeclaredVariable(name=v.name, secret=v.secret, required=v.required, description=v.description)
                for v in config.variables
            ],
            concurrency=str(config.concurrency),
            max_turns=config.max_turns,
            retry=config.durability.retry,
            timeout=config.durability.timeout,
            websocket=entry.websocket is not None,
        )
    )


async def instances(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(InstancesQuery, req.query)
    name = validate_agent_name(req.params["name"])
    page = await service.stores.ledger.instances(name, now=service.clock(), limit=query.limit, cursor=query.cursor)
    return json_response(InstancesPage.from_page(page))


async def submissions(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(SubmissionsQuery, req.query)
    instance = service.instance(req.params["name"], req.params["id"])
    found = await service.stores.ledger.list_submissions(instance, after=query.after, limit=query.limit + 1)
    page = found[: query.limit]
    return json_response(
        SubmissionsPage(
            submissions=[Submission.from_record(r) for r in page],
            next=page[-1].sequence if len(found) > query.limit else None,
        )
    )


__all__ = ["Work", "agents", "describe", "instances", "submissions"]
