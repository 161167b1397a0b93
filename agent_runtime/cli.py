"""`agent-runtime`: run the local stack, talk to agents, synthesize the stack.

    agent-runtime dev [--port 8787] [--ws-port 8788] [--agents agents/] [--state .agent-runtime]
    agent-runtime send NAME ID MESSAGE [--session S] [--no-wait] [--attach PATH]... [--attach-file FILE]... [--url URL]
    agent-runtime chat NAME ID [--session S] [--attach PATH]... [--attach-file FILE]... [--url URL] [--ws-url WS_URL]
    agent-runtime status NAME ID SUBMISSION [--url URL]
    agent-runtime put-file NAME ID PATH LOCAL_FILE [--type MEDIA_TYPE] [--url URL]
    agent-runtime files NAME ID [--prefix P] [--url URL]
    agent-runtime get-file NAME ID PATH [-o OUT] [--url URL]
    agent-runtime rm-file NAME ID PATH [--url URL]
    agent-runtime variables NAME ID [--url URL]
    agent-runtime set-variable NAME ID VAR (VALUE | --from-env ENVNAME | --stdin) [--url URL]
    agent-runtime unset-variable NAME ID VAR [--url URL]
    agent-runtime synth

`--url` (or ``AGENT_RUNTIME_URL``) points every command but dev and synth at a deployed
HTTP API; the default is the local stack. Commands exit 0 on success, 1 when the API
refuses (the error on stderr) or cannot be reached, 2 on a usage error.

`chat` streams the answer as it is written when it knows the WebSocket API: `--ws-url`
(or ``AGENT_RUNTIME_WS_URL``; the stack's ``WebSocketUrl`` output), or the local stack's
when `--url` is the local default. Otherwise, or when the WebSocket API refuses it (an
agent without a ``websocket`` hook), it prompts over HTTP and prints each answer whole.

Files: PATH is the file's path in the instance (``/attachments/receipt.png``). `put-file`
sends a big file (over 4 MiB) straight to S3 through a presigned upload; a PATH ending in
``/`` takes LOCAL_FILE's name. `get-file` writes the bytes, untouched, to OUT or to
standard output. `--attach PATH` attaches a file the instance has; `--attach-file FILE`
uploads a local file to ``/attachments/<its name>`` first (replacing one there). `chat`
sends them with its first message (over HTTP: a WebSocket prompt carries no attachments).

Variables: `set-variable` takes the value from the command line, from an environment
variable (`--from-env`) or from standard input (`--stdin`, read without echo at a
terminal), so that a secret need not appear on a command line (the shell's history, the
process list). A secret's value is never printed: the API never returns it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_runtime.client import AgentClient, AgentClientError, AsyncAgentClient, Connection
    from agent_runtime.events import Event
    from agent_runtime.protocol_files import FileView, VariableView

DEFAULT_URL = "http://127.0.0.1:8787"
ENV_URL = "AGENT_RUNTIME_URL"
#: `agent_runtime.client.ENV_WS_URL`
ENV_WS_URL = "AGENT_RUNTIME_WS_URL"
#: Where `agent-runtime dev` serves its WebSocket API: the port after the HTTP API's,
#: stage ``local`` (`agent_runtime.dev.stack.LocalStack`).
DEFAULT_WS_URL = "ws://127.0.0.1:8788/local"
#: How long `send` and `chat` follow a submission still running after the HTTP API's bound.
FOLLOW_SECONDS = 600.0
#: Where `--attach-file` puts a local file in the instance: this folder, under its own name.
ATTACHMENTS_FOLDER = "/attachments/"


def _client(url: str) -> AgentClient:
    from agent_runtime.client import AgentClient

    return AgentClient(url)


def _fail(exc: AgentClientError) -> int:
    print(f"error {exc.status} {exc.type}: {exc.message}", file=sys.stderr)
    return 1


def _print_outcome(body: dict[str, Any]) -> int:
    submission = body["submission"]
    if body.get("result") is not None:
        result = body["result"]
        print(result["text"])
        if result.get("data") is not None:
            print(json.dumps(result["data"], indent=2))
        return 0
    if submission["status"] != "settled":
        print(f"{submission['id']} {submission['status']}")
        return 0
    print(f"{submission['id']} {submission['outcome']}: {json.dumps(submission.get('error'))}", file=sys.stderr)
    return 1


def _prompt(
    client: AgentClient,
    name: str,
    instance_id: str,
    message: str,
    session: str,
    wait: float,
    attachments: Sequence[str] = (),
) -> int:
    from agent_runtime.client import AgentClientError

    try:
        reply = client.prompt(name, instance_id, message, session=session, wait=wait, attachments=attachments)
        if wait == 0:
            # --no-wait: the submission, even when a quick worker has settled it already.
            print(f"{reply.submission.id} {reply.submission.status}")
            return 0
        if reply.submission.status != "settled":
            # Still running after the HTTP API's bound: poll the submission until it settles.
            submission = client.wait(name, instance_id, reply.submission.id, timeout=FOLLOW_SECONDS, poll=0.5)
            body = submission.model_dump(mode="json")
            return _print_outcome({"submission": body, "result": body.get("result")})
    except AgentClientError as exc:
        return _fail(exc)
    return _print_outcome(reply.model_dump(mode="json"))


# --- chat, streaming over WebSocket --------------------------------------------------------


class _Printer:
    """Prints one submission's events as they come: text as it streams, a line per tool
    call, a newline at the end. `show` returns the exit status once the run has ended."""

    def __init__(self, submission_id: str) -> None:
        self.submission_id = submission_id
        self.at_line_start = True
        self.streamed = False

    def _line(self, text: str) -> None:
        if not self.at_line_start:
            print()
        print(text, flush=True)
        self.at_line_start = True

    def show(self, event: Event) -> int | None:
        if event.submission_id != self.submission_id:
            return None
        if event.type == "text_delta" and event.text:
            print(event.text, end="", flush=True)
            self.at_line_start, self.streamed = event.text.endswith("\n"), True
        elif event.type == "tool_start":
            arguments = json.dumps(event.arguments, ensure_ascii=False)
            self._line(f"[tool] {event.name} {arguments[:200]}")
        elif event.type == "tool_call" and event.status != "ok":
            self._line(f"[tool] {event.name} {event.status}: {(event.error or '')[:200]}")
        elif event.type == "error" and event.retrying:
            self._line(f"[retrying after {event.error.get('type', 'an error')}]")
        elif event.type == "agent_end":
            result = event.result or {}
            if not self.streamed and result.get("text"):
                print(result["text"], end="")
                self.at_line_start = str(result["text"]).endswith("\n")
            if not self.at_line_start:
                print(flush=True)
            if result.get("data") is not None:
                print(json.dumps(result["data"], indent=2))
            if event.outcome.value != "completed":
                print(f"{self.submission_id} {event.outcome.value}: {json.dumps(event.error)}", file=sys.stderr)
                return 1
            return 0
        return None


async def _read_line(prompt: str) -> str | None:
    """`input(prompt)` without blocking the event loop, on a daemon thread so that Ctrl-C
    is not held up by a read in progress; None at end of input."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str | None] = loop.create_future()

    def settle(line: str | None, error: Exception | None) -> None:
        if answer.done():
            return
        if error is not None:
            answer.set_exception(error)
        else:
            answer.set_result(line)

    def read() -> None:
        line: str | None = None
        error: Exception | None = None
        try:
            line = input(prompt)
        except EOFError:
            pass
        except Exception as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, line, error)

    threading.Thread(target=read, name="chat-input", daemon=True).start()
    return await answer


