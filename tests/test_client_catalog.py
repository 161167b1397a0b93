"""The SDK's catalog reads (`agents`, `describe`, `instances`, `submissions`), sync and
async, against the HTTP handler (the `api` fixture of `tests.test_client`)."""

from __future__ import annotations

import pytest

from agent_runtime import client as sdk
from tests.test_client import Api, api  # noqa: F401  (the fixture)


def test_the_catalog_reads(api: Api) -> None:  # noqa: F811
    with api.client("s3cret") as client:
        client.prompt("echo", "c-1", "one")
        client.prompt("echo", "c-2", "two")
        client.prompt("echo", "c-2", "three")
        assert [a.name for a in client.agents().agents] == ["echo", "guarded"]
        described = client.describe("echo")
        first = client.instances("echo", limit=1)
        rest = client.instances("echo", cursor=first.next_cursor)
        submissions = client.submissions("echo", "c-2", limit=1)
        later = client.submissions("echo", "c-2", after=submissions.next or 0)
    assert described.model == "test/echo" and described.tools == [] and described.variables == []
    assert [i.id for i in first.instances] == ["c-2"] and first.instances[0].submissions == 2
    assert [i.id for i in rest.instances] == ["c-1"] and rest.next_cursor is None
    assert [s.sequence for s in submissions.submissions] == [0] and submissions.next == 0
    assert [s.sequence for s in later.submissions] == [1] and later.next is None
    with api.client() as anonymous:
        assert [a.name for a in anonymous.agents().agents] == ["echo"]
        with pytest.raises(sdk.Unauthorized):
            anonymous.instances("guarded")


async def test_the_async_catalog_reads(api: Api) -> None:  # noqa: F811
    async with api.async_client() as client:
        await client.prompt("echo", "a-1", "hello")
        assert [a.name for a in (await client.agents()).agents] == ["echo"]
        assert (await client.describe("echo")).name == "echo"
        assert [i.id for i in (await client.instances("echo")).instances] == ["a-1"]
        assert len((await client.submissions("echo", "a-1")).submissions) == 1
