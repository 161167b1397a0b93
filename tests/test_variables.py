"""Variables and secrets: declarations, env() in instructions, and the `Variables` port on
memory (the reference) and DynamoDB + KMS on moto."""

from __future__ import annotations

import copy
import json
import pickle
from collections.abc import Iterator
from typing import Any

import pytest

from agent_runtime.adapters.aws.dynamodb_variables import DynamoDBVariables
from agent_runtime.adapters.memory_variables import MemoryVariables
from agent_runtime.errors import DefinitionError, InvalidInput, PayloadTooLarge
from agent_runtime.ids import InstanceRef
from agent_runtime.testing.backends import Backend, FakeClock
from agent_runtime.variables import (
    PLAIN_MAX_BYTES,
    SECRET_MAX_BYTES,
    EnvRef,
    Secret,
    SecretNotReadable,
    SecretUnreadable,
    SecretValue,
    Variable,
    VariableInfo,
    Variables,
    check_instructions,
    check_variables,
    describe,
    env,
    missing_required,
    render_instructions,
)

INST = InstanceRef("shop", "store-1")
OTHER = InstanceRef("shop", "store-2")
PLAINTEXT = "sk_live_hunter2_do_not_leak"


# --- declarations ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["lower", "1ABC", "_ABC", "A-B", "A B", "", "A" * 65, "ÄBC", 42, None]
)
def test_bad_names_are_definition_errors(name: Any) -> None:
    for make in (Variable, Secret):
        with pytest.raises(DefinitionError) as info:
            make(name)
        assert info.value.field == "variables"


def test_good_names_and_fields() -> None:
    v = Variable("A", description="x", default="d")
    s = Secret("A_1_" + "B" * 60, required=True)
    assert (v.name, v.default, v.secret) == ("A", "d", False)
    assert s.secret and not isinstance(s, Variable)
    with pytest.raises(TypeError):
        Secret("API_KEY", default="nope")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Variable("A", True)  # type: ignore[misc]


@pytest.mark.parametrize(
    "make",
    [
        lambda: Variable("A", required=True, default="x"),
        lambda: Variable("A", default=3),  # type: ignore[arg-type]
        lambda: Variable("A", default="x" * (PLAIN_MAX_BYTES + 1)),
        lambda: Variable("A", required="yes"),  # type: ignore[arg-type]
        lambda: Secret("A", description=None),  # type: ignore[arg-type]
    ],
)
def test_bad_fields_are_definition_errors(make: Any) -> None:
    with pytest.raises(DefinitionError):
        make()


def test_check_variables_refuses_duplicates_and_strangers() -> None:
    assert check_variables(None) == ()
    ok = check_variables([Variable("A"), Secret("B")])
    assert [d.name for d in ok] == ["A", "B"]
    for bad in ([Variable("A"), Secret("A")], ["A"], "A", 3):
        with pytest.raises(DefinitionError) as info:
            check_variables(bad)
        assert info.value.field == "variables"
    with pytest.raises(DefinitionError, match="duplicate variable name 'A'"):
        check_variables([Variable("A"), Variable("A")])


DECLARED = (
    Variable("PRODUCT_INVENTORY", required=True),
    Variable("TONE", default="friendly"),
    Variable("EXTRA"),
    Secret("STRIPE_KEY", required=True),
)


def test_env_checks_at_definition_time() -> None:
    check_instructions(["You sell shoes. Inventory:", env("PRODUCT_INVENTORY")], DECLARED)
    check_instructions("plain text", DECLARED)
    with pytest.raises(DefinitionError, match="names no declared variable") as info:
        check_instructions(["x", env("UNKNOWN")], DECLARED)
    assert info.value.field == "instructions"
    with pytest.raises(DefinitionError, match="secrets are for tools only"):
        check_instructions([env("STRIPE_KEY")], DECLARED)
    with pytest.raises(DefinitionError) as info:
        env("lower")
    assert info.value.field == "instructions"
    with pytest.raises(DefinitionError):
        check_instructions(["x", 3], DECLARED)  # type: ignore[list-item]


