"""The file tools an agent opts into (``file_tools=True`` or a list of their names):

    read_file(path, offset=0, max_chars=20000)   a text file's content, a window of it at a time
    write_file(path, content, media_type=None)   create or replace a text file
    list_files(prefix="/", after=None)           paths, sizes and types, a page at a time
    grep_files(pattern, prefix="/")              matching lines of the text files
    find_files(glob)                             paths matching a glob (``/**/*.md``)

Every answer is bounded for the model and says when it is cut and how to get the rest.
Writes are the attempt's (fenced, like a tool's `ctx.files`). A mistake (a bad path, a
missing file, a bad regex) is a tool error the model reads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent_runtime.errors import AgentRuntimeError, LedgerError
from agent_runtime.files import FileInfo, is_text
from agent_runtime.loop.builtins import Builtin, CallContext, Handled, PlainFamily
from agent_runtime.loop.builtins.task import validated
from agent_runtime.loop.context import FilesView
from agent_runtime.loop.tools import error_result
from agent_runtime.messages import ToolCallPart, ToolResultPart
from agent_runtime.models.base import ToolSpec

READ_MAX_CHARS = 100_000
LIST_PAGE = 200
GREP_LIMIT = 100
FIND_LIMIT = 200


class _Args(BaseModel):
    model_config = ConfigDict(defer_build=True, extra="forbid")


class ReadArgs(_Args):
    path: str = Field(description="The file's absolute path, like /notes/summary.md.")
    offset: int = Field(0, ge=0, description="The first character to return.")
    max_chars: int = Field(20_000, ge=1, le=READ_MAX_CHARS, description="At most this many characters.")


class WriteArgs(_Args):
    path: str = Field(description="The file's absolute path, like /notes/summary.md.")
    content: str = Field(description="The whole text of the file.")
    media_type: str | None = Field(None, description="For example text/markdown; guessed from the name when left out.")


class ListArgs(_Args):
    prefix: str = Field("/", description="A folder, like /attachments.")
    after: str | None = Field(None, description="The last path of the previous page.")


class GrepArgs(_Args):
    pattern: str = Field(description="A Python regular expression.")
    prefix: str = Field("/", description="Only files under this folder.")


class FindArgs(_Args):
    glob: str = Field(description="* and ? within a name, ** across folders: /attachments/*.png, /**/*.md")


def _size(info: FileInfo) -> str:
    return f"{info.path} ({info.media_type}, {info.size} bytes)"


async def _read(files: FilesView, args: ReadArgs) -> str:
    info = await files.stat(args.path)
    if info is None:
        raise _Refused(f"no file {args.path}")
    if not is_text(info.media_type):
        return f"{_size(info)} is not a text file; attach it to a message or hand it to a tool that reads it"
    text = (await files.read(args.path)).decode("utf-8", errors="replace")
    window = text[args.offset : args.offset + args.max_chars]
    end = args.offset + len(window)
    if end < len(text):
        return f"{window}\n[characters {args.offset}-{end} of {len(text)}; read on with offset={end}]"
    return window


async def _write(files: FilesView, args: WriteArgs) -> str:
    info = await files.write(args.path, args.content, media_type=args.media_type)
    return f"wrote {_size(info)}"


async def _list(files: FilesView, args: ListArgs) -> str:
    page = await files.page(args.prefix, after=args.after, limit=LIST_PAGE)
    lines = [_size(f) for f in page.files] or [f"no files under {args.prefix}"]
    if page.next_after:
        lines.append(f"[more: call list_files again with after={page.next_after!r}]")
    return "\n".join(lines)


async def _grep(files: FilesView, args: GrepArgs) -> str:
    matches = await files.grep(args.pattern, prefix=args.prefix, limit=GREP_LIMIT + 1)
    lines = [f"{m.path}:{m.line}: {m.text}" for m in matches[:GREP_LIMIT]] or ["no matches"]
    if len(matches) > GREP_LIMIT:
        lines.append(f"[only the first {GREP_LIMIT} matches; narrow the pattern or the prefix]")
    return "\n".join(lines)


async def _find(files: FilesView, args: FindArgs) -> str:
    found = await files.find(args.glob, limit=FIND_LIMIT + 1)
    lines = [_size(f) for f in found[:FIND_LIMIT]] or ["no files match"]
    if len(found) > FIND_LIMIT:
        lines.append(f"[only the first {FIND_LIMIT}; narrow the glob]")
    return "\n".join(lines)


class _Refused(Exception):
    pass


_TOOLS: dict[str, tuple[str, type[_Args], Callable[[FilesView, Any], Awaitable[str]]]] = {
    "read_file": ("Read a text file of this conversation's files, a window at a time.", ReadArgs, _read),
    "write_file": ("Create or replace a text file of this conversation's files.", WriteArgs, _write),
    "list_files": ("List this conversation's files under a folder.", ListArgs, _list),
    "grep_files": ("Search the text files for lines matching a regular expression.", GrepArgs, _grep),
    "find_files": ("Find files whose path matches a glob.", FindArgs, _find),
}


class FileTool:
    silent = False

    def __init__(self, name: str) -> None:
        description, self.arguments, self.run = _TOOLS[name]
        schema = self.arguments.model_json_schema()
        schema.pop("title", None)
        self.spec = ToolSpec(name=name, description=description, parameters=schema)

    async def call(self, call: ToolCallPart, ctx: CallContext) -> Handled:
        args = validated(self.arguments, call)
        if isinstance(args, Handled):
            return args
        files = FilesView(ctx.stores, ctx.fence, ctx.clock)
        try:
            content = await self.run(files, args)
        except LedgerError:
            raise  # the attempt lost its submission: not the model's business
        except (_Refused, AgentRuntimeError) as exc:
            message = exc.message if isinstance(exc, AgentRuntimeError) else str(exc)
            return Handled(error_result(call, message))
        return Handled(ToolResultPart(call_id=call.id, name=call.name, content=content))


class FilesFamily(PlainFamily):
    def __init__(self, names: Sequence[str]) -> None:
        self.tools = [FileTool(name) for name in names]

    def builtins(self) -> Sequence[Builtin]:
        return self.tools
