"""``load_skill``: the model loads a skill's instructions, or one of its files, on demand
(`agent_runtime.skills`). Its description lists every skill's name and description;
what it returns is bounded (`SKILL_TEXT_MAX`), saying so when cut."""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.builtins.task import validated
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec
from agent_runtime.skills import SKILL_TEXT_MAX, Skill

LOAD_SKILL = "load_skill"


class LoadArgs(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")

    name: str
    file: str | None = Field(None, description="One of the skill's files, instead of its instructions.")


class LoadSkill:
    silent = False

    def __init__(self, skills: Sequence[Skill]) -> None:
        self.skills = {s.name: s for s in skills}
        listing = "\n".join(f"- {s.name}: {s.description}" for s in skills)
        self.spec = ToolSpec(
            name=LOAD_SKILL,
            description=f"Load a skill's instructions (or one of its files) when the task needs it. Skills:\n{listing}",
            parameters={
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": list(self.skills)},
                    "file": {"type": "string", "description": "One of the skill's files, instead of its instructions."},
                },
                "required": ["name"],
                "additionalProperties": False,
            },
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(LoadArgs, call)
        if isinstance(args, Handled):
            return args
        found = self.skills.get(args.name)
        if found is None:
            return Handled(error_result(call, f"no skill {args.name!r} (skills: {', '.join(self.skills)})"))
        if args.file is None:
            files = f"\n\nFiles: {', '.join(found.files)} (load_skill with file= to read one)" if found.files else ""
            text = found.body + files
        else:
            try:
                text = found.read(args.file)
            except ValueError as exc:
                return Handled(error_result(call, str(exc)))
        if len(text) > SKILL_TEXT_MAX:
            text = text[:SKILL_TEXT_MAX] + f"\n[cut at {SKILL_TEXT_MAX} of {len(text)} characters]"
        return Handled(ToolResultPart(call_id=call.id, name=call.name, content=text))


class SkillsFamily(PlainFamily):
    def __init__(self, skills: Sequence[Skill]) -> None:
        self.load = LoadSkill(skills)

    def builtins(self) -> Sequence[Builtin]:
        return [self.load]
