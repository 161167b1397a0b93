"""The effect routes' work, once the agent's `route` hook lets a request through, and
their wire models:

    GET    /agents/{name}/{id}/effects               ?status=scheduled|fired|cancelled
    DELETE /agents/{name}/{id}/effects/{effect_id}   200 cancelled; 409 fired or cancelled; 404
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from agent_runtime.effects import EffectRecord
from agent_runtime.events import iso
from agent_runtime.protocol import Timestamp, _Query, parse_query
from agent_runtime.routing import RouteRequest, RouteResponse, json_response
from agent_runtime.service import Service


class EffectView(BaseModel):
    id: str
    name: str
    args: dict[str, Any]
    session: str
    status: Literal["scheduled", "fired", "cancelled"]
    due_at: Timestamp
    created_at: Timestamp
    scheduled_by: str | None = Field(None, description="The submission that scheduled it.")
    submission_id: str | None = Field(None, description="The submission it became when it fired.")
    fired_at: Timestamp | None = None
    cancelled_at: Timestamp | None = None

    @classmethod
    def of(cls, record: EffectRecord) -> EffectView:
        return cls(
            **{
                **record.view(),
                "due_at": iso(record.due_at),
                "created_at": iso(record.created_at),
                "fired_at": iso(record.fired_at),
                "cancelled_at": iso(record.cancelled_at),
            }
        )


class EffectsList(BaseModel):
    effects: list[EffectView] = Field(description="Soonest due first.")


class EffectsQuery(_Query):
    status: Literal["scheduled", "fired", "cancelled"] | None = None


async def list_effects(service: Service, req: RouteRequest) -> RouteResponse:
    query = parse_query(EffectsQuery, req.query)
    found = await service.list_effects(req.params["name"], req.params["id"], status=query.status)
    return json_response(EffectsList(effects=[EffectView.of(r) for r in found]))


async def cancel_effect(service: Service, req: RouteRequest) -> RouteResponse:
    record = await service.cancel_effect(req.params["name"], req.params["id"], req.params["effect_id"])
    return json_response(EffectView.of(record))


__all__ = ["EffectView", "EffectsList", "EffectsQuery", "cancel_effect", "list_effects"]
