"""The effect routes' work, once the agent's `route` hook lets a request through (wire
models in `agent_runtime.protocol_effects`):

    GET    /agents/{name}/{id}/effects               ?status=scheduled|fired|cancelled
    DELETE /agents/{name}/{id}/effects/{effect_id}   200 cancelled; 409 fired or cancelled; 404
"""

from __future__ import annotations

from agent_runtime.protocol import parse_query
from agent_runtime.protocol_effects import EffectsList, EffectsQuery, EffectView
from agent_runtime.routing import RouteRequest, RouteResponse, json_response
from agent_runtime.service import Service


async def list_effects(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(EffectsQuery, req.query)
    found = await service.list_effects(req.params["name"], req.params["id"], status=query.status)
    return json_response(EffectsList(effects=[EffectView.of(r) for r in found]))


async def cancel_effect(service: Service, req: RouteRequest) -> RouteResponse:
    record = await service.cancel_effect(req.params["name"], req.params["id"], req.params["effect_id"])
    return json_response(EffectView.of(record))


__all__ = ["cancel_effect", "list_effects"]
