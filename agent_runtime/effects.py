"""Effects: named functions of an agent that run later, durably (Cloudflare's `schedule`,
Standard Agents' effects).

    @effect
    async def follow_up(ctx, ticket: str, note: str = "") -> str:
        \"\"\"Remind the agent to check on a ticket.\"\"\"
        await ctx.session.prompt(f"Follow up on {ticket}: {note}")
        return "reminded"

    # from a tool, a hook, on_dispatch or another effect:
    effect_id = await ctx.schedule("follow_up", {"ticket": "T-42"}, delay=24 * 3600)

An effect is declared with `effect` (a module-level ``@effect`` in the agent's module, or
``effects=[...]`` in its definition); its first parameter is the context, the others are
its arguments, validated when it is scheduled (a mistake fails the caller at once) and
again when it runs. A scheduled effect is an `EffectRecord` in the instance's store and a
one-time timer (`Timers`): EventBridge Scheduler deployed, the local stack's own firing
locally, a list in memory for tests. When the timer fires, the effect becomes a
submission of kind ``effect`` in the instance's FIFO (deduplicated by effect id: a timer
that fires twice runs the effect once) that runs the function with the context
`on_dispatch` has; what it returns is that submission's result.

States: ``scheduled`` -> ``fired`` (its submission admitted) or ``cancelled``. Cancelling
one that fired (or was cancelled) raises `EffectNotPending` (409); an unknown id,
`EffectNotFound` (404).

Effect ids are derived from where `schedule` was called (the submission, the tool call or
the handler step, and how many effects it scheduled before), so a tool or handler run
again after a crash schedules the same effect again, not a second one.
"""

from __future__ import annotations

import base64
import hashlib
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, get_type_hints, overload

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic.fields import FieldInfo

from agent_runtime.errors import Conflict, DefinitionError, InvalidInput, NotFound, UserError
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import canonical_json

EFFECT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")
EFFECT_ID = re.compile(r"^eff-[a-z2-7]{26}$")
#: The longest delay, as EventBridge Scheduler's one-time schedules allow far more.
MAX_DELAY_SECONDS = 366 * 24 * 3600
#: Arguments are kept in the instance's store, not in the timer: JSON of at most this size.
ARGS_MAX_CHARS = 32_000
#: Effects one instance may have scheduled (not yet fired) at once.
MAX_SCHEDULED = 1000

Status = Literal["scheduled", "fired", "cancelled"]


class EffectNotFound(NotFound):
    type = "effect_not_found"


class UnknownEffect(UserError):
    """A fired effect names a function the agent no longer has: fails its submission at once."""

    type = "unknown_effect"


class EffectNotPending(Conflict):
    """The effect already fired or was cancelled (``details["status"]`` says which)."""

    type = "effect_not_pending"


@dataclass(frozen=True)
class Effect:
    """A function an agent may schedule: ``fn(ctx, **args)``."""

    name: str
    function: Callable[..., Any]
    arguments_model: type[BaseModel]
    description: str = ""

    def validate(self, args: Any) -> dict[str, Any]:
        """The arguments as the function takes them; `InvalidInput` naming what is wrong."""
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise InvalidInput(f"effect {self.name!r}: args must be a JSON object", details={"field": "args"})
        try:
            model = self.arguments_model.model_validate(args)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'args'}: {e['msg']}" for e in exc.errors())
            raise InvalidInput(f"effect {self.name!r}: {problems}", details={"field": "args"}) from None
        return {name: getattr(model, name) for name in type(model).model_fields}


@overload
def effect(fn: Callable[..., Any], /) -> Effect: ...
@overload
def effect(*, name: str | None = None) -> Callable[[Callable[..., Any]], Effect]: ...
def effect(fn: Callable[..., Any] | None = None, /, *, name: str | None = None) -> Any:
    """Declare an effect: ``@effect`` or ``@effect(name="...")`` on ``fn(ctx, **args)``."""
    if fn is None:
        return lambda f: _build(f, name)
    return _build(fn, name)


