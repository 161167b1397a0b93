"""`hidden`: a working agent with no `route` hook, so the HTTP API must not expose it."""

from __future__ import annotations

from agent_runtime import create_agent

agent = create_agent(lambda ctx: dict(model="test/echo"))
