"""Definition-time errors name the field; tools get schemas and validation; discovery."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from agent_runtime import AgentContext, ToolContext, create_agent, define_agent_profile, tool
from agent_runtime.errors import DefinitionError, InvalidInput, ToolDefinitionError
from agent_runtime.registry import discover


@tool
def lookup(order_id: str) -> str:
    """Find an order.

    Args:
        order_id: the order number
    """
    return order_id


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"model": "test/echo", "colour": "red"}, "colour"),
        ({"model": "nonsense"}, "model"),
        ({"model": "nope/x"}, "model"),
        ({"model": "test/unknown"}, "model"),
        ({}, "model"),
        ({"model": "test/echo", "tools": [lookup, lookup]}, "tools"),
        ({"model": "test/echo", "tools": [tool(name="task")(lambda: 1)]}, "tools"),
        ({"model": "test/echo", "tools": [tool(name="transfer_to_x")(lambda: 1)]}, "tools"),
        ({"model": "test/echo", "tool_choice": "sometimes"}, "tool_choice"),
        ({"model": "test/echo", "max_turns": 0}, "max_turns"),
        ({"model": "test/echo", "result": dict}, "result"),
        ({"model": "test/echo", "durability": {"retry": 0}}, "durability.retry"),
        ({"model": "test/echo", "durability": {"retries": 3}}, "durability.retries"),
        ({"model": "test/echo", "subagents": ["researcher"]}, "subagents"),
        ({"model": "test/echo", "instructions": 42}, "instructions"),
    ],
)
def test_definition_errors_name_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(DefinitionError) as info:
        create_agent(lambda ctx: config)
    assert info.value.field == field
    assert field in str(info.value)


def test_init_gets_the_context_and_profile_fields_are_overridable() -> None:
    class Answer(BaseModel):
        text: str

    researcher = define_agent_profile(
        name="researcher", description="Finds things.", instructions="Research.", model="test/echo", max_turns=3
    )
    agent = create_agent(lambda ctx: dict(profile=researcher, instructions=f"Ticket {ctx.id}", result=Answer))
    config = agent.configure(AgentContext(id="T-9", env={}))
    assert config.render_instructions(AgentContext(id="T-9")) == "Ticket T-9"
    assert config.max_turns == 3 and config.model == "test/echo" and config.result is Answer


def test_profile_errors() -> None:
    with pytest.raises(DefinitionError) as info:
        define_agent_profile(name="Bad Name", description="x")
    assert info.value.field == "name"
    with pytest.raises(DefinitionError) as info:
        define_agent_profile(name="ok", description="")
    assert info.value.field == "description"


def test_tool_schema_hides_the_context_and_reads_docstrings() -> None:
    @tool(idempotent=True)
    async def note(text: str, ctx: ToolContext, urgent: bool = False) -> str:
        """Keep a note.

        Args:
            text: what to keep
        """
        return text

    spec = note.spec
    assert spec.description == "Keep a note."
    assert set(spec.parameters["properties"]) == {"text", "urgent"}
    assert spec.parameters["properties"]["text"]["description"] == "what to keep"
    assert spec.parameters["required"] == ["text"] and note.idempotent
    with pytest.raises(ToolDefinitionError):
        tool(name="has space")(lambda: 1)


def test_discover_names_modules_and_records_hooks(tmp_path: Path) -> None:
    folder = tmp_path / "my_agents"
    folder.mkdir()
    (folder / "support_desk.py").write_text(
        "from agent_runtime import create_agent\n"
        "agent = create_agent(model='test/echo')\n"
        "async def route(req, call_next):\n    return await call_next()\n"
    )
    (folder / "_helpers.py").write_text("x = 1\n")
    registry = discover(folder)
    assert registry.names() == ["support-desk"]
    assert registry.get("support-desk").route is not None
    assert registry.get("support-desk").websocket is None


def test_discover_refuses_bad_names(tmp_path: Path) -> None:
    (tmp_path / "Bad.py").write_text("from agent_runtime import create_agent\nagent = create_agent(model='test/echo')\n")
    with pytest.raises(InvalidInput):
        discover(tmp_path)