def _build(fn: Callable[..., Any], name: str | None) -> Effect:
    effect_name = str(name or getattr(fn, "__name__", ""))
    if not EFFECT_NAME.match(effect_name):
        raise DefinitionError("effects", f"effect name {effect_name!r} must match {EFFECT_NAME.pattern}")
    params = list(inspect.signature(fn).parameters.values())
    if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
        raise DefinitionError("effects", f"effect {effect_name!r}: the first parameter is the context: fn(ctx, ...)")
    hints = _argument_hints(fn, effect_name, params[1:])
    fields: dict[str, Any] = {}
    for param in params[1:]:
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise DefinitionError("effects", f"effect {effect_name!r}: *args and **kwargs are not supported")
        annotation = hints.get(param.name, Any)
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, FieldInfo(default=default))
    model = create_model(  # type: ignore[call-overload]
        f"{effect_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
    )
    doc = inspect.getdoc(fn) or ""
    return Effect(name=effect_name, function=fn, arguments_model=model, description=doc.split("\n\n")[0])


def _argument_hints(fn: Callable[..., Any], name: str, params: list[inspect.Parameter]) -> dict[str, Any]:
    """The arguments' types, resolved in the function's module (the context's annotation
    is left alone: it may be imported for type checking only)."""
    annotations = {p.name: p.annotation for p in params if p.annotation is not inspect.Parameter.empty}
    holder = type("_Arguments", (), {"__annotations__": annotations, "__module__": getattr(fn, "__module__", None)})
    try:
        return get_type_hints(holder, globalns=getattr(fn, "__globals__", None))
    except Exception as exc:
        raise DefinitionError("effects", f"effect {name!r}: cannot resolve type hints: {exc}") from exc


def check_effects(value: Any) -> tuple[Effect, ...]:
    """The ``effects=`` field: a list of `Effect` with distinct names."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple) or not all(isinstance(e, Effect) for e in value):
        raise DefinitionError("effects", "expected a list of @effect functions")
    names = [e.name for e in value]
    if len(set(names)) != len(names):
        raise DefinitionError("effects", f"effect names must be distinct: {names}")
    return tuple(value)


def effect_handler(effects: tuple[Effect, ...], payload: Any) -> Callable[[Any], Any]:
    """What an ``effect`` submission runs: its function with its stored arguments."""
    name = payload.get("effect") if isinstance(payload, dict) else None
    found = next((e for e in effects if e.name == name), None)
    if found is None:
        known = ", ".join(e.name for e in effects) or "none"
        raise UnknownEffect(f"effect {name!r} is not one of this agent's effects ({known})")
    try:
        args = found.validate(payload.get("args"))
    except InvalidInput as exc:
        raise UnknownEffect(f"effect {name!r} cannot take its stored arguments: {exc.message}") from None
    return lambda ctx: found.function(ctx, **args)


def with_module_effects(config: Any, module_effects: tuple[Effect, ...]) -> Any:
    """`config` (an `AgentConfig`) with its module's ``@effect`` functions added."""
    if not module_effects:
        return config
    return replace(config, effects=check_effects([*module_effects, *config.effects]))


# --- what is stored ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EffectRecord:
    """A scheduled effect as the instance's store keeps it."""

    id: str
    name: str
    args: dict[str, Any]
    session: str
    due_at: float
    created_at: float
    status: Status = "scheduled"
    #: The submission that scheduled it, and the one it became when it fired.
    scheduled_by: str | None = None
    submission_id: str | None = None
    fired_at: float | None = None
    cancelled_at: float | None = None

    def view(self) -> dict[str, Any]:
        """What the HTTP API and the console show; also what the stores keep."""
        return asdict(self)

    @classmethod
    def of(cls, data: dict[str, Any]) -> EffectRecord:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class EffectStore(Protocol):
    """Scheduled effects per instance. `add` keeps the first record of an id (a second
    `add` of the same id returns it); `transition` moves one state to another atomically
    (`EffectNotPending` when it is not in `source`, `EffectNotFound` when unknown)."""

    async def add(self, instance: InstanceRef, record: EffectRecord) -> EffectRecord: ...

    async def get(self, instance: InstanceRef, effect_id: str) -> EffectRecord | None: ...

    async def list(
        self, instance: InstanceRef, *, status: Status | None = None, limit: int = MAX_SCHEDULED
    ) -> list[EffectRecord]:
        """Oldest due first."""
        ...

    async def transition(
        self,
        instance: InstanceRef,
        effect_id: str,
        *,
        source: tuple[Status, ...],
        target: Status,
        now: float,
        submission_id: str | None = None,
    ) -> EffectRecord: ...


