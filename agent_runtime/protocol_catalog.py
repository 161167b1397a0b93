"""Wire models of the catalog routes: the agents (`GET /agents`, `GET /agents/{name}`),
an agent's instances (`GET /agents/{name}/instances`) and an instance's submissions
(`GET /agents/{name}/{id}/submissions`). What the console and the SDK read to browse.

An agent's description is built from its definition as configured for a probe id (the
one the registry checks at import), never from an instance's `init(ctx)`; variables are
listed by name, never with a value.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.events import iso
from agent_runtime.ports import InstancePage as StoredInstancePage
from agent_runtime.protocol import Submission, Timestamp, _Query

#: ``<last activity, epoch seconds>~<instance id>``: `next_cursor` of an instances page.
INSTANCES_CURSOR_PATTERN = r"^\d{1,12}(\.\d{1,17})?~[A-Za-z0-9._~-]{1,79}$"


class InstancesQuery(_Query):
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = Field(None, pattern=INSTANCES_CURSOR_PATTERN, description="`next_cursor` of the previous page.")


class SubmissionsQuery(_Query):
    after: int = Field(-1, ge=-1, description="The last sequence already seen (`next` of the previous page).")
    limit: int = Field(50, ge=1, le=100)


class InstanceSummary(BaseModel):
    model_config = ConfigDict(defer_build=True)

    id: str
    last_activity: Timestamp = Field(description="The last admission or settle.")
    status: Literal["idle", "queued", "running", "waiting"]
    submissions: int = Field(description="Submissions admitted.")
    settled: int = Field(description="Submissions settled in order (those before the head).")


class InstancesPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    instances: list[InstanceSummary] = Field(description="Latest admission first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")

    @classmethod
    def from_page(cls, page: StoredInstancePage) -> InstancesPage:
        return cls(
            instances=[
                InstanceSummary(
                    id=s.instance.id,
                    last_activity=iso(s.last_activity) or "",
                    status=s.status,
                    submissions=s.submissions,
                    settled=s.settled,
                )
                for s in page.instances
            ],
            next_cursor=page.next_cursor,
        )


class SubmissionsPage(BaseModel):
    model_config = ConfigDict(defer_build=True)

    submissions: list[Submission] = Field(description="In admission order.")
    next: int | None = Field(description="Pass as `after` for the next page; null on the last one.")


class AgentListing(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    description: str | None


class AgentsList(BaseModel):
    model_config = ConfigDict(defer_build=True)

    agents: list[AgentListing] = Field(description="The agents this caller's credentials reach, by name.")


class ToolView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    description: str


class SubagentView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    agent: str = Field(description="The agent its children run as.")
    description: str
    blocking: bool
    resumable: bool


class HandoffView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    description: str | None


class SkillView(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    description: str


class DeclaredVariable(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    secret: bool
    required: bool
    description: str


class AgentDescription(BaseModel):
    model_config = ConfigDict(defer_build=True)

    name: str
    description: str | None
    model: str
    tools: list[ToolView]
    subagents: list[SubagentView]
    handoffs: list[HandoffView]
    skills: list[SkillView]
    variables: list[DeclaredVariable] = Field(description="Declared variables: names, never values.")
    concurrency: str = Field(description="What a prompt to a busy instance does.")
    max_turns: int
    retry: int = Field(description="Attempts per submission.")
    timeout: float = Field(description="Seconds a submission may take.")
    websocket: bool = Field(description="Whether the agent is reachable over the WebSocket API.")


__all__ = [
    "AgentDescription",
    "AgentListing",
    "AgentsList",
    "DeclaredVariable",
    "HandoffView",
    "InstanceSummary",
    "InstancesPage",
    "InstancesQuery",
    "SkillView",
    "SubagentView",
    "SubmissionsPage",
    "SubmissionsQuery",
    "ToolView",
]
