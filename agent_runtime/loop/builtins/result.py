"""`final_result`: the agent's result schema as a tool.

With `result=Model` the model must answer by calling `final_result` with arguments that
validate against the schema. A valid call ends the submission `completed` with the
validated data (after the turn's other results are recorded); an invalid one, or a text
answer, asks for a repair turn. The step machine bounds repairs (`MAX_RESULT_REPAIRS`).
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from agent_runtime.loop.builtins import Builtin, CallContext, Handled
from agent_runtime.messages import Message, ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolChoice, ToolSpec
from agent_runtime.tools import format_validation_error

FINAL_RESULT_TOOL = "final_result"


class FinalResult:
    silent = True

    def __init__(self, schema: type[BaseModel]) -> None:
        self.schema = schema
        self.spec = ToolSpec(
            name=FINAL_RESULT_TOOL,
            description="Give the final result. Call this exactly once, when the answer is complete.",
            parameters=schema.model_json_schema(),
        )

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        try:
            value = self.schema.model_validate(call.arguments)
        except ValidationError as exc:
            content = format_validation_error(exc) + ". Fix the arguments and call final_result again."
            part = ToolResultPart(call_id=call.id, name=call.name, content=content, is_error=True, status="error")
            return Handled(part, repair=True)
        part = ToolResultPart(call_id=call.id, name=call.name, content="result accepted")
        return Handled(part, data=value.model_dump(mode="json"))

    def replayed(self, call: ToolCallPart, part: ToolResultPart) -> Handled:
        """A result accepted before a crash ends the submission again, with the same data."""
        if part.is_error:
            return Handled(part, repair=True)
        return Handled(part, data=self.schema.model_validate(call.arguments).model_dump(mode="json"))


class ResultFamily:
    def __init__(self, schema: type[BaseModel]) -> None:
        self.final = FinalResult(schema)

    def builtins(self) -> Sequence[Builtin]:
        return [self.final]

    def text_answer(self, message: Message) -> str | None:
        return "Answer by calling the final_result tool with arguments matching its schema."

    def tool_choice(self, choice: ToolChoice) -> ToolChoice:
        return "required"
