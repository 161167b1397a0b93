"""Cold-start budget of the Lambda handlers: import time and unzipped code size.

    python bench/coldstart.py [--runs 9] [--without-bytecode]

Every function the stack deploys (`infra.stack`: ``HANDLERS`` and the WebSocket handler)
is measured, and any other module of ``functions/`` too (marked "not deployed").

Import time, as deployed: the assets are built a second time for this interpreter and
machine by the same pipeline (`infra.bundling.local_target`: the source with its
bytecode, the layers as bytecode without sources, nothing from this virtualenv), and
each handler is imported in a fresh isolated interpreter (``-I -S``) whose path is what
Lambda gives it: the source, its layers, and the packages the Lambda runtime provides
(boto3 and its dependencies, linked from this virtualenv). Reported: the wall time of
``import functions.X`` (not ``-X importtime``, which slows imports down), the median of
``--runs`` runs, next to ``import boto3`` alone, which every handler pays anyway. Runs
are interleaved (boto3, then each handler, ``--runs`` times) so that a busy machine slows
all of them alike. Goal: at most 1.5x boto3. ``--without-bytecode`` builds the replica
with sources only, as if no bytecode were shipped (Lambda then compiles on every cold
start). The heaviest packages per handler (own import time summed per top-level package,
one ``-X importtime`` run) are shown too. "cpu x" is the same ratio in CPU time (user and
system time of the process), which a machine busy with other work stretches far less
than wall time: when the two disagree, the machine was busy.

The model client (``httpx2``; the ``anthropic`` and ``openai`` SDKs are never shipped)
must load on the first model request only: neither at import nor when the agents are
discovered (which a handler does on its first invocation; ``ANTHROPIC_API_KEY`` is set
so that agents choosing a model by it pick an ``anthropic/...`` one). The "SDK" column
says where it loaded, if anywhere.

First model request, per provider (``anthropic``, ``openai``, ``bedrock``), for the
functions that call models: in a fresh interpreter with that function's deployed path,
the handler is imported and the agents discovered, then two identical requests stream a
short reply from the provider's local fake (`agent_runtime.testing`, served from this
process over a socket). What the first request adds is its time less the second's: the
client's imports, building it (TLS context, botocore's service model), the first
connection, and whatever the runtime builds on first use (deferred pydantic schemas).
Median of ``--runs``. Goal: at most 300 ms. No SnapStart is involved: nothing is
restored from a snapshot, the whole cost is paid on the first request.

Size: what each function runs on Lambda, unzipped: the source asset plus the layers it
gets (the common dependencies; the model SDK layer for functions that call models), as
`infra.bundling` builds them for Python 3.13 on arm64 (and caches them), without
boto3/botocore (the Lambda runtime provides them). Goal: at most 15 MB.

Measured with this interpreter, not Lambda's Python 3.13 on arm64: compare the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Before aws_cdk loads (through infra.stack): jsii prints a banner under an old Node.js.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20")

import first_request  # noqa: E402  (bench/, the script's own directory)

from infra import bundling  # noqa: E402
from infra.replica import Replica, build  # noqa: E402

IMPORT_RATIO_GOAL = 1.5
SIZE_GOAL_MB = 15.0
FIRST_REQUEST_GOAL_MS = 300.0
SDK = ("anthropic", "openai", "httpx2")

_PROBE = """
import sys, time
start, cpu = time.perf_counter(), time.process_time()
import {module}
elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
at_import = any(name in sys.modules for name in {sdk!r})
at_discovery = at_import
if {discover!r}:
    from agent_runtime.registry import discover
    discover("agents")
    at_discovery = any(name in sys.modules for name in {sdk!r})
print(elapsed, cpu, int(at_import), int(at_discovery))
"""

# What a handler module may read at import (the stack sets the same names); values are
# placeholders, nothing is called.
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
    "ANTHROPIC_API_KEY": "bench",  # agents pick their anthropic model; none is called
}


@dataclass(frozen=True)
class Handler:
    """One handler module and what its function is deployed with."""

    module: str
    deployed: bool
    calls_models: bool


@dataclass(frozen=True)
class Probe:
    seconds: float
    cpu_seconds: float
    sdk_at_import: bool
    sdk_at_discovery: bool


def handlers() -> list[Handler]:
    """The stack's functions, then any module of ``functions/`` the stack does not deploy."""
    from infra.stack import HANDLERS, WEBSOCKET_HANDLER

    found = [
        Handler(spec.handler.rsplit(".", 1)[0], deployed=True, calls_models=spec.calls_models)
        for spec in (*HANDLERS, WEBSOCKET_HANDLER)
    ]
    known = {handler.module for handler in found}
    for path in sorted((ROOT / "functions").glob("*.py")):
        module = f"functions.{path.stem}"
        if not path.stem.startswith("_") and module not in known:
            found.append(Handler(module, deployed=False, calls_models=False))
    return found


