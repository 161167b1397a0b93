"""Variables and secrets: declared by an agent, stored per instance.

An agent declares what it reads::

    variables=[
        Variable("PRODUCT_INVENTORY", required=True, description="CSV of what is in stock"),
        Secret("STRIPE_KEY", description="for the charge tool"),
    ]
    instructions=["You sell shoes. Inventory:", env("PRODUCT_INVENTORY")]

Values are set per instance (over HTTP, by the application) and kept by a `Variables`
store: `MemoryVariables` (the reference) or `DynamoDBVariables` (one item per variable
in the instance's partition, secrets encrypted with KMS).

The rule for secrets: a secret's plaintext is never rendered into a prompt, an event, a
log line or an error. Only `Variables.reveal` decrypts one, and it returns a
`SecretValue`, whose ``repr``/``str`` are ``'<secret>'``, which refuses to be pickled
or compared with a ``str``; the plaintext string exists only where tool code calls
`SecretValue.reveal()`. `get`, `list` and `values` never return a secret's value
(`get` on a secret raises `SecretNotReadable`), and `env()` may not name a secret.

Limits: names match ``^[A-Z][A-Z0-9_]{0,63}$``; a plain value is at most 32 KiB of
UTF-8, a secret at most 4 KiB (KMS `Encrypt` takes 4096 bytes of plaintext). Once a
name holds a secret it stays a secret until deleted: a plain `put` over it is refused,
so a client that forgets the flag cannot store a secret in the clear.

Errors: a bad declaration or `env()` is a `DefinitionError` (field ``variables`` or
``instructions``); a bad name or value at run time is `InvalidInput`, too big a value
`PayloadTooLarge`.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, NoReturn, Protocol

from agent_runtime.errors import AgentRuntimeError, DefinitionError, InvalidInput, PayloadTooLarge
from agent_runtime.ids import InstanceRef

__all__ = [
    "PLAIN_MAX_BYTES",
    "SECRET_MAX_BYTES",
    "VARIABLE_NAME",
    "VARIABLE_SCHEMA_VERSION",
    "Declared",
    "EnvRef",
    "Secret",
    "SecretNotReadable",
    "SecretUnreadable",
    "SecretValue",
    "SecretsUnavailable",
    "Variable",
    "VariableInfo",
    "Variables",
    "check_instructions",
    "check_value",
    "check_variables",
    "describe",
    "encryption_context",
    "env",
    "find_declared",
    "missing_required",
    "plain_over_secret",
    "referenced",
    "render_instructions",
    "validate_variable_name",
]

VARIABLE_NAME = re.compile(r"^[A-Z][A-Z0-9_]{0,63}$")
#: Plain values are rendered into prompts; 32 KiB keeps one item far below DynamoDB's 400 KB.
PLAIN_MAX_BYTES = 32 * 1024
#: KMS `Encrypt` takes at most 4096 bytes of plaintext.
SECRET_MAX_BYTES = 4 * 1024
#: The version stored with every variable item; a reader refuses any other.
VARIABLE_SCHEMA_VERSION = 1


# --- declarations ----------------------------------------------------------------


@dataclass(frozen=True)
class _Declaration:
    name: str
    _: KW_ONLY
    required: bool = False
    description: str = ""

    secret: ClassVar[bool]

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not VARIABLE_NAME.match(self.name):
            raise DefinitionError(
                "variables", f"variable name must match {VARIABLE_NAME.pattern}, got {self.name!r}"
            )
        if not isinstance(self.required, bool):
            raise DefinitionError("variables", f"{self.name}: required must be True or False")
        if not isinstance(self.description, str):
            raise DefinitionError("variables", f"{self.name}: description must be a str")


@dataclass(frozen=True)
class Variable(_Declaration):
    """A plain variable: its value may be rendered into the instructions with `env()`.

    A `default` is used while no value is set; it cannot be combined with `required`.
    """

    _: KW_ONLY
    default: str | None = None

    secret: ClassVar[bool] = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.default is None:
            return
        if not isinstance(self.default, str):
            raise DefinitionError("variables", f"{self.name}: default must be a str")
        if self.required:
            raise DefinitionError(
                "variables", f"{self.name}: a required variable cannot have a default"
            )
        try:
            size = len(self.default.encode("utf-8"))
        except UnicodeEncodeError:
            raise DefinitionError("variables", f"{self.name}: default is not valid text") from None
        if size > PLAIN_MAX_BYTES:
            raise DefinitionError(
                "variables", f"{self.name}: default is over {PLAIN_MAX_BYTES} bytes"
            )


@dataclass(frozen=True)
class Secret(_Declaration):
    """A variable whose value is secret: readable by tools only (`ctx.secret`), never
    rendered into a prompt. It has no default: a secret written in code is not secret.

    `Secret` is deliberately not a subclass of `Variable`, so a check such as
    ``isinstance(d, Variable)`` can never let a secret through as a plain variable.
    """

    secret: ClassVar[bool] = True


Declared = Variable | Secret


def check_variables(value: Any, field_name: str = "variables") -> tuple[Declared, ...]:
    """Validate an agent's ``variables`` field: `Variable`s and `Secret`s, names unique."""
    if value is None:
        return ()
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise DefinitionError(field_name, "expected a list of Variable(...) and Secret(...)")
    seen: set[str] = set()
    for item in value:
        if not isinstance(item, Variable | Secret):
            raise DefinitionError(field_name, f"{item!r} is not a Variable(...) or Secret(...)")
        if item.name in seen:
            raise DefinitionError(field_name, f"duplicate variable name {item.name!r}")
        seen.add(item.name)
    return tuple(value)