def test_render_instructions() -> None:
    parts: list[str | EnvRef] = [
        "You sell shoes. Inventory:",
        env("PRODUCT_INVENTORY"),
        "Tone:",
        env("TONE"),
        env("EXTRA"),
    ]
    text = render_instructions(parts, DECLARED, {"PRODUCT_INVENTORY": "3 boots"})
    assert text == "You sell shoes. Inventory:\n3 boots\nTone:\nfriendly"
    text = render_instructions(
        parts, DECLARED, {"PRODUCT_INVENTORY": "b", "TONE": "terse", "EXTRA": "e"}
    )
    assert text == "You sell shoes. Inventory:\nb\nTone:\nterse\ne"
    assert render_instructions("just text", DECLARED, {}) == "just text"
    with pytest.raises(InvalidInput) as info:
        render_instructions(parts, DECLARED, {})
    assert info.value.details["missing"] == ["PRODUCT_INVENTORY"]
    with pytest.raises(DefinitionError):
        render_instructions([env("STRIPE_KEY")], DECLARED, {"STRIPE_KEY": PLAINTEXT})
    with pytest.raises(InvalidInput):
        render_instructions([env("EXTRA")], DECLARED, {"EXTRA": SecretValue("x")})  # type: ignore[dict-item]


def test_missing_required() -> None:
    assert missing_required(DECLARED, {}) == ["PRODUCT_INVENTORY", "STRIPE_KEY"]
    assert missing_required(DECLARED, {"PRODUCT_INVENTORY": "x"}) == ["STRIPE_KEY"]
    assert missing_required(DECLARED, {"PRODUCT_INVENTORY", "STRIPE_KEY"}) == []


def test_describe_merges_declarations_and_stored() -> None:
    stored = [
        VariableInfo("PRODUCT_INVENTORY", secret=False, set=True, updated_at=1.0, value="x"),
        VariableInfo("STRIPE_KEY", secret=True, set=True, updated_at=2.0),
        VariableInfo("OLD", secret=False, set=True, updated_at=3.0, value="o"),
    ]
    infos = describe(DECLARED, stored)
    assert [(i.name, i.set, i.declared, i.required) for i in infos] == [
        ("PRODUCT_INVENTORY", True, True, True),
        ("TONE", False, True, False),
        ("EXTRA", False, True, False),
        ("STRIPE_KEY", True, True, True),
        ("OLD", True, False, False),
    ]
    assert infos[0].value == "x" and infos[3].value is None
    # Declared secret, still stored plain (set before the declaration changed): hidden.
    was_plain = VariableInfo("STRIPE_KEY", secret=False, set=True, updated_at=1.0, value="k")
    assert describe(DECLARED, [was_plain])[3].value is None


def test_secret_value_hides_its_text() -> None:
    s = SecretValue(PLAINTEXT)
    assert s.reveal() == PLAINTEXT
    shown = [
        repr(s),
        str(s),
        f"{s}",
        format(s),
        "%s" % (s,),  # noqa: UP031
        repr([s]),
        repr({"k": s}),
        str(vars_or_slots(s)),
    ]
    assert all(PLAINTEXT not in text for text in shown)
    assert repr(s) == "<secret>"
    assert s == SecretValue(PLAINTEXT) and s != SecretValue("other") and s != PLAINTEXT
    assert copy.deepcopy(s) is s
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        json.dumps({"k": s})
    with pytest.raises(AttributeError):
        s.x = 1  # type: ignore[attr-defined]


def vars_or_slots(value: object) -> dict[str, object]:
    return {name: getattr(value, name) for name in type(value).__slots__}  # type: ignore[attr-defined]


# --- the port, on memory and moto ------------------------------------------------


@pytest.fixture
def variables(backend: Backend, clock: FakeClock) -> Iterator[Variables]:
    if backend.kind == "memory":
        yield MemoryVariables(clock=clock)
        return
    assert backend.resources and backend.resources.secrets_key
    yield DynamoDBVariables(
        backend.clients["dynamodb"],
        backend.resources.table,
        backend.clients["kms"],
        backend.resources.secrets_key,
        clock=clock,
    )


