"""End to end over the local stack: real HTTP into the deployed handlers, real SQS wake-ups.

Every request goes through the API Gateway emulator to ``functions.http_api``, every
submission runs in ``functions.worker`` called by the SQS poller, both in child-process
execution environments, against moto on loopback. Nothing here waits a fixed time: each
wait polls the HTTP API until a condition holds or a deadline passes.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_runtime.protocol import MAX_BODY_BYTES, MAX_WAIT_SECONDS
from tests.e2e.conftest import AGENTS

ROOT = Path(__file__).resolve().parents[2]
#: How long a condition may take to hold before the test fails (a loaded machine is slow).
DEADLINE = 30.0
Json = dict[str, Any]


# --- helpers --------------------------------------------------------------------------


def eventually(check: Callable[[], Any], *, what: str, timeout: float = DEADLINE) -> Any:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


def ok(response: httpx.Response, status: int = 200) -> Json:
    assert response.status_code == status, (response.status_code, response.text)
    body: Json = response.json()
    return body


def submission_path(name: str, instance: str, submission_id: str) -> str:
    return f"/agents/{name}/{instance}/submissions/{submission_id}"


def get_submission(client: httpx.Client, path: str) -> Json:
    return ok(client.get(path))


def settled(client: httpx.Client, path: str, *, timeout: float = DEADLINE) -> Json:
    """The submission at `path` once it has settled."""

    def check() -> Json | None:
        body = get_submission(client, path)
        return body if body["status"] == "settled" else None

    result: Json = eventually(check, what=f"{path} to settle", timeout=timeout)
    return result


def prompt(client: httpx.Client, name: str, instance: str, message: str, **fields: Any) -> httpx.Response:
    return client.post(f"/agents/{name}/{instance}", json={"message": message, **fields})


def admitted(client: httpx.Client, name: str, instance: str, message: str, **fields: Any) -> Json:
    """Prompt without waiting; the queued (or already running) submission."""
    response = prompt(client, name, instance, message, wait=0, **fields)
    assert response.status_code in (200, 202), response.text
    submission: Json = response.json()["submission"]
    return submission


def all_messages(client: httpx.Client, name: str, instance: str, session: str, *, limit: int) -> list[Json]:
    """A session's whole history, read page by page through `next_cursor`."""
    messages: list[Json] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, str | int] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        page = ok(client.get(f"/agents/{name}/{instance}/sessions/{session}/messages", params=params))
        assert len(page["messages"]) <= limit
        messages.extend(page["messages"])
        cursor = page["next_cursor"]
        if cursor is None:
            return messages
    raise AssertionError("history paging never ended")


def wait_until_started(gate: Path) -> None:
    """Until the `gated` agent's tool runs, blocked on `gate` (see ``agents/gated.py``)."""
    marker = Path(f"{gate}.started")
    eventually(marker.exists, what=f"the gated tool to start ({marker.name})")