async def _converse(
    connection: Connection, session: str, client: AsyncAgentClient | None = None, attachments: Sequence[str] = ()
) -> int:
    """Prompt with each line read and print its events. A WebSocket prompt carries no
    attachments: the first line, when there are some, is sent over HTTP (through `client`)
    and its events still come over the connection, which is subscribed already."""
    from agent_runtime.client import AgentClientError, ConnectionLost

    while True:
        line = await _read_line("> ")
        if line is None:
            print()
            return 0
        if not line.strip():
            continue
        try:
            if attachments and client is not None:
                first, attachments = attachments, ()
                reply = await client.prompt(
                    connection.name, connection.instance_id, line.strip(), session=session, wait=0, attachments=first
                )
                submission = reply.submission
            else:
                submission = await connection.prompt(line.strip(), session=session)
            printer = _Printer(submission.id)
            async for event in connection:
                if printer.show(event) is not None:
                    break
        except ConnectionLost as exc:
            return _fail(exc)
        except AgentClientError as exc:
            _fail(exc)
        except TimeoutError:
            print("error: the WebSocket API did not accept the prompt in time", file=sys.stderr)


async def _chat_streaming(
    args: argparse.Namespace, ws_url: str, *, explicit: bool, attachments: Sequence[str] = ()
) -> int | None:
    """Chat over WebSocket; None when the connection cannot be opened (use HTTP)."""
    from agent_runtime.client import AsyncAgentClient

    async with AsyncAgentClient(args.url, ws_url=ws_url) as client:
        connection = client.connect(args.name, args.id, session=args.session)
        try:
            await connection.open()
        except Exception as exc:  # refused, unreachable, or no websockets package
            if explicit:
                print(f"cannot stream from {ws_url} ({exc}); answers come whole over HTTP", file=sys.stderr)
            return None
        try:
            print(f"chatting with {args.name}/{args.id} at {args.url}, streaming from {ws_url} (Ctrl-D to quit)")
            return await _converse(connection, args.session, client, attachments)
        finally:
            await connection.close()