async def test_put_get_list_delete(variables: Variables, clock: FakeClock) -> None:
    assert await variables.get(INST, "TONE") is None
    assert await variables.list(INST) == []
    await variables.put(INST, "TONE", "friendly", secret=False)
    clock.advance(5)
    await variables.put(INST, "TONE", "terse ✓", secret=False)
    await variables.put(INST, "EMPTY", "", secret=False)
    await variables.put(OTHER, "TONE", "other", secret=False)
    assert await variables.get(INST, "TONE") == "terse ✓"
    assert await variables.get(INST, "EMPTY") == ""
    assert await variables.list(INST) == [
        VariableInfo("EMPTY", secret=False, set=True, updated_at=clock(), value=""),
        VariableInfo("TONE", secret=False, set=True, updated_at=clock(), value="terse ✓"),
    ]
    assert await variables.values(INST) == {"EMPTY": "", "TONE": "terse ✓"}
    assert await variables.delete(INST, "TONE") is True
    assert await variables.delete(INST, "TONE") is False
    assert await variables.get(INST, "TONE") is None
    assert await variables.get(OTHER, "TONE") == "other"


async def test_secrets_are_only_revealed(variables: Variables, clock: FakeClock) -> None:
    await variables.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    await variables.put(INST, "TONE", "friendly", secret=False)
    with pytest.raises(SecretNotReadable):
        await variables.get(INST, "STRIPE_KEY")
    with pytest.raises(SecretNotReadable):
        await variables.reveal(INST, "TONE")
    assert await variables.values(INST) == {"TONE": "friendly"}
    listed = await variables.list(INST)
    assert listed[0] == VariableInfo(
        "STRIPE_KEY", secret=True, set=True, updated_at=clock(), value=None
    )
    assert PLAINTEXT not in repr(listed) and PLAINTEXT not in repr(variables)
    revealed = await variables.reveal(INST, "STRIPE_KEY")
    assert isinstance(revealed, SecretValue) and revealed.reveal() == PLAINTEXT
    assert await variables.reveal(INST, "UNSET") is None
    assert await variables.reveal(OTHER, "STRIPE_KEY") is None
    # A secret may replace a plain value; a plain put over a secret is refused.
    await variables.put(INST, "TONE", "now secret", secret=True)
    with pytest.raises(InvalidInput, match="holds a secret"):
        await variables.put(INST, "STRIPE_KEY", "in the clear", secret=False)
    assert (await variables.reveal(INST, "STRIPE_KEY")).reveal() == PLAINTEXT  # type: ignore[union-attr]
    assert await variables.delete(INST, "STRIPE_KEY")
    await variables.put(INST, "STRIPE_KEY", "plain now", secret=False)
    assert await variables.get(INST, "STRIPE_KEY") == "plain now"


