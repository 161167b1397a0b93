"""`agent-runtime`: run the local stack, talk to agents, synthesize the stack.

    agent-runtime dev [--port 8787] [--agents agents/] [--state .agent-runtime]
    agent-runtime send NAME ID MESSAGE [--session S] [--no-wait] [--url URL]
    agent-runtime chat NAME ID [--session S] [--url URL]
    agent-runtime status NAME ID SUBMISSION [--url URL]
    agent-runtime synth

`--url` (or ``AGENT_RUNTIME_URL``) points send/chat/status at a deployed HTTP API;
the default is the local stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

DEFAULT_URL = "http://127.0.0.1:8787"
ENV_URL = "AGENT_RUNTIME_URL"


def _client(url: str) -> Any:
    import httpx

    return httpx.Client(base_url=url.rstrip("/"), timeout=httpx.Timeout(35.0, connect=5.0))


def _fail(response: Any) -> int:
    try:
        error = response.json()["error"]
        print(f"error {response.status_code} {error['type']}: {error['message']}", file=sys.stderr)
    except Exception:
        print(f"error {response.status_code}: {response.text[:500]}", file=sys.stderr)
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


def _prompt(client: Any, name: str, instance_id: str, message: str, session: str, wait: float) -> int:
    response = client.post(f"/agents/{name}/{instance_id}", json={"message": message, "session": session, "wait": wait})
    if response.status_code not in (200, 202):
        return _fail(response)
    body = response.json()
    deadline = time.monotonic() + 600
    while wait > 0 and response.status_code == 202 and time.monotonic() < deadline:
        # Still running after the HTTP API's bound: poll the submission until it settles.
        time.sleep(0.5)
        poll = client.get(f"/agents/{name}/{instance_id}/submissions/{body['submission']['id']}")
        if poll.status_code != 200:
            return _fail(poll)
        if poll.json()["status"] == "settled":
            submission = poll.json()
            return _print_outcome({"submission": submission, "result": submission.get("result")})
    return _print_outcome(body)


def cmd_dev(args: argparse.Namespace) -> int:
    from agent_runtime.dev.stack import run_dev

    run_dev(port=args.port, agents_dir=args.agents, state_dir=args.state)
    return 0


def cmd_send(args: argparse.Namespace) -> int:
    with _client(args.url) as client:
        return _prompt(client, args.name, args.id, args.message, args.session, 0 if args.no_wait else 25)


def cmd_chat(args: argparse.Namespace) -> int:
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
    with _client(args.url) as client:
        response = client.get(f"/agents/{args.name}/{args.id}/submissions/{args.submission}")
        if response.status_code != 200:
            return _fail(response)
        print(json.dumps(response.json(), indent=2))
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


if __name__ == "__main__":
    sys.exit(main())
