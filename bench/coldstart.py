"""Cold-start budget of the Lambda handlers: import time and unzipped asset size.

    python bench/coldstart.py [--runs 7] [--no-build]

Import time: each handler module is imported in a fresh interpreter (``-X importtime``
is not used for the figure: the wall time of ``import functions.X`` is), the median of
``--runs`` runs is printed next to ``import boto3`` alone, which every handler pays
anyway. Goal: at most 1.5x boto3. The heaviest packages each handler pulls in at import
(own import time summed per top-level package, from one ``-X importtime`` run) and whether ``anthropic`` was imported are shown too:
the model SDK should load on first use, not at import.

Size: the source asset plus the dependency layer, unzipped, without boto3/botocore
(the Lambda runtime provides them). Goal: at most 15 MB. The layer is built (and
cached) by `infra.bundling` unless ``--no-build`` is given.

Measured with this interpreter, not Lambda's Python 3.13 on arm64: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra import bundling  # noqa: E402

HANDLER_MODULES = (
    "functions.http_api",
    "functions.worker",
    "functions.sweeper",
    "functions.dispatch_events",
    "functions.websocket",
)
IMPORT_RATIO_GOAL = 1.5
SIZE_GOAL_MB = 15.0
HEAVY = ("anthropic", "httpx2", "pydantic", "aws_lambda_powertools", "boto3", "botocore")

_PROBE = """
import sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
loaded = sorted(name for name in {heavy!r} if name in sys.modules)
print(elapsed, ",".join(loaded))
"""

# What a handler module may read at import; values are placeholders, nothing is called.
_ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "AGENT_RUNTIME_TABLE": "bench-table",
    "AGENT_RUNTIME_QUEUE_URL": "https://sqs.us-east-1.amazonaws.com/123456789012/bench.fifo",
    "AGENT_RUNTIME_BUCKET": "bench-bucket",
    "POWERTOOLS_SERVICE_NAME": "agent-runtime",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "bench",
}


def _probe(module: str) -> tuple[float, str]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE.format(module=module, heavy=HEAVY)],
        cwd=ROOT,
        env={**os.environ, **_ENV, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(last)
    seconds, loaded = result.stdout.strip().splitlines()[-1].split(" ", 1)
    return float(seconds), loaded


def import_time(module: str, runs: int) -> tuple[float, str]:
    """Median seconds to import `module` in a fresh interpreter; heavy packages it loaded."""
    _probe(module)  # warm the OS file cache and write nothing: bytecode is not kept either
    samples = [_probe(module) for _ in range(runs)]
    return statistics.median(seconds for seconds, _ in samples), samples[-1][1]


def heaviest_imports(module: str, count: int = 5) -> list[tuple[str, float]]:
    """Import time by top-level package (sum of each module's own time, ``-X importtime``),
    largest first, in ms."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env={**os.environ, **_ENV, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


def asset_sizes(build: bool) -> dict[str, int]:
    sizes = {"source": bundling.tree_size(bundling.build_source())}
    if build:
        sizes["dependencies"] = bundling.tree_size(bundling.build_dependencies())
    return sizes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-build", action="store_true", help="skip the dependency layer")
    args = parser.parse_args(argv)

    print(f"Python {sys.version.split()[0]}, median of {args.runs} fresh interpreters\n")
    baseline, _ = import_time("boto3", args.runs)
    print(f"{'import boto3':32} {baseline * 1000:8.1f} ms   1.00x")
    for module in HANDLER_MODULES:
        if not (ROOT / (module.replace(".", "/") + ".py")).is_file():
            print(f"{'import ' + module:32} {'missing':>8}")
            continue
        try:
            seconds, loaded = import_time(module, args.runs)
        except RuntimeError as error:
            print(f"{'import ' + module:32} {'error':>8}    {error}")
            continue
        ratio = seconds / baseline
        verdict = "ok" if ratio <= IMPORT_RATIO_GOAL else f"over {IMPORT_RATIO_GOAL}x"
        lazy = "anthropic NOT lazy" if "anthropic" in loaded.split(",") else "anthropic lazy"
        print(f"{'import ' + module:32} {seconds * 1000:8.1f} ms {ratio:6.2f}x  {verdict}; {lazy}")
        heavy = ", ".join(f"{name} {ms:.0f} ms" for name, ms in heaviest_imports(module))
        print(f"{'':32}   heaviest: {heavy}")

    print()
    sizes = asset_sizes(build=not args.no_build)
    total = sum(sizes.values()) / 1e6
    parts = ", ".join(f"{name} {size / 1e6:.1f} MB" for name, size in sizes.items())
    verdict = "ok" if total <= SIZE_GOAL_MB else f"over {SIZE_GOAL_MB:.0f} MB"
    print(f"asset per function (unzipped, no boto3): {total:.1f} MB ({parts})  {verdict}")
    if "dependencies" in sizes:
        site = next((ROOT / bundling.BUILD_DIR).glob("deps-*")) / "python"
        packages = sorted(
            ((entry.name, bundling.tree_size(entry)) for entry in site.iterdir() if entry.is_dir()),
            key=lambda item: item[1],
            reverse=True,
        )[:5]
        print("largest packages: " + ", ".join(f"{n} {s / 1e6:.1f} MB" for n, s in packages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