async def test_limits_and_bad_input(variables: Variables) -> None:
    await variables.put(INST, "BIG", "x" * PLAIN_MAX_BYTES, secret=False)
    await variables.put(INST, "KEY", "é" * (SECRET_MAX_BYTES // 2), secret=True)
    with pytest.raises(PayloadTooLarge) as info:
        await variables.put(INST, "BIG", "x" * (PLAIN_MAX_BYTES + 1), secret=False)
    assert info.value.details["limit"] == PLAIN_MAX_BYTES
    with pytest.raises(PayloadTooLarge) as info:
        await variables.put(INST, "KEY", PLAINTEXT + "é" * (SECRET_MAX_BYTES // 2), secret=True)
    assert PLAINTEXT not in str(info.value) and PLAINTEXT not in repr(info.value.details)
    with pytest.raises(InvalidInput):
        await variables.put(INST, "TEXT", "\udc80", secret=False)
    with pytest.raises(InvalidInput):
        await variables.put(INST, "TEXT", 3, secret=False)  # type: ignore[arg-type]
    for bad in ("lower", "A#B", "", "A" * 65, "VAR#X"):
        for call in (
            variables.put(INST, bad, "v", secret=False),
            variables.get(INST, bad),
            variables.reveal(INST, bad),
            variables.delete(INST, bad),
        ):
            with pytest.raises(InvalidInput) as bad_name:
                await call
            assert bad_name.value.details["field"] == "name"
    assert [i.name for i in await variables.list(INST)] == ["BIG", "KEY"]


# --- what only the adapters' insides show -----------------------------------------


async def test_memory_keeps_no_plaintext() -> None:
    store = MemoryVariables()
    await store.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    sealed = store.items[INST.key]["STRIPE_KEY"].sealed
    assert sealed and PLAINTEXT.encode() not in sealed
    assert PLAINTEXT not in repr(store.items) and PLAINTEXT not in repr(vars(store))


async def test_memory_sealed_value_moved_does_not_open() -> None:
    store = MemoryVariables()
    await store.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    stored = store.items[INST.key]["STRIPE_KEY"]
    store.items.setdefault(OTHER.key, {})["STRIPE_KEY"] = stored
    store.items[INST.key]["OTHER_KEY"] = stored
    with pytest.raises(SecretUnreadable):
        await store.reveal(OTHER, "STRIPE_KEY")
    with pytest.raises(SecretUnreadable):
        await store.reveal(INST, "OTHER_KEY")


def _raw_items(backend: Backend) -> list[dict[str, Any]]:
    assert backend.resources
    return list(backend.clients["dynamodb"].scan(TableName=backend.resources.table)["Items"])


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_dynamodb_item_holds_no_plaintext(backend: Backend, variables: Variables) -> None:
    await variables.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    await variables.put(INST, "TONE", "friendly", secret=False)
    items = {i["sk"]["S"]: i for i in _raw_items(backend)}
    secret, plain = items["VAR#STRIPE_KEY"], items["VAR#TONE"]
    assert set(secret) == {"pk", "sk", "v", "secret", "ciphertext", "updated_at"}
    assert secret["secret"] == {"BOOL": True} and secret["pk"] == {"S": "I#shop/store-1"}
    assert PLAINTEXT.encode() not in secret["ciphertext"]["B"]
    assert PLAINTEXT not in repr(items)
    assert plain["value"] == {"S": "friendly"} and "ciphertext" not in plain


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_dynamodb_ciphertext_moved_does_not_decrypt(
    backend: Backend, variables: Variables
) -> None:
    """moto's KMS honours the encryption context, so this checks the binding for real."""
    assert backend.resources
    await variables.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    item = next(i for i in _raw_items(backend) if i["sk"]["S"] == "VAR#STRIPE_KEY")
    client = backend.clients["dynamodb"]
    client.put_item(TableName=backend.resources.table, Item={**item, "pk": {"S": "I#shop/store-2"}})
    client.put_item(TableName=backend.resources.table, Item={**item, "sk": {"S": "VAR#OTHER_KEY"}})
    with pytest.raises(SecretUnreadable):
        await variables.reveal(OTHER, "STRIPE_KEY")
    with pytest.raises(SecretUnreadable):
        await variables.reveal(INST, "OTHER_KEY")
    assert (await variables.reveal(INST, "STRIPE_KEY")).reveal() == PLAINTEXT  # type: ignore[union-attr]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_dynamodb_kms_calls_carry_the_context(backend: Backend, variables: Variables) -> None:
    assert backend.resources
    kms = backend.clients["kms"]
    calls: list[tuple[str, dict[str, Any]]] = []

    def record(params: dict[str, Any], model: Any, **_: Any) -> None:
        calls.append((model.name, params))

    kms.meta.events.register("provide-client-params.kms.*", record)
    await variables.put(INST, "STRIPE_KEY", PLAINTEXT, secret=True)
    await variables.reveal(INST, "STRIPE_KEY")
    await variables.list(INST)
    await variables.values(INST)
    context = {"instance": "shop/store-1", "variable": "STRIPE_KEY"}
    assert [(name, p["EncryptionContext"], p["KeyId"]) for name, p in calls] == [
        ("Encrypt", context, backend.resources.secrets_key),
        ("Decrypt", context, backend.resources.secrets_key),
    ]


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
async def test_dynamodb_reader_refuses_unknown_versions(
    backend: Backend, variables: Variables
) -> None:
    assert backend.resources
    await variables.put(INST, "TONE", "friendly", secret=False)
    item = next(i for i in _raw_items(backend) if i["sk"]["S"] == "VAR#TONE")
    backend.clients["dynamodb"].put_item(
        TableName=backend.resources.table, Item={**item, "v": {"N": "2"}}
    )
    with pytest.raises(ValueError, match="unknown variable item version 2"):
        await variables.get(INST, "TONE")


@pytest.mark.parametrize("backend", ["moto"], indirect=True)
def test_provision_finds_the_secrets_key_again(backend: Backend) -> None:
    from agent_runtime.adapters.aws.provision import provision_secrets_key

    assert backend.resources and backend.resources.secrets_key
    assert provision_secrets_key(backend.clients["kms"]) == backend.resources.secrets_key
