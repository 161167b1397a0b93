"""The turn loop: the durable step machine (`attempt`), its steps (`steps`), the
built-in tools behind one router (`builtins`), the application's tools (`tools`) and
the one place a submission settles (`settle`)."""

from agent_runtime.loop.attempt import MAX_RESULT_REPAIRS, Attempt, Checkpoint
from agent_runtime.loop.builtins import Builtin, CallContext, Family, Handled, Router
from agent_runtime.loop.inputs import input_message
from agent_runtime.loop.settle import Settlement, settle
from agent_runtime.loop.steps import Finish, Suspend, Yield

__all__ = [
    "MAX_RESULT_REPAIRS",
    "Attempt",
    "Builtin",
    "CallContext",
    "Checkpoint",
    "Family",
    "Finish",
    "Handled",
    "Router",
    "Settlement",
    "Suspend",
    "Yield",
    "input_message",
    "settle",
]
