"""What tools reach on both adapters: the instance's files (an attachment's exact bytes,
fenced writes), the built-in file tools, kv listing, variables, custom events, and
secrets, which reach the tool that asks and nothing else: not the model, not the
history, not an event, not the tool's own result or error."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from agent_runtime.definition import create_agent
from agent_runtime.ids import InstanceRef
from agent_runtime.ledger import Outcome
from agent_runtime.messages import FilePart, ToolResultPart
from agent_runtime.models.base import ModelRequest
from agent_runtime.models.test import FunctionModel, ToolCall
from agent_runtime.registry import Registry
from agent_runtime.runtime import Runtime
from agent_runtime.testing.backends import Backend
from agent_runtime.tools import ToolContext, tool
from agent_runtime.variables import Secret, Variable
from tests.served import Served

INST = InstanceRef("support", "T-42")
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
TOKEN = "crm-tok-93f1e0c7-not-for-models"


def results_in(request: ModelRequest) -> list[ToolResultPart]:
    return [p for p in request.messages[-1].parts if isinstance(p, ToolResultPart)]


@tool
async def summarize_attachment(path: str, ctx: ToolContext) -> str:
    """Read an attachment and keep a note about it."""
    assert ctx.files is not None
    data = await ctx.files.read(path)
    await ctx.files.write("/notes/summary.md", f"# {path}\n{len(data)} bytes\n", media_type="text/markdown")
    await ctx.kv.put("seen:" + path, hashlib.sha256(data).hexdigest())
    return f"sha256={hashlib.sha256(data).hexdigest()} notes={list(await ctx.kv.list('seen:'))}"


@tool
async def call_crm(ctx: ToolContext) -> str:
    """Call the CRM with the stored token."""
    token = await ctx.secret("CRM_API_TOKEN")
    inventory = await ctx.env("PRODUCT_INVENTORY")
    await ctx.emit("crm_called", {"token_used": token, "inventory": inventory})
    return f"called with {token} for {inventory}"  # a careless tool: the runtime must hide it


@tool
async def crm_fails(ctx: ToolContext) -> str:
    """A tool whose error message carries the secret."""
    token = await ctx.secret("CRM_API_TOKEN")
    raise RuntimeError(f"CRM refused token {token}")


def build(backend: Backend, respond: Callable[[ModelRequest], Any], **fields: Any) -> Runtime:
    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(respond), **fields))
    return backend.runtime(registry)


def run_prompt(runtime: Runtime, served: Served, text: str, **options: Any) -> Any:
    admitted = asyncio.run(runtime.prompt(INST.agent, INST.id, text, **options))
    served.until(served.settled(INST, admitted.record.id))
    return served.record(INST, admitted.record.id)


def test_a_tool_reads_an_attachments_bytes_and_writes_notes(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    requests: list[ModelRequest] = []

    def respond(request: ModelRequest) -> str | ToolCall:
        requests.append(request)
        results = results_in(request)
        if results:
            return results[0].content
        return ToolCall("summarize_attachment", {"path": "/attachments/receipt.png"}, id="s-1")

    runtime = build(backend, respond, tools=[summarize_attachment])
    served = serve(backend, runtime)
    info = asyncio.run(runtime.put_file(INST.agent, INST.id, "/attachments/receipt.png", PNG, "image/png"))
    record = run_prompt(runtime, served, "Is this receipt valid?", attachments=["/attachments/receipt.png"])
    digest = hashlib.sha256(PNG).hexdigest()
    assert record.outcome is Outcome.completed, record.error
    assert record.result and record.result["text"] == f"sha256={digest} notes=['seen:/attachments/receipt.png']"
    assert info.sha256 == digest
    # The model saw the file as a part, with its bytes beside the request (never inside it).
    first = requests[0].messages[0]
    assert first.files == [FilePart(path="/attachments/receipt.png", media_type="image/png", size=len(PNG), sha256=digest)]
    assert requests[0].files == {"/attachments/receipt.png": PNG}
    assert "files" not in requests[0].model_dump()
    note = asyncio.run(runtime.read_file(INST.agent, INST.id, "/notes/summary.md"))
    assert note[0].media_type == "text/markdown" and note[1] == f"# /attachments/receipt.png\n{len(PNG)} bytes\n".encode()


def test_the_built_in_file_tools(backend: Backend, serve: Callable[[Backend, Runtime], Served]) -> None:
    script = [
        ToolCall("write_file", {"path": "/notes/a.md", "content": "alpha\nbeta refund\n"}, id="w"),
        ToolCall("write_file", {"path": "/notes/sub/b.txt", "content": "refund policy 4.2\n" * 2000}, id="w2"),
        ToolCall("read_file", {"path": "/notes/sub/b.txt", "max_chars": 30}, id="r"),
        ToolCall("list_files", {"prefix": "/notes"}, id="l"),
        ToolCall("grep_files", {"pattern": "refund", "prefix": "/notes"}, id="g"),
        ToolCall("find_files", {"glob": "/**/*.md"}, id="f"),
        ToolCall("read_file", {"path": "/nope.md"}, id="missing"),
        ToolCall("write_file", {"path": "/../etc/passwd", "content": "x"}, id="bad"),
    ]
    seen: dict[str, ToolResultPart] = {}

    def respond(request: ModelRequest) -> str | ToolCall:
        for part in results_in(request):
            seen[part.call_id] = part
        return script[len(seen)] if len(seen) < len(script) else "done"

    runtime = build(backend, respond, file_tools=True)
    served = serve(backend, runtime)
    record = run_prompt(runtime, served, "organise the notes")
    assert record.outcome is Outcome.completed, record.error
    assert seen["w"].content == "wrote /notes/a.md (text/markdown, 18 bytes)"
    assert seen["r"].content.startswith("refund policy 4.2\nrefund polic\n[characters 0-30 of 36000; read on with offset=30]")
    assert seen["l"].content.splitlines() == ["/notes/a.md (text/markdown, 18 bytes)", "/notes/sub/b.txt (text/plain, 36000 bytes)"]
    grep = seen["g"].content.splitlines()
    assert grep[0] == "/notes/a.md:2: beta refund" and grep[-1] == "[only the first 100 matches; narrow the pattern or the prefix]"
    assert seen["f"].content == "/notes/a.md (text/markdown, 18 bytes)"
    assert seen["missing"].is_error and seen["missing"].content == "no file /nope.md"
    assert seen["bad"].is_error and "'..'" in seen["bad"].content


def test_a_secret_reaches_the_tool_and_nothing_else(
    backend: Backend, serve: Callable[[Backend, Runtime], Served], caplog: pytest.LogCaptureFixture
) -> None:
    requests: list[ModelRequest] = []

    def respond(request: ModelRequest) -> str | ToolCall:
        requests.append(request)
        results = results_in(request)
        if not results:
            return [ToolCall("call_crm", {}, id="c-1"), ToolCall("crm_fails", {}, id="c-2")]  # type: ignore[return-value]
        return "tool said: " + " | ".join(r.content for r in results)

    runtime = build(
        backend,
        respond,
        tools=[call_crm, crm_fails],
        instructions=["You sell shoes."],
        variables=[Variable("PRODUCT_INVENTORY", required=True), Secret("CRM_API_TOKEN")],
    )
    served = serve(backend, runtime)
    asyncio.run(runtime.set_variable(INST.agent, INST.id, "PRODUCT_INVENTORY", "red shoes: 3"))
    asyncio.run(runtime.set_variable(INST.agent, INST.id, "CRM_API_TOKEN", TOKEN))
    caplog.set_level(logging.DEBUG)
    record = run_prompt(runtime, served, "check the CRM")
    assert record.outcome is Outcome.completed, record.error
    assert record.result and record.result["text"] == (
        "tool said: called with [secret] for red shoes: 3 | RuntimeError: CRM refused token [secret]"
    )
    listed = asyncio.run(runtime.variables(INST.agent, INST.id))
    everything = [
        json.dumps([r.model_dump(mode="json") for r in requests]),
        json.dumps([m.message.model_dump(mode="json") for m in asyncio.run(runtime.history(INST.agent, INST.id, "default")).messages]),
        json.dumps([e.model_dump(mode="json") for e in asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events]),
        json.dumps([s.model_dump(mode="json") for s in asyncio.run(runtime.stores.ledger.list_submissions(INST))]),
        repr(listed),
        caplog.text,
    ]
    for text in everything:
        assert TOKEN not in text
    events = asyncio.run(runtime.events_after(INST.agent, INST.id, after=0, limit=1000)).events
    custom = [e for e in events if e.type == "custom"]
    assert [(e.name, e.data) for e in custom] == [("crm_called", {"token_used": "[secret]", "inventory": "red shoes: 3"})]


PDF = b"%PDF-1.4\n% a small document\n"


def test_files_are_handed_to_a_child_and_on_dispatch_hands_images(
    backend: Backend, serve: Callable[[Backend, Runtime], Served]
) -> None:
    from agent_runtime.definition import define_agent_profile
    from agent_runtime.loop.dispatch import DispatchContext

    child_requests: list[ModelRequest] = []

    def reader(request: ModelRequest) -> str:
        child_requests.append(request)
        files = request.messages[0].files
        return "; ".join(f"{f.path} {f.media_type} {hashlib.sha256(request.files[f.path]).hexdigest()[:12]}" for f in files)

    def coordinator(request: ModelRequest) -> str | ToolCall:
        results = results_in(request)
        if results:
            return results[0].content
        return ToolCall("task", {"agent": "reader", "prompt": "read these", "attachments": ["/in/receipt.png", "/in/terms.pdf"]}, id="t-1")

    async def on_dispatch(ctx: DispatchContext) -> str:
        out = await ctx.session.task("look", agent="reader", images=[PNG, "/in/terms.pdf"])
        return out.text

    profile = define_agent_profile(name="reader", description="Reads files.", model=FunctionModel(reader))
    registry = Registry()
    registry.add(INST.agent, create_agent(model=FunctionModel(coordinator), subagents=[profile]), on_dispatch=on_dispatch)
    runtime = backend.runtime(registry)
    served = serve(backend, runtime)
    asyncio.run(runtime.put_file(INST.agent, INST.id, "/in/receipt.png", PNG, "image/png"))
    asyncio.run(runtime.put_file(INST.agent, INST.id, "/in/terms.pdf", PDF, "application/pdf"))
    png, pdf = hashlib.sha256(PNG).hexdigest(), hashlib.sha256(PDF).hexdigest()

    record = run_prompt(runtime, served, "check the receipt")
    assert record.result and record.result["text"] == f"/in/receipt.png image/png {png[:12]}; /in/terms.pdf application/pdf {pdf[:12]}"
    (entry, _), = asyncio.run(runtime.list_children(INST.agent, INST.id))
    copied = asyncio.run(runtime.read_file(entry.child.agent, entry.child.id, "/in/receipt.png"))
    assert copied[0].sha256 == png and copied[1] == PNG, "the child has its own copy"

    admitted = asyncio.run(runtime.dispatch(INST.agent, INST.id, {"go": True}))
    served.until(served.settled(INST, admitted.record.id))
    done = served.record(INST, admitted.record.id)
    assert done.result and done.result["text"] == (
        f"/attachments/{png[:16]}.png image/png {png[:12]}; /in/terms.pdf application/pdf {pdf[:12]}"
    )
    stored = json.dumps([s.model_dump(mode="json") for s in asyncio.run(runtime.stores.ledger.list_submissions(INST))])
    assert "PNG" not in stored and "%PDF" not in stored, "bytes never enter the ledger"
