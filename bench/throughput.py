"""Throughput of the local stack (`agent-runtime dev`), printed as figures.

1. Ordered: ``--prompts`` prompts (default 200) to ONE instance of the `echo` agent, sent as
   fast as they are acknowledged (``wait=0``, ``--senders`` threads at once). Timed from the
   first send to the last ``submission_settled`` event's time, once the last admitted
   submission is seen settled (polled: one read every 20 ms); prints submissions per second,
   and checks from the instance's events that every submission settled once, completed, in
   admission order (its ``sequence``).
2. Parallel: one prompt each to ``--instances`` instances (default 100) at once, then their
   submissions polled until all have settled; prints the time and checks that none is lost
   (every one completed within ``--deadline`` seconds).

    python bench/throughput.py [--prompts 200] [--instances 100] [--state-in project|tmp|both]

The stack runs as ``agent-runtime dev --port 0`` in a child process (process isolation, the
project's ``agents/``), so the client does not share an interpreter with it. The stack
journals every write with a flush to the disk before answering, so where the state folder is
matters: ``project`` puts it beside the default ``.agent-runtime/`` (the project's disk),
``tmp`` under the system's temporary folder; the header line says which, and on which device.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from local_stack import ROOT, dev  # bench/, the script's own directory

AGENT = "echo"
TIMEOUT = httpx.Timeout(35.0, connect=5.0)


@dataclass(frozen=True)
class Admitted:
    instance: str
    submission_id: str
    sequence: int


class ThroughputError(RuntimeError):
    """A submission was refused, lost, settled twice, out of order, or did not complete."""


def prompt(client: httpx.Client, instance: str, message: str) -> Admitted:
    """POST one prompt with wait=0: the stack answers once it is admitted (202)."""
    response = client.post(f"/agents/{AGENT}/{instance}", json={"message": message, "wait": 0})
    if response.status_code not in (200, 202):
        raise ThroughputError(f"prompt to {instance} refused: {response.status_code} {response.text}")
    submission = response.json()["submission"]
    return Admitted(instance, submission["id"], submission["sequence"])


def send_all(url: str, jobs: list[tuple[str, str]], senders: int) -> list[Admitted]:
    """Send every (instance, message) on `senders` threads, each with its own connection."""
    local = threading.local()
    clients: list[httpx.Client] = []
    lock = threading.Lock()

    def client() -> httpx.Client:
        if not hasattr(local, "client"):
            local.client = httpx.Client(base_url=url, timeout=TIMEOUT)
            with lock:
                clients.append(local.client)
        return local.client  # type: ignore[no-any-return]

    try:
        with ThreadPoolExecutor(senders) as pool:
            return list(pool.map(lambda job: prompt(client(), *job), jobs))
    finally:
        for each in clients:
            each.close()


def wait_settled(client: httpx.Client, last: Admitted, deadline: float) -> None:
    """Poll the last admitted submission until it settles (a read of one item: the bench
    adds little load to the stack it measures)."""
    while True:
        response = client.get(f"/agents/{AGENT}/{last.instance}/submissions/{last.submission_id}")
        response.raise_for_status()
        if response.json()["status"] == "settled":
            return
        if time.monotonic() > deadline:
            raise ThroughputError(f"submission {last.sequence} not settled in time")
        time.sleep(0.02)


def settled_events(client: httpx.Client, instance: str, count: int, deadline: float) -> list[dict[str, Any]]:
    """The instance's ``submission_settled`` events, oldest first, once there are `count`."""
    settled: list[dict[str, Any]] = []
    after = 0
    while len(settled) < count:
        if time.monotonic() > deadline:
            raise ThroughputError(f"only {len(settled)} of {count} submissions settled in time")
        response = client.get(
            f"/agents/{AGENT}/{instance}/events", params={"after": after, "limit": 1000, "wait": 5}
        )
        response.raise_for_status()
        page = response.json()
        settled += [e for e in page["events"] if e["type"] == "submission_settled"]
        after = page["last"]
    return settled


