"""The local stack (`agent-runtime dev`), printed as figures.

1. Start-up: wall time from starting ``agent-runtime dev --port 0`` (empty state folder,
   the project's own ``agents/``) to its ``ready: http://...`` line, median of ``--runs``
   runs, split into the interpreter and imports before the stack starts and the stack's
   own phases (moto and the resources, restoring state, the handlers' first execution
   environments) as the start-up line reports them; and the time SIGTERM takes to stop it.
2. Latency of one prompt through the stack, ``--prompts`` sequential prompts with wait=25 to
   the `timed-echo` agent (``bench/agents/``), whose model puts the wall-clock time it was
   called in its answer: from POST sent to the model request (what the stack adds before
   the model sees the message), the whole round trip, and where the time goes, from the
   submission's own times (millisecond resolution).

    python bench/local_stack.py [--runs 5] [--prompts 50]

Both run ``agent-runtime dev`` as a child process, so the client here does not share an
interpreter with the stack's threads.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BENCH_AGENTS = Path(__file__).resolve().parent / "agents"
READY = re.compile(r"ready: (http://127\.0\.0\.1:\d+)\n")
STARTED = re.compile(r"started in ([0-9.]+) s \((.*?)\);")
PHASE = re.compile(r"([a-z ]+) ([0-9.]+) s")
START_TIMEOUT = 60.0


def dev_command() -> list[str]:
    """The `agent-runtime` console script of this interpreter's environment."""
    script = Path(sys.executable).parent / "agent-runtime"
    return [str(script)] if script.exists() else [sys.executable, "-m", "agent_runtime"]


@dataclass
class DevRun:
    url: str
    ready_seconds: float  # Popen to the ready line, seen by the parent
    in_process: float  # LocalStack.start, as the child reports it
    phases: dict[str, float]
    stop_seconds: float = 0.0


@contextlib.contextmanager
def dev(state: Path, agents: Path | None = None) -> Iterator[DevRun]:
    """``agent-runtime dev`` on a free port until the block ends; then SIGTERM, timed.

    ``--port 0`` lets the stack pick its ports: a port probed free here could be taken again
    before the child binds it, and the WebSocket API takes the port after an explicit one,
    which on a busy machine may be some connection's local port.
    """
    command = [*dev_command(), "dev", "--port", "0", "--state", str(state)]
    if agents is not None:
        command += ["--agents", str(agents)]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_ENDPOINT_URL", "AGENT_RUNTIME_"))}
    env["POWERTOOLS_LOG_LEVEL"] = "WARNING"  # the worker logs every drain at INFO
    env.pop("ANTHROPIC_API_KEY", None)  # the example agents stay on their offline model
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, name="dev-output", daemon=True).start()
    seen: list[str] = []
    try:
        run: DevRun | None = None
        deadline = time.monotonic() + START_TIMEOUT
        while run is None:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            if line is None:
                raise RuntimeError("agent-runtime dev exited:\n" + "".join(seen))
            seen.append(line)
            if ready := READY.fullmatch(line):
                elapsed = time.perf_counter() - started
                report = next((m for m in map(STARTED.search, seen) if m), None)
                if report is None:
                    raise RuntimeError("no start-up line:\n" + "".join(seen))
                phases = {name.strip(): float(s) for name, s in PHASE.findall(report.group(2))}
                run = DevRun(ready.group(1), elapsed, float(report.group(1)), phases)
        yield run
        stopping = time.perf_counter()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        run.stop_seconds = time.perf_counter() - stopping
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def p90(samples: Sequence[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f} ms"


def startup_figures(runs: int) -> None:
    samples: list[DevRun] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="bench-dev-") as state, dev(Path(state) / "state") as run:
            httpx.get(f"{run.url}/health", timeout=10).raise_for_status()
        samples.append(run)
    print(f"`agent-runtime dev` start-up, median of {runs} runs (empty state, agents/):")
    print(f"  to the ready line            {ms(statistics.median(r.ready_seconds for r in samples))}"
          f"   (min {ms(min(r.ready_seconds for r in samples)).strip()},"
          f" max {ms(max(r.ready_seconds for r in samples)).strip()})")
    before = statistics.median(r.ready_seconds - r.in_process for r in samples)
    print(f"    interpreter and imports    {ms(before)}")
    print(f"    LocalStack.start           {ms(statistics.median(r.in_process for r in samples))}"
          "   (phases as the start-up line prints them, to 10 ms)")
    for name in samples[0].phases:
        print(f"      {name:24} {ms(statistics.median(r.phases.get(name, 0.0) for r in samples))}")
    print(f"  stop on SIGTERM (saves)      {ms(statistics.median(r.stop_seconds for r in samples))}")


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass(frozen=True)
class Sample:
    to_model: float  # POST sent -> model called
    round_trip: float  # POST sent -> 200 received
    admit: float  # POST sent -> accepted_at
    queue: float  # accepted_at -> started_at: wake-up delivered, worker invoked, head claimed
    prepare: float  # started_at -> model called: history, input applied
    finish: float  # model called -> settled_at
    reply: float  # settled_at -> 200 received: the prompt's wait noticing, the way back


def latency_figures(prompts: int, warmup: int = 5) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-dev-") as state, dev(Path(state) / "state", BENCH_AGENTS) as run:
        samples: list[Sample] = []
        with httpx.Client(base_url=run.url, timeout=httpx.Timeout(35.0, connect=5.0)) as client:
            for n in range(warmup + prompts):
                sent = time.time()
                response = client.post("/agents/timed-echo/bench", json={"message": f"m{n}", "wait": 25})
                received = time.time()
                response.raise_for_status()
                body = response.json()
                if response.status_code != 200 or body["submission"]["outcome"] != "completed":
                    raise RuntimeError(f"prompt {n} did not complete: {response.status_code} {body}")
                called = float(body["result"]["text"].split(" ", 1)[0])
                submission = body["submission"]
                accepted, started, settled = (
                    timestamp(submission[k]) for k in ("accepted_at", "started_at", "settled_at")
                )
                if n >= warmup:  # the first prompts start execution environments
                    samples.append(
                        Sample(
                            to_model=called - sent,
                            round_trip=received - sent,
                            admit=accepted - sent,
                            queue=started - accepted,
                            prepare=called - started,
                            finish=settled - called,
                            reply=received - settled,
                        )
                    )
    print(f"\nOne prompt on the local stack, {prompts} sequential prompts (wait=25) after {warmup} warm-up:")
    print(f"  {'':38} {'median':>10} {'p90':>10}")
    rows = [
        ("POST sent -> model request", "to_model"),
        ("round trip (POST -> 200)", "round_trip"),
        ("  POST -> admitted (accepted_at)", "admit"),
        ("  admitted -> worker claimed it", "queue"),
        ("  claimed -> model request", "prepare"),
        ("  model request -> settle (settled_at)", "finish"),
        ("  settled -> 200 received", "reply"),
    ]
    for label, attribute in rows:
        values = [getattr(s, attribute) for s in samples]
        print(f"  {label:38} {ms(statistics.median(values))} {ms(p90(values))}")
    print("  (the split uses the submission's times, truncated to the millisecond: each part is")
    print("  +-1 ms; settled_at is taken just before the settling write, the model answers at once)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups to take the median of")
    parser.add_argument("--prompts", type=int, default=50, help="prompts measured for latency")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    startup_figures(args.runs)
    latency_figures(args.prompts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
