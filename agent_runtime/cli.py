"""`agent-runtime`: run the local stack, talk to agents, synthesize the stack.

    agent-runtime dev [--port 8787] [--agents agents/] [--state .agent-runtime]
    agent-runtime send NAME ID MESSAGE [--session S] [--no-wait] [--url URL]
    agent-runtime chat NAME ID [--session S] [--url URL] [--ws-url WS_URL]
    agent-runtime status NAME ID SUBMISSION [--url URL]
    agent-runtime synth

`--url` (or ``AGENT_RUNTIME_URL``) points send/chat/status at a deployed HTTP API;
the default is the local stack. `chat` streams the answer as it is written when it knows
the WebSocket API: `--ws-url` (or ``AGENT_RUNTIME_WS_URL``; the stack's ``WebSocketUrl``
output), or the local stack's when `--url` is the local default. Otherwise, or when the
WebSocket API refuses it (an agent without a ``websocket`` hook), it prompts over HTTP and
prints each answer whole.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_runtime.client import AgentClient, AgentClientError, Connection
    from agent_runtime.events import Event

DEFAULT_URL = "http://127.0.0.1:8787"
ENV_URL = "AGENT_RUNTIME_URL"
#: `agent_runtime.client.ENV_WS_URL`
ENV_WS_URL = "AGENT_RUNTIME_WS_URL"
#: Where `agent-runtime dev` serves its WebSocket API: the port after the HTTP API's,
#: stage ``local`` (`agent_runtime.dev.stack.LocalStack`).
DEFAULT_WS_URL = "ws://127.0.0.1:8788/local"
#: How long `send` and `chat` follow a submission still running after the HTTP API's bound.
FOLLOW_SECONDS = 600.0


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


def _prompt(client: AgentClient, name: str, instance_id: str, message: str, session: str, wait: float) -> int:
    from agent_runtime.client import AgentClientError

    try:
        reply = client.prompt(name, instance_id, message, session=session, wait=wait)
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


async def _converse(connection: Connection, session: str) -> int:
    from agent_runtime.client import AgentClientError, ConnectionLost

    while True:
        line = await _read_line("> ")
        if line is None:
            print()
            return 0
        if not line.strip():
            continue
        try:
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


async def _chat_streaming(args: argparse.Namespace, ws_url: str, *, explicit: bool) -> int | None:
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
            return await _converse(connection, args.session)
        finally:
            await connection.close()


def cmd_dev(args: argparse.Namespace) -> int:
    from agent_runtime.dev.stack import run_dev

    run_dev(port=args.port, agents_dir=args.agents, state_dir=args.state)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    with _client(args.url) as client:
        return _prompt(client, args.name, args.id, args.message, args.session, 0 if args.no_wait else 25)


def cmd_chat(args: argparse.Namespace) -> int:
    ws_url = args.ws_url or (DEFAULT_WS_URL if args.url.rstrip("/") == DEFAULT_URL else None)
    if ws_url:
        streamed = asyncio.run(_chat_streaming(args, ws_url, explicit=bool(args.ws_url)))
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
                _prompt(client, args.name, args.id, line, args.session, 25)


def cmd_status(args: argparse.Namespace) -> int:
    from agent_runtime.client import AgentClientError

    with _client(args.url) as client:
        try:
            submission = client.submission(args.name, args.id, args.submission)
        except AgentClientError as exc:
            return _fail(exc)
        print(json.dumps(submission.model_dump(mode="json"), indent=2))
        return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from infra.checks import run_checks

    return run_checks()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="agent-runtime", description="Durable AI agents on AWS serverless.")
    commands = root.add_subparsers(dest="command", required=True)
    url = os.environ.get(ENV_URL, DEFAULT_URL)

    dev = commands.add_parser("dev", help="run the local stack (embedded AWS) with the agents folder")
    dev.add_argument("--port", type=int, default=8787)
    dev.add_argument("--agents", default="agents")
    dev.add_argument("--state", default=".agent-runtime", help="folder that keeps the local state between runs")
    dev.set_defaults(run=cmd_dev)

    send = commands.add_parser("send", help="send one message and print the answer")
    send.add_argument("name")
    send.add_argument("id")
    send.add_argument("message")
    send.add_argument("--session", default="default")
    send.add_argument("--no-wait", action="store_true", help="print the submission id and return")
    send.add_argument("--url", default=url)
    send.set_defaults(run=cmd_send)

    chat = commands.add_parser("chat", help="an interactive conversation with one instance")
    chat.add_argument("name")
    chat.add_argument("id")
    chat.add_argument("--session", default="default")
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