def find_declared(declared: Iterable[Declared], name: str) -> Declared | None:
    """The declaration of `name`, if any: its ``.secret`` is the flag `Variables.put` needs."""
    return next((d for d in declared if d.name == name), None)


# --- env() in instructions ---------------------------------------------------------


@dataclass(frozen=True)
class EnvRef:
    """``env("NAME")``: a plain variable's value, placed among the instruction parts."""

    name: str

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not VARIABLE_NAME.match(self.name):
            raise DefinitionError(
                "instructions",
                f"env() takes a variable name matching {VARIABLE_NAME.pattern}, got {self.name!r}",
            )


def env(name: str) -> EnvRef:
    """Mark where a variable's value goes: ``instructions=["Inventory:", env("INVENTORY")]``."""
    return EnvRef(name)


InstructionParts = str | Sequence[str | EnvRef]


def _parts(parts: InstructionParts) -> tuple[str | EnvRef, ...]:
    if isinstance(parts, str):
        return (parts,)
    if isinstance(parts, Sequence) and all(isinstance(p, str | EnvRef) for p in parts):
        return tuple(parts)
    raise DefinitionError("instructions", "expected a str or a list of str and env(...)")


def referenced(parts: InstructionParts) -> list[str]:
    """The variable names the instructions' `env()` parts name, in order, once each."""
    names = [p.name for p in _parts(parts) if isinstance(p, EnvRef)]
    return list(dict.fromkeys(names))


def check_instructions(parts: InstructionParts, declared: Iterable[Declared]) -> None:
    """Raise `DefinitionError` when an `env()` names an undeclared variable or a secret."""
    by_name = {d.name: d for d in declared}
    for name in referenced(parts):
        found = by_name.get(name)
        if found is None:
            raise DefinitionError(
                "instructions",
                f"env({name!r}) names no declared variable (declare Variable({name!r}))",
            )
        if found.secret:
            raise DefinitionError(
                "instructions",
                f"env({name!r}) names a Secret: secrets are for tools only (ctx.secret), "
                "never rendered into a prompt",
            )


def missing_required(declared: Iterable[Declared], values: Collection[str]) -> list[str]:
    """Required variables and secrets that have no value, in declaration order.

    `values` is the collection of names that are set: the dict `Variables.values` returns
    covers plain variables only, so to check required secrets too pass
    ``{i.name for i in await store.list(instance)}``.
    """
    return [d.name for d in declared if d.required and d.name not in values]


