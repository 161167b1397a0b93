"""Cold-start budget of the Lambda handlers: import time and unzipped code size.

    python bench/coldstart.py [--runs 7] [--no-build]

Every function the stack deploys (`infra.stack`: ``HANDLERS`` and the WebSocket handler)
is measured, and any other module of ``functions/`` too (marked "not deployed").

Import time: the wall time of ``import functions.X`` in a fresh interpreter (not
``-X importtime``, which slows imports down), the median of ``--runs`` runs, next to
``import boto3`` alone, which every handler pays anyway. The runs are interleaved (boto3,
then each handler, ``--runs`` times) so that a busy machine slows all of them alike.
Goal: at most 1.5x boto3. The heaviest packages each handler pulls in (own import time
summed per top-level package, from one ``-X importtime`` run) are shown too.

The model SDK (``anthropic``, ``httpx2``) must load on the first model request only:
neither at import nor when the agents are discovered (which a handler does on its
first invocation; ``ANTHROPIC_API_KEY`` is set so that agents choosing a model by it
pick an ``anthropic/...`` one). The "SDK" column says where it loaded, if anywhere.

Size: what each function runs, unzipped: the source asset plus the layers it gets (the
common dependencies; the model SDK layer for functions that call models), without
boto3/botocore (the Lambda runtime provides them). Goal: at most 15 MB. The layers are
built (and cached) by `infra.bundling` unless ``--no-build`` is given, which reports the
source asset alone.

Measured with this interpreter, not Lambda's Python 3.13 on arm64: compare the ratios.
The project's source is compiled on every run (``PYTHONDONTWRITEBYTECODE``, no
``__pycache__``), as on Lambda, whose assets carry no bytecode; the dependencies here
have theirs (installed by pip), the layers do not, so a cold start on Lambda also
compiles the dependencies it imports.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Before aws_cdk loads (through infra.stack): jsii prints a banner under an old Node.js.
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "16,18,20")

from infra import bundling  # noqa: E402

IMPORT_RATIO_GOAL = 1.5
SIZE_GOAL_MB = 15.0
SDK = ("anthropic", "httpx2")

_PROBE = """
import sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
at_import = any(name in sys.modules for name in {sdk!r})
at_discovery = at_import
if {discover!r}:
    from agent_runtime.registry import discover
    discover("agents")
    at_discovery = any(name in sys.modules for name in {sdk!r})
print(elapsed, int(at_import), int(at_discovery))
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


def _probe(module: str, *, discover: bool) -> Probe:
    code = _PROBE.format(module=module, sdk=SDK, discover=discover)
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **_ENV, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        raise RuntimeError(last)
    seconds, at_import, at_discovery = result.stdout.strip().splitlines()[-1].split()
    return Probe(float(seconds), at_import == "1", at_discovery == "1")


def import_times(modules: list[str], runs: int) -> dict[str, Probe | str]:
    """Per module: the median seconds to import it in a fresh interpreter (and where the
    model SDK loaded, from the first run), or the error that stopped it."""
    samples: dict[str, list[Probe]] = {module: [] for module in modules}
    failed: dict[str, str] = {}
    for run in range(runs + 1):  # the first round warms the OS file cache and is dropped
        for module in modules:
            if module in failed:
                continue
            try:
                probe = _probe(module, discover=module != "boto3" and run == 0)
            except RuntimeError as error:
                failed[module] = str(error)
                continue
            samples[module].append(probe)
    results: dict[str, Probe | str] = dict(failed)
    for module, probes in samples.items():
        if module not in failed:
            first, timed = probes[0], probes[1:]
            median = statistics.median(probe.seconds for probe in timed)
            results[module] = Probe(median, first.sdk_at_import, first.sdk_at_discovery)
    return results