class Timers(Protocol):
    """One-time timers that fire an instance's effect at its due time. `arm` of an id
    already armed is a no-op; `disarm` of one that is gone is too."""

    async def arm(self, instance: InstanceRef, record: EffectRecord) -> None: ...

    async def disarm(self, effect_id: str) -> None: ...


def transitioned(
    record: EffectRecord, source: tuple[Status, ...], target: Status, *, now: float, submission_id: str | None
) -> EffectRecord:
    """`record` moved to `target` (what every `EffectStore.transition` stores), or
    `EffectNotPending` when it is not in one of the `source` states."""
    if record.status not in source:
        raise EffectNotPending(f"effect {record.id} is {record.status}", details={"status": record.status})
    changes: dict[str, Any] = {"status": target}
    if target == "fired" and record.fired_at is None:
        changes["fired_at"] = now
    if target == "cancelled":
        changes["cancelled_at"] = now
    if submission_id is not None:
        changes["submission_id"] = submission_id
    return EffectRecord.of({**record.view(), **changes})


# --- helpers ----------------------------------------------------------------------------


def effect_id_for(instance: InstanceRef, submission_id: str, scope: str, n: int) -> str:
    """The id of the `n`-th effect scheduled from `scope` (a tool call, a handler run, a
    hook) of a submission: the same on every replay of that code."""
    digest = hashlib.sha256(f"{instance.key}\x00{submission_id}\x00{scope}\x00{n}".encode()).digest()
    return "eff-" + base64.b32encode(digest).decode().lower()[:26]


def validate_effect_id(effect_id: str) -> str:
    if not isinstance(effect_id, str) or not EFFECT_ID.match(effect_id):
        raise InvalidInput("an effect id looks like eff-<26 letters and digits>", details={"field": "effect_id"})
    return effect_id


def due_time(now: float, *, delay: float | None, at: datetime | None) -> float:
    """When an effect scheduled at `now` runs: exactly one of `delay` (seconds) and `at`
    (a timezone-aware datetime); in the past means as soon as possible."""
    if (delay is None) == (at is None):
        raise InvalidInput("schedule takes exactly one of delay= (seconds) and at= (a datetime)")
    if delay is not None:
        if isinstance(delay, bool) or not isinstance(delay, int | float) or not math.isfinite(delay) or delay < 0:
            raise InvalidInput("delay must be a number of seconds >= 0", details={"field": "delay"})
        due = now + float(delay)
    else:
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidInput("at must be a timezone-aware datetime", details={"field": "at"})
        due = max(now, at.timestamp())
    if due - now > MAX_DELAY_SECONDS:
        raise InvalidInput(f"an effect runs at most {MAX_DELAY_SECONDS // 86400} days ahead", details={"field": "delay"})
    return due


def checked_args(effect: Effect, args: Any) -> dict[str, Any]:
    """Validated arguments as stored: JSON within `ARGS_MAX_CHARS`."""
    effect.validate(args)
    plain = args or {}
    try:
        text = canonical_json(plain)
    except (TypeError, ValueError):
        raise InvalidInput(f"effect {effect.name!r}: args must be JSON", details={"field": "args"}) from None
    if len(text) > ARGS_MAX_CHARS:
        raise InvalidInput(f"effect args are at most {ARGS_MAX_CHARS} characters of JSON", details={"field": "args"})
    return dict(plain)


def schedule_expression(due_at: float) -> str:
    """EventBridge Scheduler's one-time expression for `due_at`, in UTC, to the second."""
    return "at(" + datetime.fromtimestamp(math.ceil(due_at), UTC).strftime("%Y-%m-%dT%H:%M:%S") + ")"


__all__ = [
    "Effect",
    "EffectNotFound",
    "EffectNotPending",
    "EffectRecord",
    "EffectStore",
    "Timers",
    "check_effects",
    "due_time",
    "effect",
    "effect_id_for",
]