def render_instructions(
    parts: InstructionParts, declared: Iterable[Declared], values: Mapping[str, str]
) -> str:
    """The instructions with each `env()` replaced by its plain value (or its default).

    Parts are joined by a newline, as a list of str is; an `env()` of an unset optional
    variable with no default is left out. Refuses, as `check_instructions` does, an
    `env()` of a secret or of an undeclared name, and raises `InvalidInput` naming
    required variables that have no value (the caller should have refused the prompt
    with `missing_required` first).
    """
    declared = tuple(declared)
    check_instructions(parts, declared)
    by_name = {d.name: d for d in declared}
    missing = [n for n in referenced(parts) if by_name[n].required and n not in values]
    if missing:
        raise InvalidInput(
            f"required variable(s) not set: {', '.join(missing)}",
            details={"field": "variables", "missing": missing},
        )
    out: list[str] = []
    for part in _parts(parts):
        if isinstance(part, str):
            out.append(part)
            continue
        decl = by_name[part.name]
        text = values.get(part.name)
        if text is None and isinstance(decl, Variable):
            text = decl.default
        if text is None:
            continue
        if not isinstance(text, str):  # a SecretValue, say: never rendered
            raise InvalidInput(
                f"{part.name}: only plain str values are rendered", details={"field": "variables"}
            )
        out.append(text)
    return "\n".join(out)


# --- values ------------------------------------------------------------------------


def validate_variable_name(name: str) -> str:
    """A name from a caller, before it becomes a key: `InvalidInput` unless it matches."""
    if not isinstance(name, str) or not VARIABLE_NAME.match(name):
        raise InvalidInput(
            f"variable name must match {VARIABLE_NAME.pattern}",
            details={"field": "name", "value": str(name)[:100]},
        )
    return name


def check_value(name: str, value: str, *, secret: bool) -> bytes:
    """The value's UTF-8 bytes, within its kind's limit. The message never holds the value."""
    if not isinstance(value, str):
        raise InvalidInput(f"{name}: a variable's value must be a str", details={"field": "value"})
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(f"{name}: value is not valid text", details={"field": "value"}) from None
    limit = SECRET_MAX_BYTES if secret else PLAIN_MAX_BYTES
    if len(data) > limit:
        kind = "secret" if secret else "variable"
        raise PayloadTooLarge(
            f"{kind} {name} is over {limit} bytes", details={"field": "value", "limit": limit}
        )
    return data


def encryption_context(instance: InstanceRef, name: str) -> dict[str, str]:
    """What a secret's ciphertext is bound to (KMS `EncryptionContext`, and the memory
    store's equivalent): a ciphertext moved to another instance or name does not decrypt."""
    return {"instance": instance.key, "variable": name}


def plain_over_secret(name: str) -> InvalidInput:
    """The refusal of a plain `put` over a stored secret."""
    return InvalidInput(
        f"{name} holds a secret: delete it before storing a plain value under its name",
        details={"field": "secret", "name": name},
    )


class SecretNotReadable(InvalidInput):
    """`get` was asked for a secret (or `reveal` for a plain variable): each method reads one
    kind only, so a secret's value never leaves through the plain path."""

    type = "secret_not_readable"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message, details={"field": "name", "name": name})
        self.name = name


class SecretUnreadable(AgentRuntimeError):
    """A stored secret did not decrypt: its ciphertext was tampered with or moved from
    another instance or name (the encryption context binds it to both)."""

    type = "secret_unreadable"

    def __init__(self, name: str) -> None:
        super().__init__(f"secret {name} could not be decrypted", details={"name": name})
        self.name = name


class SecretsUnavailable(AgentRuntimeError):
    """Secret variables need the stack's KMS key, and this runtime has none configured."""

    type = "secrets_unavailable"

    def __init__(self) -> None:
        super().__init__("secret variables need the stack's KMS key (AGENT_RUNTIME_SECRETS_KEY is not set)")