def heaviest_imports(module: str, count: int = 5) -> list[tuple[str, float]]:
    """Import time by top-level package (sum of each module's own time, ``-X importtime``),
    largest first, in ms."""
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=ROOT,
        env={**os.environ, **_ENV, "PYTHONPATH": str(ROOT), "PYTHONDONTWRITEBYTECODE": "1"},
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


@dataclass(frozen=True)
class Assets:
    """Unzipped bytes of the source asset and of each layer (None: not built)."""

    source: int
    common: int | None
    model: int | None

    def parts(self, handler: Handler) -> dict[str, int]:
        """What `handler`'s function runs: the source, the common layer, and the model
        SDK layer when it calls models (the rule of `RuntimeFunctions.layers`)."""
        parts = {"src": self.source}
        if self.common is not None:
            parts["deps"] = self.common
        if handler.calls_models and self.model is not None:
            parts["model"] = self.model
        return parts


def asset_sizes(build: bool) -> Assets:
    source = bundling.tree_size(bundling.build_source())
    if not build:
        return Assets(source, None, None)
    common = bundling.tree_size(bundling.build_dependencies())
    model = (
        bundling.tree_size(bundling.build_model_dependencies())
        if bundling.model_requirements()
        else None
    )
    return Assets(source, common, model)


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
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--no-build", action="store_true", help="skip the dependency layers")
    args = parser.parse_args(argv)

    found = handlers()
    assets = asset_sizes(build=not args.no_build)
    times = import_times(["boto3", *(handler.module for handler in found)], args.runs)
    baseline = times["boto3"]
    if not isinstance(baseline, Probe):
        raise SystemExit(f"import boto3 failed: {baseline}")

    print(f"Python {sys.version.split()[0]}, median of {args.runs} fresh interpreters (interleaved)")
    print(
        f"goals: import <= {IMPORT_RATIO_GOAL}x boto3; code <= {SIZE_GOAL_MB:.0f} MB unzipped "
        "(source + layers, no boto3); model SDK loaded by neither import nor discovery\n"
    )
    header = f"{'handler':26} {'import ms':>9} {'x boto3':>8} {'goal':>5}  {'code MB':>7} {'goal':>5}  SDK    parts (MB)"
    print(header)
    print("-" * len(header))
    print(f"{'boto3 alone':26} {baseline.seconds * 1000:9.1f} {1:8.2f}")
    for handler in found:
        name = handler.module.removeprefix("functions.")
        if not handler.deployed:
            name += " (not deployed)"
        parts = assets.parts(handler)
        size_mb = sum(parts.values()) / 1e6
        size = f"{size_mb:7.1f} {_verdict(size_mb <= SIZE_GOAL_MB) if assets.common is not None else '?':>5}"
        detail = " + ".join(f"{part} {bytes_ / 1e6:.1f}" for part, bytes_ in parts.items())
        probe = times[handler.module]
        if not isinstance(probe, Probe):
            print(f"{name:26} {'error':>9} {'':8} {'':5}  {size}  {'':5}  {detail}\n{'':28}{probe}")
            continue
        ratio = probe.seconds / baseline.seconds
        sdk = "import" if probe.sdk_at_import else "disc." if probe.sdk_at_discovery else "no"
        print(
            f"{name:26} {probe.seconds * 1000:9.1f} {ratio:8.2f} {_verdict(ratio <= IMPORT_RATIO_GOAL):>5}"
            f"  {size}  {sdk:5}  {detail}"
        )

    print("\nheaviest imports (ms, own time per top-level package, one -X importtime run):")
    for handler in found:
        heavy = ", ".join(f"{name} {ms:.0f}" for name, ms in heaviest_imports(handler.module))
        print(f"  {handler.module.removeprefix('functions.'):24} {heavy}")
    if assets.common is not None:
        print("\nlargest packages (MB):")
        print(f"  {'common layer':24} {largest_packages(bundling.build_dependencies())}")
        if assets.model is not None:
            print(f"  {'model SDK layer':24} {largest_packages(bundling.build_model_dependencies())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