def timestamp(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def check_order(admitted: list[Admitted], settled: list[dict[str, Any]]) -> None:
    """Each submission settled once, completed, and in the order of its sequence."""
    sequence = {a.submission_id: a.sequence for a in admitted}
    seen = [e["submission_id"] for e in settled]
    if len(set(seen)) != len(seen):
        raise ThroughputError("a submission settled twice")
    if set(seen) != set(sequence):
        raise ThroughputError(f"settled {len(set(seen) & set(sequence))} of {len(sequence)} submissions")
    failed = [e for e in settled if e["outcome"] != "completed"]
    if failed:
        raise ThroughputError(f"{len(failed)} submissions did not complete: {failed[0]}")
    order = [sequence[s] for s in seen]
    if order != sorted(order):
        raise ThroughputError(f"settled out of admission order: {order}")
    if sorted(order) != sorted(set(order)):
        raise ThroughputError("two submissions share a sequence")


def ordered(url: str, prompts: int, senders: int, deadline: float) -> float:
    instance = f"tp-{uuid.uuid4().hex[:8]}"
    jobs = [(instance, f"m{n}") for n in range(prompts)]
    began, first_sent = time.monotonic(), time.time()
    admitted = send_all(url, jobs, senders)
    acknowledged = time.monotonic() - began
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:
        wait_settled(client, max(admitted, key=lambda a: a.sequence), began + deadline)
        seen = time.monotonic() - began
        # Every settled event, read once the run is over: when the last settled, all had.
        settled = settled_events(client, instance, prompts, began + deadline)
    check_order(admitted, settled)
    # From the first send to the last settle, as the stack timed it (same clock).
    times = sorted(timestamp(e["at"]) - first_sent for e in settled)
    elapsed = times[-1]
    rate = prompts / elapsed
    # The worker's pace once admissions stopped competing with it for the stack.
    after = [t for t in times if t > acknowledged]
    print(f"  {prompts} prompts to one instance ({senders} senders, wait=0):")
    print(f"    all acknowledged after {acknowledged:6.2f} s  ({prompts / acknowledged:6.1f} admissions/s)")
    print(f"    all settled after      {elapsed:6.2f} s  ({rate:6.1f} submissions/s; the client saw it at {seen:.2f} s)")
    if len(after) > 1:
        print(f"    after the last acknowledgement: {len(after)} settled at {(len(after) - 1) / (after[-1] - after[0]):.1f}/s")
    print("    each settled once, completed, in admission order: yes")
    return rate


def parallel(url: str, instances: int, senders: int, deadline: float) -> float:
    run = uuid.uuid4().hex[:6]
    jobs = [(f"tp-{run}-{n}", "hello") for n in range(instances)]
    began = time.monotonic()
    admitted = send_all(url, jobs, senders)
    pending = {a.submission_id: a for a in admitted}
    with httpx.Client(base_url=url, timeout=TIMEOUT) as client:

        def read(a: Admitted) -> dict[str, Any]:
            return client.get(f"/agents/{AGENT}/{a.instance}/submissions/{a.submission_id}").json()  # type: ignore[no-any-return]

        with ThreadPoolExecutor(4) as pool:
            while pending:
                if time.monotonic() > began + deadline:
                    raise ThroughputError(f"{len(pending)} of {instances} submissions lost (not settled in time)")
                for submission in pool.map(read, list(pending.values())):
                    if submission.get("status") == "settled":
                        if submission["outcome"] != "completed":
                            raise ThroughputError(f"submission did not complete: {submission}")
                        del pending[submission["id"]]
                if pending:
                    time.sleep(0.1)
    elapsed = time.monotonic() - began
    print(f"  one prompt each to {instances} instances at once ({senders} senders, wait=0):")
    print(f"    all settled after      {elapsed:6.2f} s  ({instances / elapsed:6.1f} submissions/s); none lost")
    return elapsed


def device(path: Path) -> str:
    """The mount holding `path`, from /proc/mounts (where fdatasync goes)."""
    try:
        mounts = [line.split()[:3] for line in Path("/proc/mounts").read_text().splitlines()]
    except OSError:
        return "?"
    best = max((m for m in mounts if str(path.resolve()).startswith(m[1])), key=lambda m: len(m[1]), default=None)
    return f"{best[0]} on {best[1]} ({best[2]})" if best else "?"


def bench(where: str, args: argparse.Namespace) -> None:
    parent = ROOT if where == "project" else Path(tempfile.gettempdir())
    with tempfile.TemporaryDirectory(dir=parent, prefix=".bench-throughput-") as folder:
        state = Path(folder) / "state"
        print(f"\nstate folder in {parent} ({where}): {device(parent)}")
        with dev(state) as run:
            warm = uuid.uuid4().hex[:6]  # the first prompts start execution environments
            send_all(run.url, [(f"warm-{warm}-{n}", "hi") for n in range(4)], 4)
            time.sleep(1.0)
            ordered(run.url, args.prompts, args.senders, args.deadline)
            parallel(run.url, args.instances, args.senders, args.deadline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=200, help="prompts to one instance")
    parser.add_argument("--instances", type=int, default=100, help="instances prompted at once")
    parser.add_argument("--senders", type=int, default=8, help="client threads sending prompts")
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds before a submission counts as lost")
    parser.add_argument("--state-in", choices=["project", "tmp", "both"], default="project")
    args = parser.parse_args(argv)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; agent-runtime dev, process isolation")
    for where in ("project", "tmp") if args.state_in == "both" else (args.state_in,):
        bench(where, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