def cmd_dev(args: argparse.Namespace) -> int:
    from agent_runtime.dev.stack import run_dev

    run_dev(port=args.port, agents_dir=args.agents, state_dir=args.state, websocket_port=args.ws_port)
    return 0


def _attachments(client: AgentClient, args: argparse.Namespace) -> list[str] | None:
    """The paths to attach: `--attach` as given, then each `--attach-file` once uploaded
    (None when an upload is refused: the error is printed)."""
    from agent_runtime.client import AgentClientError

    paths = list(args.attach)
    for local in args.attach_file:
        try:
            paths.append(_upload(client, args.name, args.id, ATTACHMENTS_FOLDER, Path(local), None).path)
        except AgentClientError as exc:
            _fail(exc)
            return None
    return paths


def cmd_send(args: argparse.Namespace) -> int:
    with _client(args.url) as client:
        attachments = _attachments(client, args)
        if attachments is None:
            return 1
        return _prompt(client, args.name, args.id, args.message, args.session, 0 if args.no_wait else 25, attachments)


def cmd_chat(args: argparse.Namespace) -> int:
    with _client(args.url) as client:
        attachments = _attachments(client, args)
    if attachments is None:
        return 1
    ws_url = args.ws_url or (DEFAULT_WS_URL if args.url.rstrip("/") == DEFAULT_URL else None)
    if ws_url:
        streamed = asyncio.run(_chat_streaming(args, ws_url, explicit=bool(args.ws_url), attachments=attachments))
        if streamed is not None:
            return streamed
    print(f"chatting with {args.name}/{args.id} at {args.url} (Ctrl-D to quit)")
    with _client(args.url) as client:
        while True:
            try:
                line = input("> ").strip()
            except EOFError:
                print()
                return 0
            if line:
                _prompt(client, args.name, args.id, line, args.session, 25, attachments)
                attachments = []  # they go with the first message