def _path(replica: Replica, handler: Handler | None) -> list[str]:
    return replica.path(calls_models=handler.calls_models if handler else None)


def _probe(replica: Replica, handler: Handler | None, *, discover: bool) -> Probe:
    module = handler.module if handler else "boto3"
    code = _PROBE.format(module=module, sdk=SDK, discover=discover)
    result = replica.python(code, _path(replica, handler), env=_ENV)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(last)
    seconds, cpu, at_import, at_discovery = result.stdout.strip().splitlines()[-1].split()
    return Probe(float(seconds), float(cpu), at_import == "1", at_discovery == "1")


def import_times(replica: Replica, handlers: list[Handler | None], runs: int) -> dict[str, Probe | str]:
    """Per handler (None: boto3 alone): the median seconds to import it in a fresh
    interpreter (and where the model SDK loaded, from the first run), or the error that
    stopped it."""
    modules = {handler.module if handler else "boto3": handler for handler in handlers}
    samples: dict[str, list[Probe]] = {module: [] for module in modules}
    failed: dict[str, str] = {}
    for run in range(runs + 1):  # the first round warms the OS file cache and is dropped
        for module, handler in modules.items():
            if module in failed:
                continue
            try:
                probe = _probe(replica, handler, discover=handler is not None and run == 0)
            except RuntimeError as error:
                failed[module] = str(error)
                continue
            samples[module].append(probe)
    results: dict[str, Probe | str] = dict(failed)
    for module, probes in samples.items():
        if module not in failed:
            first, timed = probes[0], probes[1:]
            median = statistics.median(probe.seconds for probe in timed)
            cpu = statistics.median(probe.cpu_seconds for probe in timed)
            results[module] = Probe(median, cpu, first.sdk_at_import, first.sdk_at_discovery)
    return results


def heaviest_imports(replica: Replica, handler: Handler, count: int = 5) -> list[tuple[str, float]]:
    """Import time by top-level package (sum of each module's own time, ``-X importtime``),
    largest first, in ms."""
    result = replica.python(
        f"import {handler.module}", _path(replica, handler), env=_ENV, options=("-X", "importtime")
    )
    totals: dict[str, float] = {}
    for line in result.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, _, name = line[len("import time:") :].split("|")
        package = name.strip().split(".")[0]
        totals[package] = totals.get(package, 0.0) + int(own) / 1000
    return sorted(totals.items(), key=lambda item: item[1], reverse=True)[:count]


@dataclass(frozen=True)
class Assets:
    """Unzipped bytes of the source asset and of each layer as deployed (model: None when
    the project has no model SDK)."""

    source: int
    common: int
    model: int | None

    def parts(self, handler: Handler) -> dict[str, int]:
        """What `handler`'s function runs: the source, the common layer, and the model
        SDK layer when it calls models (the rule of `RuntimeFunctions.layers`)."""
        parts = {"src": self.source, "deps": self.common}
        if handler.calls_models and self.model is not None:
            parts["model"] = self.model
        return parts


def asset_sizes() -> Assets:
    model = bundling.build_model_dependencies() if bundling.model_requirements() else None
    return Assets(
        bundling.tree_size(bundling.build_source()),
        bundling.tree_size(bundling.build_dependencies()),
        bundling.tree_size(model) if model else None,
    )


def largest_packages(layer: Path, count: int = 5) -> str:
    site = layer / "python"
    packages = sorted(
        ((entry.name, bundling.tree_size(entry)) for entry in site.iterdir() if entry.is_dir()),
        key=lambda item: item[1],
        reverse=True,
    )[:count]
    return ", ".join(f"{name} {size / 1e6:.1f}" for name, size in packages)


