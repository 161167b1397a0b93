"""Wire models of the effect routes (`agent_runtime.endpoints_effects`)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.effects import EffectRecord
from agent_runtime.events import iso
from agent_runtime.protocol import Timestamp, _Query


class EffectView(BaseModel):
    model_config = ConfigDict(defer_build=True)

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
    model_config = ConfigDict(defer_build=True)

    effects: list[EffectView] = Field(description="Soonest due first.")


class EffectsQuery(_Query):
    status: Literal["scheduled", "fired", "cancelled"] | None = None


__all__ = ["EffectView", "EffectsList", "EffectsQuery"]