def cmd_status(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            submission = client.submission(args.name, args.id, args.submission)
        except AgentClientError as exc:
            return _fail(exc)
        print(json.dumps(submission.model_dump(mode="json"), indent=2))
        return 0


# --- files and variables -------------------------------------------------------------------


def _upload(client: AgentClient, name: str, instance_id: str, path: str, local: Path, media_type: str | None) -> FileView:
    """Send a local file to `path` (to ``path + its name`` when `path` ends with ``/``):
    through the API up to `FILE_BODY_MAX_BYTES`, else streamed to S3 from the file."""
    from agent_runtime.protocol_files import FILE_BODY_MAX_BYTES

    if path.endswith("/"):
        path += local.name
    with local.open("rb") as file:
        if os.fstat(file.fileno()).st_size > FILE_BODY_MAX_BYTES:
            return client.upload_file(name, instance_id, path, file, media_type=media_type)
        return client.put_file(name, instance_id, path, file.read(), media_type=media_type)


def _file_line(view: FileView) -> str:
    return f"{view.size:>12}  {view.updated_at}  {view.media_type:<28}  {view.path}"


def _variable_line(view: VariableView) -> str:
    if view.secret:
        shown = "(hidden)" if view.set else "-"
    else:
        shown = json.dumps(view.value, ensure_ascii=False) if view.value is not None else "-"
    state = "set" if view.set else "default" if view.value is not None else "unset"
    kind = "secret" if view.secret else "plain"
    return f"{view.name:<24}  {kind:<6}  {'required' if view.required else 'optional':<8}  {state:<7}  {shown}"


def cmd_put_file(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            view = _upload(client, args.name, args.id, args.path, Path(args.local_file), args.type)
        except AgentClientError as exc:
            return _fail(exc)
        print(f"{view.path}  {view.size} bytes  {view.media_type}  sha256:{view.sha256}")
        return 0


def cmd_files(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            for view in client.iter_files(args.name, args.id, args.prefix):
                print(_file_line(view))
        except AgentClientError as exc:
            return _fail(exc)
        return 0


def cmd_get_file(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            data = client.get_file(args.name, args.id, args.path)
        except AgentClientError as exc:
            return _fail(exc)
    if args.output is None or args.output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        Path(args.output).write_bytes(data)
        print(f"{len(data)} bytes written to {args.output}", file=sys.stderr)
    return 0


def cmd_rm_file(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            client.delete_file(args.name, args.id, args.path)
        except AgentClientError as exc:
            return _fail(exc)
        return 0


def cmd_variables(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            listed = client.variables(args.name, args.id)
        except AgentClientError as exc:
            return _fail(exc)
    for view in listed.variables:
        print(_variable_line(view))
    return 0


def _variable_value(args: argparse.Namespace) -> str | None:
    """The value from where `set-variable` was told to take it (None: not there)."""
    if args.from_env is not None:
        value = os.environ.get(args.from_env)
        if value is None:
            print(f"error: the environment variable {args.from_env} is not set", file=sys.stderr)
        return value
    if args.stdin:
        if sys.stdin.isatty():
            return getpass.getpass(f"{args.variable}: ")
        text = sys.stdin.read()
        return text.removesuffix("\n").removesuffix("\r")  # the line end `echo` or a file adds
    return str(args.value)


def cmd_set_variable(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    value = _variable_value(args)
    if value is None:
        return 1
    with _client(args.url) as client:
        try:
            view = client.set_variable(args.name, args.id, args.variable, value)
        except AgentClientError as exc:
            return _fail(exc)
    print(_variable_line(view))
    if view.secret and args.value is not None:
        hint = "a secret on the command line stays in the shell's history: next time use --from-env or --stdin"
        print(f"note: {hint}", file=sys.stderr)
    return 0


def cmd_unset_variable(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            client.delete_variable(args.name, args.id, args.variable)
        except AgentClientError as exc:
            return _fail(exc)
        return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from infra.checks import run_checks

    return run_checks()


def _attach_arguments(command: argparse.ArgumentParser, what: str) -> None:
    command.add_argument(
        "--attach", action="append", default=[], metavar="PATH", help=f"attach the instance's file at PATH to {what}"
    )
    command.add_argument(
        "--attach-file",
        action="append",
        default=[],
        metavar="FILE",
        help=f"upload a local file to {ATTACHMENTS_FOLDER}<its name> and attach it to {what}",
    )


def _instance_command(commands: Any, name: str, help: str, url: str) -> argparse.ArgumentParser:
    command: argparse.ArgumentParser = commands.add_parser(name, help=help)
    command.add_argument("name")
    command.add_argument("id")
    command.add_argument("--url", default=url)
    return command


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="agent-runtime", description="Durable AI agents on AWS serverless.")
    commands = root.add_subparsers(dest="command", required=True)
    url = os.environ.get(ENV_URL, DEFAULT_URL)

    dev = commands.add_parser("dev", help="run the local stack (embedded AWS) with the agents folder")
    dev.add_argument("--port", type=int, default=8787, help="the HTTP API's port")
    dev.add_argument("--ws-port", type=int, default=None, help="the WebSocket API's port (default: --port + 1)")
    dev.add_argument("--agents", default="agents")
    dev.add_argument("--state", default=".agent-runtime", help="folder that keeps the local state between runs")
    dev.set_defaults(run=cmd_dev)

    send = commands.add_parser("send", help="send one message and print the answer")
    send.add_argument("name")
    send.add_argument("id")
    send.add_argument("message")
    send.add_argument("--session", default="default")
    send.add_argument("--no-wait", action="store_true", help="print the submission id and return")
    _attach_arguments(send, "the message")
    send.add_argument("--url", default=url)
    send.set_defaults(run=cmd_send)

    chat = commands.add_parser("chat", help="an interactive conversation with one instance")
    chat.add_argument("name")
    chat.add_argument("id")
    chat.add_argument("--session", default="default")
    _attach_arguments(chat, "the first message")
    chat.add_argument("--url", default=url)
    chat.add_argument(
        "--ws-url",
        default=os.environ.get(ENV_WS_URL) or None,
        help="the WebSocket API to stream answers from (default: $AGENT_RUNTIME_WS_URL, or the local stack's)",
    )
    chat.set_defaults(run=cmd_chat)

    status = commands.add_parser("status", help="show one submission")
    status.add_argument("name")
    status.add_argument("id")
    status.add_argument("submission")
    status.add_argument("--url", default=url)
    status.set_defaults(run=cmd_status)

    put_file = _instance_command(commands, "put-file", "write a file of the instance from a local file", url)
    put_file.add_argument("path", help="the file's path in the instance, like /attachments/receipt.png")
    put_file.add_argument("local_file")
    put_file.add_argument("--type", help="its media type (default: guessed from PATH's extension)")
    put_file.set_defaults(run=cmd_put_file)

    files = _instance_command(commands, "files", "list the instance's files", url)
    files.add_argument("--prefix", default="/", help="only the files under this folder")
    files.set_defaults(run=cmd_files)

    get_file = _instance_command(commands, "get-file", "write a file of the instance to OUT or standard output", url)
    get_file.add_argument("path")
    get_file.add_argument("-o", "--output", metavar="OUT", help="the local file to write (default: standard output)")
    get_file.set_defaults(run=cmd_get_file)

    rm_file = _instance_command(commands, "rm-file", "delete a file of the instance", url)
    rm_file.add_argument("path")
    rm_file.set_defaults(run=cmd_rm_file)

    variables = _instance_command(commands, "variables", "list the instance's variables (never a secret's value)", url)
    variables.set_defaults(run=cmd_variables)

    set_variable = _instance_command(commands, "set-variable", "set a variable of the instance", url)
    set_variable.add_argument("variable")
    source = set_variable.add_mutually_exclusive_group(required=True)
    source.add_argument("value", nargs="?", help="the value (a secret's is better given with --from-env or --stdin)")
    source.add_argument("--from-env", metavar="ENVNAME", help="take the value from this environment variable")
    source.add_argument("--stdin", action="store_true", help="read the value from standard input (no echo at a terminal)")
    set_variable.set_defaults(run=cmd_set_variable)

    unset_variable = _instance_command(commands, "unset-variable", "unset a variable of the instance", url)
    unset_variable.add_argument("variable")
    unset_variable.set_defaults(run=cmd_unset_variable)

    synth = commands.add_parser("synth", help="synthesize the CDK stack and run cfn-lint and cdk-nag")
    synth.set_defaults(run=cmd_synth)
    return root


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        import httpx

        if isinstance(exc, httpx.TransportError):  # the API is unreachable: not a bug here
            print(f"error: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
