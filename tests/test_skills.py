"""Skills: discovery of SKILL.md folders, `load_skill` for the instructions and for a file
(on both adapters), and definition errors for bad frontmatter and duplicates."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.errors import DefinitionError
from agent_runtime.ids import InstanceRef
from agent_runtime.messages import ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.skills import skill, skills_in
from agent_runtime.testing.backends import Backend
from tests.served import Served


def make(root: Path, name: str, frontmatter: str, body: str = "Do it well.", files: dict[str, str] | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "SKILL.md").write_text(f"---\n{frontmatter}\n---\n{body}\n")
    for file, text in (files or {}).items():
        (folder / file).parent.mkdir(parents=True, exist_ok=True)
        (folder / file).write_text(text)
    return folder


def test_skills_are_discovered_and_checked(tmp_path: Path) -> None:
    make(tmp_path, "review", "name: review-checklist\ndescription: 'How to review a pull request.'", files={"examples.md": "ex", "more/a.txt": "a"})
    make(tmp_path, "tone", "name: tone\ndescription: Write politely.")
    (tmp_path / "not-a-skill").mkdir()
    found = skills_in(tmp_path)
    assert [(s.name, s.description) for s in found] == [("review-checklist", "How to review a pull request."), ("tone", "Write politely.")]
    assert found[0].files == ("examples.md", "more/a.txt") and found[0].body == "Do it well."
    bad = tmp_path / "bad"
    cases = {
        "nofront": ("", "must start with a --- frontmatter"),
        "noname": ("description: x", "name must match"),
        "badname": ("name: Bad Name\ndescription: x", "name must match"),
        "nodesc": ("name: ok", "a description is required"),
        "noline": ("name: ok\njust words", "is not 'key: value'"),
    }
    for folder, (front, message) in cases.items():
        path = bad / folder
        path.mkdir(parents=True)
        (path / "SKILL.md").write_text(f"---\n{front}\n---\nbody" if front else "no frontmatter")
        with pytest.raises(DefinitionError, match=message):
            skill(path)
    make(tmp_path / "dup", "one", "name: same\ndescription: x")
    make(tmp_path / "dup", "two", "name: same\ndescription: y")
    with pytest.raises(DefinitionError, match="duplicate skill name"):
        create_agent(model="test/echo", skills=str(tmp_path / "dup"))
    with pytest.raises(DefinitionError, match="does not exist"):
        create_agent(model="test/echo", skills=str(tmp_path / "nowhere"))


def test_load_skill_on_demand(tmp_path: Path, backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    make(tmp_path, "review", "name: review-checklist\ndescription: How to review a pull request.", body="1. Read it.", files={"examples.md": "Example review."})
    script = [
        ToolCall("load_skill", {"name": "review-checklist"}, id="l-1"),
        ToolCall("load_skill", {"name": "review-checklist", "file": "examples.md"}, id="l-2"),
        ToolCall("load_skill", {"name": "review-checklist", "file": "../../etc/passwd"}, id="l-3"),
    ]
    seen: list[ToolResultPart] = []
    offered: list[str] = []

    def model(request: ModelRequest) -> str | ToolCall:
        offered.extend(t.description for t in request.tools if t.name == "load_skill")
        seen.extend(p for p in request.messages[-1].parts if isinstance(p, ToolResultPart))
        return script.pop(0) if script else "reviewed"

    registry = Registry()
    registry.add("reviewer", create_agent(model=FunctionModel(model), skills=[skill(tmp_path / "review")]))
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    admitted = asyncio.run(runtime.prompt("reviewer", "R-1", "review PR 7"))
    served.until(served.settled(InstanceRef("reviewer", "R-1"), admitted.record.id))
    assert "- review-checklist: How to review a pull request." in offered[0]
    assert seen[0].content == "1. Read it.\n\nFiles: examples.md (load_skill with file= to read one)"
    assert seen[1].content == "Example review."
    assert seen[2].is_error and "has no file '../../etc/passwd'" in seen[2].content


def test_the_example_skill_ships_with_the_support_assistant() -> None:
    from agent_runtime.definition import AgentContext
    from agent_runtime.registry import discover

    config = discover("agents").get("support-assistant").definition.configure(AgentContext(id="t"))
    assert [s.name for s in config.skills] == ["refund-policy"] and config.skills[0].files == ("replies.md",)