def assert_error(response: httpx.Response, status: int, error_type: str) -> Json:
    """The error shape every failure has: ``{"error": {"type", "message", "details"?}}``."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error: Json = body["error"]
    assert set(error) <= {"type", "message", "details"} and {"type", "message"} <= set(error)
    assert error["type"] == error_type
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error.get("details", {}), dict)
    return error


# --- prompts --------------------------------------------------------------------------


def test_prompt_returns_the_settled_result(client: httpx.Client, instance: str) -> None:
    body = ok(prompt(client, "echo", instance, "hello there"))

    submission = body["submission"]
    assert (submission["status"], submission["outcome"], submission["kind"]) == ("settled", "completed", "direct")
    assert (submission["sequence"], submission["session"], submission["attempts"]) == (0, "default", 1)
    assert body["result"]["text"] == "echo: hello there"
    assert body["result"] == submission["result"]
    assert submission["error"] is None
    assert submission["accepted_at"] <= submission["started_at"] <= submission["settled_at"]
    # The submission reads back the same by id.
    assert get_submission(client, submission_path("echo", instance, submission["id"])) == submission


def test_wait_zero_answers_202_and_the_location_settles(
    client: httpx.Client, instance: str, tmp_path: Path
) -> None:
    # A gated submission cannot settle before the test opens its gate: the 202 is certain.
    opened = tmp_path / "gate"
    try:
        response = prompt(client, "gated", instance, f"gate:{opened}", wait=0)

        body = ok(response, 202)
        submission = body["submission"]
        assert "result" not in body
        assert submission["status"] in ("queued", "running")
        location = response.headers["location"]
        assert location == submission_path("gated", instance, submission["id"])
        wait_until_started(opened)
        assert get_submission(client, location)["status"] == "running"
    finally:
        opened.touch()
    final = settled(client, location)
    assert (final["outcome"], final["result"]["text"]) == ("completed", "passed: opened")


def _messages_of(per_thread: list[list[Json]], threads: int, total: int) -> Iterator[tuple[Json, str]]:
    for thread, mine in enumerate(per_thread):
        for submission, n in zip(mine, range(thread, total, threads), strict=True):
            yield submission, f"t{thread} m{n}"


def test_concurrent_prompts_to_one_instance_run_one_at_a_time_in_order(
    client: httpx.Client, instance: str
) -> None:
    threads, total = 8, 50

    def submit(thread: int) -> list[Json]:
        # Each thread sends its share one after another: its own order must be kept.
        return [
            admitted(client, "echo", instance, f"t{thread} m{n}")
            for n in range(thread, total, threads)
        ]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        per_thread = list(pool.map(submit, range(threads)))

    sent = [s for mine in per_thread for s in mine]
    assert len(sent) == total
    for mine in per_thread:
        sequences = [s["sequence"] for s in mine]
        assert sequences == sorted(sequences), "a thread's prompts were admitted out of its order"
    done = sorted(
        (settled(client, submission_path("echo", instance, s["id"])) for s in sent),
        key=lambda s: s["sequence"],
    )
    assert [s["sequence"] for s in done] == list(range(total))  # unique and contiguous
    assert {s["outcome"] for s in done} == {"completed"}
    texts = {s["id"]: s["result"]["text"] for s in done}
    pairs = list(_messages_of(per_thread, threads, total))
    assert [texts[s["id"]] for s, _ in pairs] == [f"echo: {m}" for _, m in pairs]
    for previous, current in itertools.pairwise(done):
        # ISO-8601 UTC with a fixed width compares as text in time order.
        assert current["started_at"] >= previous["settled_at"], (previous, current)


def test_idempotency_key_returns_the_first_submission(client: httpx.Client, instance: str) -> None:
    headers = {"Idempotency-Key": "order-42-confirm"}
    first = client.post(f"/agents/echo/{instance}", json={"message": "confirm order 42"}, headers=headers)
    again = client.post(f"/agents/echo/{instance}", json={"message": "confirm order 42"}, headers=headers)

    one, two = ok(first)["submission"], ok(again)["submission"]
    assert two["id"] == one["id"] and two["sequence"] == one["sequence"] == 0
    assert two["result"]["text"] == "echo: confirm order 42"
    other = client.post(f"/agents/echo/{instance}", json={"message": "something else"}, headers=headers)
    assert_error(other, 409, "conflict")
    # Still only one submission: the next prompt takes the next sequence.
    assert ok(prompt(client, "echo", instance, "next"))["submission"]["sequence"] == 1


def test_dispatch_receipts_are_idempotent_and_conflicts_are_409(client: httpx.Client, instance: str) -> None:
    path = f"/agents/echo/{instance}/dispatch"
    body = {"input": {"order": "A-100", "event": "shipped"}, "dispatch_id": "evt-0001"}

    first = client.post(path, json=body)
    receipt = ok(first, 202)
    assert set(receipt) == {"dispatch_id", "submission_id", "accepted_at"}
    assert receipt["dispatch_id"] == "evt-0001"
    assert first.headers["location"] == submission_path("echo", instance, receipt["submission_id"])
    assert ok(client.post(path, json=body), 202) == receipt

    conflict = client.post(path, json={**body, "input": {"order": "A-100", "event": "returned"}})
    error = assert_error(conflict, 409, "conflict")
    assert "evt-0001" in json.dumps(error)
    done = settled(client, first.headers["location"])
    assert (done["kind"], done["outcome"]) == ("dispatch", "completed")
    assert done["result"]["text"] == 'echo: {"order": "A-100", "event": "shipped"}'


# --- abort ----------------------------------------------------------------------------


def test_abort_stops_the_running_submission_and_with_queued_the_queued_ones(
    client: httpx.Client, instance: str, tmp_path: Path
) -> None:
    abort = f"/agents/gated/{instance}/abort"
    gates = [tmp_path / "first", tmp_path / "second"]
    try:
        assert ok(client.post(abort)) == {"aborted": []}  # nothing runs yet

        # The running one is aborted; the queued one is left to run.
        running = admitted(client, "gated", instance, f"gate:{gates[0]}")
        wait_until_started(gates[0])
        waiting = admitted(client, "gated", instance, "after the first")
        aborted = ok(client.post(abort))["aborted"]
        assert [s["id"] for s in aborted] == [running["id"]]
        assert get_submission(client, submission_path("gated", instance, waiting["id"]))["status"] == "queued"
        gates[0].touch()  # the tool returns; its result is the checkpoint that sees the abort
        first = settled(client, submission_path("gated", instance, running["id"]))
        assert (first["outcome"], first["error"]["type"], first["result"]) == ("aborted", "aborted", None)
        after = settled(client, submission_path("gated", instance, waiting["id"]))
        assert (after["outcome"], after["result"]["text"]) == ("completed", "quick: after the first")

        # With ?queued=true the queued ones end at once, without ever starting.
        running = admitted(client, "gated", instance, f"gate:{gates[1]}")
        wait_until_started(gates[1])
        queued = [admitted(client, "gated", instance, f"queued {n}") for n in range(2)]
        aborted = ok(client.post(abort, params={"queued": "true"}))["aborted"]
        assert sorted(s["id"] for s in aborted) == sorted([running["id"], *(s["id"] for s in queued)])
        for submission in queued:
            now = get_submission(client, submission_path("gated", instance, submission["id"]))
            assert (now["status"], now["outcome"], now["started_at"]) == ("settled", "aborted", None)
        gates[1].touch()
        second = settled(client, submission_path("gated", instance, running["id"]))
        assert second["outcome"] == "aborted"
    finally:
        for path in gates:
            path.touch()  # never leave a worker blocked on a gate

    # The instance goes on serving after its aborts, and its history stays well formed:
    # every tool call the aborted submissions made has its result.
    assert ok(prompt(client, "gated", instance, "still here"))["result"]["text"] == "quick: still here"
    parts = [p for m in all_messages(client, "gated", instance, "default", limit=100) for p in m["parts"]]
    calls = [p["id"] for p in parts if p["type"] == "tool_call"]
    assert len(calls) == 2 and [p["call_id"] for p in parts if p["type"] == "tool_result"] == calls


# --- history --------------------------------------------------------------------------


def test_history_pages_follow_the_cursor_in_order(client: httpx.Client, instance: str) -> None:
    for n in range(4):
        ok(prompt(client, "echo", instance, f"note {n}", session="notes"))
    ok(prompt(client, "echo", instance, "elsewhere"))  # another session stays out of it

    messages = all_messages(client, "echo", instance, "notes", limit=2)

    cursors = [m["cursor"] for m in messages]
    assert len(set(cursors)) == len(cursors) == 8 and cursors == sorted(cursors)
    texts = [(m["role"], m["parts"][0]["text"]) for m in messages]
    assert texts == [
        pair for n in range(4) for pair in (("user", f"note {n}"), ("assistant", f"echo: note {n}"))
    ]
    assert all_messages(client, "echo", instance, "notes", limit=1000) == messages
    assert all_messages(client, "echo", instance, "never-used", limit=5) == []
    bad = client.get(f"/agents/echo/{instance}/sessions/notes/messages", params={"cursor": "not-a-cursor"})
    assert_error(bad, 400, "invalid_request")


# --- errors ---------------------------------------------------------------------------

ERROR_CASES: list[tuple[str, str, str, dict[str, Any], int, str]] = [
    ("malformed-json", "POST", "/agents/echo/{id}", {"content": b'{"message": "hi"'}, 400, "invalid_json"),
    ("not-utf8", "POST", "/agents/echo/{id}", {"content": b'{"message": "\xff"}'}, 400, "invalid_json"),
    ("empty-body", "POST", "/agents/echo/{id}", {"content": b""}, 400, "invalid_request"),
    ("message-not-a-string", "POST", "/agents/echo/{id}", {"json": {"message": 5}}, 400, "invalid_request"),
    ("message-empty", "POST", "/agents/echo/{id}", {"json": {"message": ""}}, 400, "invalid_request"),
    ("body-not-an-object", "POST", "/agents/echo/{id}", {"json": ["hi"]}, 400, "invalid_request"),
    (
        "wait-over-the-bound",
        "POST",
        "/agents/echo/{id}",
        {"json": {"message": "hi", "wait": MAX_WAIT_SECONDS + 1}},
        400,
        "invalid_request",
    ),
    ("wait-negative", "POST", "/agents/echo/{id}", {"json": {"message": "hi", "wait": -1}}, 400, "invalid_request"),
    ("wait-a-string", "POST", "/agents/echo/{id}", {"json": {"message": "hi", "wait": "5"}}, 400, "invalid_request"),
    ("unknown-field", "POST", "/agents/echo/{id}", {"json": {"message": "hi", "colour": "red"}}, 400, "invalid_request"),
    ("bad-session", "POST", "/agents/echo/{id}", {"json": {"message": "hi", "session": "a/b"}}, 400, "invalid_request"),
    (
        "bad-idempotency-key",
        "POST",
        "/agents/echo/{id}",
        {"json": {"message": "hi"}, "headers": {"Idempotency-Key": "has space"}},
        400,
        "invalid_request",
    ),
    ("dispatch-without-input", "POST", "/agents/echo/{id}/dispatch", {"json": {}}, 400, "invalid_request"),
    (
        "dispatch-bad-id",
        "POST",
        "/agents/echo/{id}/dispatch",
        {"json": {"input": 1, "dispatch_id": "a b"}},
        400,
        "invalid_request",
    ),
    ("history-limit-zero", "GET", "/agents/echo/{id}/sessions/default/messages?limit=0", {}, 400, "invalid_request"),
    ("history-limit-text", "GET", "/agents/echo/{id}/sessions/default/messages?limit=ten", {}, 400, "invalid_request"),
    ("history-bad-session", "GET", "/agents/echo/{id}/sessions/a%20b/messages", {}, 400, "invalid_request"),
    ("abort-queued-not-bool", "POST", "/agents/echo/{id}/abort?queued=maybe", {}, 400, "invalid_request"),
    ("unknown-agent", "POST", "/agents/nobody/{id}", {"json": {"message": "hi"}}, 404, "agent_not_found"),
    ("agent-without-route", "POST", "/agents/hidden/{id}", {"json": {"message": "hi"}}, 404, "agent_not_found"),
    ("agent-without-route-reads", "GET", "/agents/hidden/{id}/sessions/default/messages", {}, 404, "agent_not_found"),
    ("agent-without-route-dispatch", "POST", "/agents/hidden/{id}/dispatch", {"json": {"input": 1}}, 404, "agent_not_found"),
    ("bad-agent-name", "POST", "/agents/Not_A_Name/{id}", {"json": {"message": "hi"}}, 400, "invalid_request"),
    ("bad-instance-id", "POST", "/agents/echo/bad%20id", {"json": {"message": "hi"}}, 400, "invalid_request"),
    ("instance-id-too-long", "POST", "/agents/echo/" + "x" * 80, {"json": {"message": "hi"}}, 400, "invalid_request"),
    (
        "body-over-the-limit",
        "POST",
        "/agents/echo/{id}",
        {"content": b'{"message": "' + b"x" * MAX_BODY_BYTES + b'"}'},
        413,
        "payload_too_large",
    ),
    (
        "unknown-submission",
        "GET",
        "/agents/echo/{id}/submissions/sub-0000000999-0badc0de",
        {},
        404,
        "submission_not_found",
    ),
    ("malformed-submission-id", "GET", "/agents/echo/{id}/submissions/nope", {}, 404, "submission_not_found"),
    ("unknown-route", "GET", "/agents/echo/{id}/nothing-here", {}, 404, "not_found"),
]


@pytest.mark.parametrize(
    ("method", "path", "request_args", "status", "error_type"),
    [pytest.param(*case[1:], id=case[0]) for case in ERROR_CASES],
)
def test_errors_have_their_status_and_one_shape(
    client: httpx.Client,
    instance: str,
    method: str,
    path: str,
    request_args: dict[str, Any],
    status: int,
    error_type: str,
) -> None:
    response = client.request(method, path.format(id=instance), **request_args)
    assert_error(response, status, error_type)


def test_refused_requests_admit_nothing(client: httpx.Client, instance: str) -> None:
    for case in ERROR_CASES:
        _, method, path, request_args, _, _ = case
        if method == "POST" and path == "/agents/echo/{id}":
            assert client.request(method, path.format(id=instance), **request_args).status_code < 500
    # The first prompt that is accepted is the instance's first submission.
    assert ok(prompt(client, "echo", instance, "first"))["submission"]["sequence"] == 0


# --- restarts -------------------------------------------------------------------------


class DevProcess:
    """A local stack in a child process; its output read line by line as it comes.

    A process of its own: moto's state is process-wide, so a second stack cannot share this
    one's.
    """

    def __init__(self, *args: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "AGENT_RUNTIME_"))}
        env["POWERTOOLS_LOG_LEVEL"] = "WARNING"
        self.process = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, name="dev-output", daemon=True)
        self._reader.start()
        try:
            self.url = self.expect(r"ready: (http://127\.0\.0\.1:\d+)").group(1)
        except BaseException:
            self.close()
            raise

    def _read(self) -> None:  # drained to the end, so the child never blocks on a full pipe
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def expect(self, pattern: str) -> re.Match[str]:
        """The first line from now on that is all `pattern`."""
        deadline = time.monotonic() + DEADLINE
        while True:
            line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"exited before a line matched {pattern!r}:\n{self.output()}")
            self.seen.append(line)
            if match := re.fullmatch(pattern, line.rstrip("\n")):
                return match

    def wait(self) -> int:
        """The exit status; then `output()` is all of it."""
        status = self.process.wait(timeout=DEADLINE)
        self._reader.join(5)
        with contextlib.suppress(queue.Empty):
            while (line := self._lines.get_nowait()) is not None:
                self.seen.append(line)
        return status

    def output(self) -> str:
        return "".join(self.seen)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(5)


@contextlib.contextmanager
def dev_server(state: Path) -> Iterator[str]:
    """``agent-runtime dev`` in a child process on a free port; its URL once it is ready.
    Stopped with SIGTERM, which saves the state folder, as Ctrl-C would."""
    dev = DevProcess("-m", "agent_runtime", "dev", "--port", "0", "--agents", str(AGENTS), "--state", str(state))
    try:
        yield dev.url
        dev.process.send_signal(signal.SIGTERM)
        assert dev.wait() == 0, dev.output()
    finally:
        dev.close()


def test_a_restarted_stack_keeps_history_and_submissions(tmp_path: Path) -> None:
    state, name, instance = tmp_path / "state", "echo", "remember-me"
    with dev_server(state) as url, httpx.Client(base_url=url, timeout=35.0) as first:
        before = [ok(prompt(first, name, instance, text))["submission"] for text in ("one", "two")]
        history = all_messages(first, name, instance, "default", limit=100)
    assert [s["sequence"] for s in before] == [0, 1] and len(history) == 4

    with dev_server(state) as url, httpx.Client(base_url=url, timeout=35.0) as second:
        assert all_messages(second, name, instance, "default", limit=100) == history
        for submission in before:
            assert get_submission(second, submission_path(name, instance, submission["id"])) == submission
        after = ok(prompt(second, name, instance, "three"))["submission"]
        assert after["sequence"] == 2 and after["result"]["text"] == "echo: three"
        assert len(all_messages(second, name, instance, "default", limit=100)) == 6


def test_work_cut_off_by_a_stop_finishes_after_the_restart(tmp_path: Path) -> None:
    """Stopped while a tool runs and another prompt waits: after the restart the dead
    attempt's lease is ended, its call is recorded as interrupted (its outcome is
    unknown), and both submissions complete in order without a new prompt."""
    state, name, instance = tmp_path / "state", "gated", "cut-off"
    gate = tmp_path / "gate"
    with dev_server(state) as url, httpx.Client(base_url=url, timeout=35.0) as first:
        running = admitted(first, name, instance, f"gate:{gate}")
        queued = admitted(first, name, instance, "after")
        wait_until_started(gate)
    gate.touch()  # opening it now changes nothing: the worker that waited is gone
    with dev_server(state) as url, httpx.Client(base_url=url, timeout=35.0) as second:
        done = [settled(second, submission_path(name, instance, s["id"])) for s in (running, queued)]
        assert [s["outcome"] for s in done] == ["completed", "completed"]
        assert done[0]["settled_at"] <= done[1]["started_at"]
        assert done[0]["attempts"] == 2
        assert done[0]["result"]["text"].startswith("passed: interrupted")
        assert done[1]["result"]["text"] == "quick: after"


#: `run_dev` as ``agent-runtime dev`` runs it, but with a stop grace far shorter than the
#: blocked work, and the race of two threads closing one pipe made certain (`tests.pipes`).
STOP_NOW = """
import sys
from tests.pipes import slow_pipe_closes
slow_pipe_closes()
from agent_runtime.dev import run_dev
run_dev(0, sys.argv[1], sys.argv[2], stop_grace=0.1)
"""


def saved_submissions(state: Path) -> dict[str, str]:
    """Submission id -> status, as the state folder has them."""
    table = json.loads((state / "state.json").read_text())["tables"]["agent-runtime"]["file"]
    items = [json.loads(line) for line in (state / table).read_text().splitlines()]
    return {item["id"]["S"]: item["status"]["S"] for item in items if item["sk"]["S"].startswith("SUB#")}


@pytest.mark.parametrize("cut_off", ["tool", "model stream"])
def test_a_stop_while_work_runs_saves_the_state_and_exits_0(tmp_path: Path, cut_off: str) -> None:
    """SIGTERM while a worker is busy (a tool blocked with a prompt queued behind it, or a
    model streaming its answer): the busy execution environment is ended, the state saved,
    and the process exits 0, even when a second SIGTERM comes while it saves."""
    state, gate = tmp_path / "state", tmp_path / "gate"
    dev = DevProcess("-c", STOP_NOW, str(AGENTS), str(state))
    try:
        with httpx.Client(base_url=dev.url, timeout=35.0) as client:
            if cut_off == "tool":
                running = admitted(client, "gated", "stopped", f"gate:{gate}")
                queued = admitted(client, "gated", "stopped", "after")
                wait_until_started(gate)
                expected = {running["id"]: "running", queued["id"]: "queued"}
            else:
                running = admitted(client, "streamer", "stopped", " ".join(["word"] * 40))
                path = submission_path("streamer", "stopped", running["id"])
                eventually(lambda: get_submission(client, path)["status"] == "running", what="the stream")
                expected = {running["id"]: "running"}
        asked = time.time()
        dev.process.send_signal(signal.SIGTERM)
        dev.expect("stopping; saving state")
        dev.process.send_signal(signal.SIGTERM)  # an impatient supervisor
        assert dev.wait() == 0, dev.output()
    finally:
        dev.close()
    assert "Traceback" not in dev.output(), dev.output()
    saved_at = json.loads((state / "state.json").read_text())["saved_at"]
    assert datetime.fromisoformat(saved_at).timestamp() >= asked
    assert saved_submissions(state) == expected

