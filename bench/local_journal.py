"""What the local stack's journal costs per request, printed as figures.

moto on loopback (`LocalAws`, as `agent-runtime dev` runs it), a DynamoDB ``PutItem`` and a
two-item ``TransactWriteItems``, each ``--requests`` times: without a journal, then with one
in a state folder under ``--dir`` (each answered write flushed to the disk first). One client
thread, then ``--threads`` at once (where flushes are shared: group commit). Median and p95
latency per request, and requests per second.

    python bench/local_journal.py [--requests 300] [--threads 8] [--dir .]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from agent_runtime import settings
from agent_runtime.dev.aws import LocalAws
from agent_runtime.dev.persistence import LocalState

TABLE = settings.LOCAL_TABLE


def put(dynamodb: Any, n: int) -> None:
    dynamodb.put_item(
        TableName=TABLE, Item={"pk": {"S": f"bench/{n % 50}"}, "sk": {"S": f"P#{n}"}, "v": {"S": "x" * 200}}
    )


def transact(dynamodb: Any, n: int) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            {"Put": {"TableName": TABLE, "Item": {"pk": {"S": f"bench/{n % 50}"}, "sk": {"S": f"T#{n}"}}}},
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": {"pk": {"S": f"bench/{n % 50}"}, "sk": {"S": "HEAD"}},
                    "UpdateExpression": "ADD n :one",
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )


def measure(call: Callable[[Any, int], None], dynamodb: Any, requests: int, threads: int) -> tuple[float, float, float]:
    """Median and p95 latency (ms), and requests per second."""
    latencies: list[float] = []

    def one(n: int) -> None:
        started = time.perf_counter()
        call(dynamodb, n)
        latencies.append(time.perf_counter() - started)

    for n in range(20):  # warm the connection pool
        call(dynamodb, -1 - n)
    began = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(requests)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    p95 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))]
    return statistics.median(latencies) * 1e3, p95 * 1e3, requests / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--dir", default=".", help="where the state folder goes (its disk's flush cost)")
    args = parser.parse_args()
    print(f"{'journal':<8} {'request':<18} {'threads':>7} {'median ms':>10} {'p95 ms':>8} {'req/s':>7}")
    for journaled in (False, True):
        with tempfile.TemporaryDirectory(dir=args.dir, prefix=".bench-state-") as folder, LocalAws() as aws:
            state = LocalState(Path(folder))
            if journaled:
                state.replay(aws.replay)
                assert aws.gate is not None
                aws.gate.attach(state.journal)
            client = aws.client("dynamodb")
            for name, call in (("PutItem", put), ("TransactWriteItems", transact)):
                for threads in (1, args.threads):
                    median, p95, rate = measure(call, client, args.requests, threads)
                    label = "on" if journaled else "off"
                    print(f"{label:<8} {name:<18} {threads:>7} {median:>10.2f} {p95:>8.2f} {rate:>7.0f}")
            if aws.gate is not None:
                aws.gate.attach(None)
            state.close()


if __name__ == "__main__":
    main()