class SecretValue:
    """A secret's plaintext, kept out of reprs, logs, pickles and JSON.

    ``str()``, ``repr()`` and f-strings give ``'<secret>'``; `reveal()` gives the
    plaintext, for the one place a tool needs it::

        key = await ctx.secret("STRIPE_KEY")
        headers = {"Authorization": f"Bearer {key.reveal()}"}
    """

    __slots__ = ("_reveal",)

    def __init__(self, plaintext: str) -> None:
        # Held by a closure, not an attribute: vars(), __slots__ and debuggers' attribute
        # views show a function, never the text.
        object.__setattr__(self, "_reveal", lambda: plaintext)

    def reveal(self) -> str:
        """The plaintext. Do not log it, return it from a tool, or put it in a message."""
        text: str = self._reveal()  # type: ignore[attr-defined]
        return text

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "<secret>"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SecretValue):
            return NotImplemented
        return hmac.compare_digest(self.reveal().encode(), other.reveal().encode())

    def __hash__(self) -> int:
        return hash(SecretValue)  # equal values hash equal; the hash says nothing of the text

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("SecretValue is immutable")

    def __copy__(self) -> SecretValue:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, Any]) -> SecretValue:
        return self

    def __reduce__(self) -> NoReturn:
        raise TypeError("a SecretValue is not pickled: secrets are never journaled or sent")


@dataclass(frozen=True)
class VariableInfo:
    """One variable as listed: never a secret's value or ciphertext.

    `value` is a plain variable's stored value (None for a secret or an unset one);
    `required` and `description` are filled in by `describe` from the declarations.
    """

    name: str
    secret: bool
    set: bool
    updated_at: float | None = None
    value: str | None = None
    required: bool = False
    description: str = ""
    declared: bool = False


def describe(declared: Iterable[Declared], stored: Iterable[VariableInfo]) -> list[VariableInfo]:
    """What to show for an instance: every declaration (set or not) in declaration order,
    then stored names no declaration mentions (an agent that dropped a variable)."""
    by_name = {i.name: i for i in stored}
    out: list[VariableInfo] = []
    for d in declared:
        info = by_name.pop(d.name, None)
        # Secret if declared so or stored so: a value never shows when either says secret.
        secret = d.secret or (info is not None and info.secret)
        out.append(
            VariableInfo(
                name=d.name,
                secret=secret,
                set=info is not None,
                updated_at=info.updated_at if info else None,
                value=info.value if info and not secret else None,
                required=d.required,
                description=d.description,
                declared=True,
            )
        )
    out.extend(by_name.values())
    return out


# --- the port ----------------------------------------------------------------------


class Variables(Protocol):
    """An instance's variables and secrets. Names are validated (`InvalidInput`) by every
    method; adapters: `adapters.memory_variables` (the reference) and
    `adapters.aws.dynamodb_variables`."""

    async def put(self, instance: InstanceRef, name: str, value: str, *, secret: bool) -> None:
        """Set `name`, replacing its value. Secrets are stored encrypted. `PayloadTooLarge`
        over `SECRET_MAX_BYTES` / `PLAIN_MAX_BYTES`; `InvalidInput` for a plain put over a
        stored secret (delete it first)."""
        ...

    async def get(self, instance: InstanceRef, name: str) -> str | None:
        """A plain variable's value, None when unset. A secret raises `SecretNotReadable`:
        loudly, so a secret is never mistaken for an unset variable."""
        ...

    async def reveal(self, instance: InstanceRef, name: str) -> SecretValue | None:
        """A secret's value, for `ctx.secret` in tools only; None when unset.
        `SecretNotReadable` for a plain variable, `SecretUnreadable` if it will not decrypt."""
        ...

    async def list(self, instance: InstanceRef) -> list[VariableInfo]:
        """Every stored variable by name: plain ones with their value, secrets without."""
        ...

    async def delete(self, instance: InstanceRef, name: str) -> bool:
        """Remove `name`; False when it was not set."""
        ...

    async def values(self, instance: InstanceRef) -> dict[str, str]:
        """Plain values by name, for rendering instructions. Never a secret."""
        ...