def _verdict(ok: bool) -> str:
    return "ok" if ok else "OVER"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument(
        "--without-bytecode", action="store_true", help="measure imports with sources only"
    )
    args = parser.parse_args(argv)

    found = handlers()
    assets = asset_sizes()
    replica = build(bytecode=not args.without_bytecode)
    times = import_times(replica, [None, *found], args.runs)
    baseline = times["boto3"]
    if not isinstance(baseline, Probe):
        raise SystemExit(f"import boto3 failed: {baseline}")

    layout = "sources only" if args.without_bytecode else "with bytecode"
    print(
        f"Python {sys.version.split()[0]}, deployed layout {layout}, "
        f"median of {args.runs} fresh isolated interpreters (interleaved)"
    )
    print(
        f"goals: import <= {IMPORT_RATIO_GOAL}x boto3; code <= {SIZE_GOAL_MB:.0f} MB unzipped "
        "(source + layers for Lambda, no boto3); model SDK loaded by neither import nor discovery\n"
    )
    header = (
        f"{'handler':26} {'import ms':>9} {'x boto3':>8} {'goal':>5} {'cpu x':>6}  {'code MB':>7} {'goal':>5}"
        f"  {'SDK':5}  parts (MB)"
    )
    print(header)
    print("-" * len(header))
    print(f"{'boto3 alone':26} {baseline.seconds * 1000:9.1f} {1:8.2f} {'':5} {1:6.2f}")
    for handler in found:
        name = handler.module.removeprefix("functions.")
        if not handler.deployed:
            name += " (not deployed)"
        parts = assets.parts(handler)
        size_mb = sum(parts.values()) / 1e6
        size = f"{size_mb:7.1f} {_verdict(size_mb <= SIZE_GOAL_MB):>5}"
        detail = " + ".join(f"{part} {bytes_ / 1e6:.1f}" for part, bytes_ in parts.items())
        probe = times[handler.module]
        if not isinstance(probe, Probe):
            print(f"{name:26} {'error':>9} {'':8} {'':5} {'':6}  {size}  {'':5}  {detail}\n{'':28}{probe}")
            continue
        ratio = probe.seconds / baseline.seconds
        sdk = "import" if probe.sdk_at_import else "disc." if probe.sdk_at_discovery else "no"
        print(
            f"{name:26} {probe.seconds * 1000:9.1f} {ratio:8.2f} {_verdict(ratio <= IMPORT_RATIO_GOAL):>5}"
            f" {probe.cpu_seconds / baseline.cpu_seconds:6.2f}"
            f"  {size}  {sdk:5}  {detail}"
        )

    print(
        f"\nfirst model request (ms, median of {args.runs}): what it adds over the second "
        f"(goal <= {FIRST_REQUEST_GOAL_MS:.0f}), from the provider's local fake"
    )
    for handler in found:
        if not (handler.deployed and handler.calls_models):
            continue
        for provider, cost in first_request.costs(replica, _path(replica, handler), handler.module, _ENV, args.runs).items():
            name = f"  {handler.module.removeprefix('functions.')} {provider}"
            if isinstance(cost, str):
                print(f"{name:28} error: {cost}")
                continue
            verdict = _verdict(cost.added * 1000 <= FIRST_REQUEST_GOAL_MS)
            print(
                f"{name:28} first {cost.first * 1000:7.1f}  second {cost.second * 1000:6.1f}"
                f"  adds {cost.added * 1000:6.1f} {verdict:>5}"
            )

    each = {"source": assets.source, "common layer": assets.common}
    if assets.model is not None:
        each["model SDK layer"] = assets.model
    print(
        "\nassets, each as CDK uploads it (MB): "
        + ", ".join(f"{name} {size / 1e6:.1f} {_verdict(size / 1e6 <= SIZE_GOAL_MB)}" for name, size in each.items())
    )

    print("\nheaviest imports (ms, own time per top-level package, one -X importtime run):")
    for handler in found:
        heavy = ", ".join(f"{name} {ms:.0f}" for name, ms in heaviest_imports(replica, handler))
        print(f"  {handler.module.removeprefix('functions.'):24} {heavy}")
    print("\nlargest packages (MB, as deployed):")
    print(f"  {'common layer':24} {largest_packages(bundling.build_dependencies())}")
    if assets.model is not None:
        print(f"  {'model SDK layer':24} {largest_packages(bundling.build_model_dependencies())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
