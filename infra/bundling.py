"""Lambda packaging without Docker: one source asset and two dependency layers.

- `build_source` copies ``agent_runtime/``, ``functions/``, ``agents/`` and ``skills/`` (no tests,
  caches or build output) into ``build/lambda/src-<hash>/``, with bytecode beside the
  sources.
- `build_dependencies` installs the runtime dependencies of ``pyproject.toml`` that every
  handler may import (pydantic, Powertools) for the Lambda platform (Python 3.13,
  arm64, binary wheels only) into ``build/lambda/deps-<hash>/python/``, the layout of a
  Lambda layer, as bytecode without the sources. boto3, botocore and s3transfer are left
  out: the Lambda runtime provides them.
- `build_model_dependencies` installs the model client (`MODEL_SDK`: httpx2)
  into ``build/lambda/model-<hash>/python/`` with only what the first layer lacks. Only
  handlers that call a language model (the worker) get this layer, so the other
  functions stay small.

The bytecode is compiled for Lambda's Python by `infra.bytecode` (why, and how without
a Python 3.13 here, is told there). The same pipeline builds for another `Target`:
`local_target` makes layers this interpreter can import, which is how the tests and
``bench/coldstart.py --as-deployed`` check the deployed layout.
What only installers and type checkers read (``RECORD``, SBOMs, ``.pyi`` stubs) and
assets no handler serves (`UNUSED_AT_RUN_TIME`) are removed from the layers.

Each directory is named by a hash of its inputs, so a repeated synthesis with unchanged
inputs reuses it; an interrupted build never leaves a half-filled directory under the
final name.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra.bytecode import Compiler, running_python

ROOT = Path(__file__).resolve().parents[1]
BUILD_DIR = Path("build") / "lambda"

SOURCE_PACKAGES = ("agent_runtime", "functions", "agents", "skills")
EXCLUDED_DIRS = frozenset(
    {
        "__pycache__", "tests", "test", ".pytest_cache", ".mypy_cache", ".ruff_cache",
        "cdk.out", ".venv", "venv", ".agent-runtime", "build", "node_modules", ".git",
    }
)  # fmt: skip
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
#: Parts of `agent_runtime` no handler imports (`tests/test_handler_imports.py` checks):
#: the local stack, the test fakes, the client SDK and the command line. Left out of the
#: source asset; `tests/infra/test_deployed_layout.py` runs every handler without them.
NOT_IN_LAMBDA_SOURCE = (
    "agent_runtime/dev", "agent_runtime/testing", "agent_runtime/client",
    "agent_runtime/cli.py", "agent_runtime/__main__.py",
)  # fmt: skip

LAMBDA_PYTHON = "3.13"
# Lambda's Python 3.13 runs on Amazon Linux 2023 (glibc 2.34): any of these wheels load.
LAMBDA_PLATFORMS = ("manylinux2014_aarch64", "manylinux_2_28_aarch64", "manylinux_2_34_aarch64")
PROVIDED_BY_LAMBDA = frozenset({"boto3", "botocore", "s3transfer"})
#: Dependencies of the command line and the client SDK that no handler imports
#: (`tests/test_handler_imports.py` checks): not shipped to Lambda.
NOT_FOR_LAMBDA = frozenset({"httpx"})
#: Needed only where a model is called: the providers (`agent_runtime.models.anthropic`,
#: `openai`) import it on the first request, so handlers that never call a model never do.
MODEL_SDK = frozenset({"httpx2"})

Runner = Callable[[Sequence[str]], None]


@dataclass(frozen=True)
class Target:
    """What the layers are built for: a CPython version, the wheel platforms (none: this
    machine's), and whether to ship bytecode instead of sources."""

    python: str
    platforms: tuple[str, ...] = ()
    bytecode: bool = True

    @property
    def key(self) -> str:
        return f"python {self.python}; {' '.join(self.platforms) or 'local'}; bytecode {self.bytecode}"

    def kind(self, base: str) -> str:
        """The build directory's prefix: Lambda's builds and others are kept apart, so
        that building one does not prune the other."""
        return base if self == LAMBDA else f"{base}@{self.python}"


LAMBDA = Target(LAMBDA_PYTHON, LAMBDA_PLATFORMS)


def local_target(*, bytecode: bool = True) -> Target:
    """This interpreter and machine: layers built for it can be imported here."""
    return Target(running_python(), bytecode=bytecode)


def _included(path: Path) -> bool:
    posix = path.as_posix()
    if any(posix == part or posix.startswith(part + "/") for part in NOT_IN_LAMBDA_SOURCE):
        return False
    return not (set(path.parts) & EXCLUDED_DIRS) and not path.name.endswith(EXCLUDED_SUFFIXES)


def source_files(root: Path = ROOT) -> list[Path]:
    """The files of the source asset, relative to `root`, sorted."""
    found: list[Path] = []
    for package in SOURCE_PACKAGES:
        base = root / package
        if not base.is_dir():
            continue
        for path in base.rglob("*"):
            relative = path.relative_to(root)
            if path.is_file() and _included(relative):
                found.append(relative)
    return sorted(found)


def _digest(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()[:16]


def _materialize(target: Path, fill: Callable[[Path], None]) -> Path:
    """Build into a temporary sibling, then rename: `target` exists only when complete."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        fill(staging)
        try:
            staging.rename(target)
        except OSError:
            if not target.is_dir():  # not a concurrent build that finished first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    _prune(target)
    return target


def _prune(keep: Path) -> None:
    """Remove older builds of the same kind (``src-*``, ``deps-*``, ``deps@3.11-*``, ...)."""
    kind = keep.name.rsplit("-", 1)[0]
    for other in keep.parent.glob(f"{kind}-*"):
        if other != keep and other.is_dir():
            shutil.rmtree(other, ignore_errors=True)


def build_source(root: Path = ROOT, *, bytecode_for: str | None = LAMBDA_PYTHON) -> Path:
    """Copy the Python packages the handlers import into a content-addressed directory,
    with their bytecode for Python `bytecode_for` (none when None)."""
    files = source_files(root)
    key = _digest(
        [
            (bytecode_for or "source").encode(),
            *(part for path in files for part in (path.as_posix().encode(), (root / path).read_bytes())),
        ]
    )

    def fill(staging: Path) -> None:
        for relative in files:
            destination = staging / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / relative, destination)
        if bytecode_for is not None:
            Compiler(bytecode_for).compile(staging, keep_source=True)

    kind = "src" if bytecode_for in (None, LAMBDA_PYTHON) else f"src@{bytecode_for}"
    return _materialize(root / BUILD_DIR / f"{kind}-{key}", fill)


def _requirement_name(requirement: str) -> str:
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    if not match:
        raise ValueError(f"cannot read a package name from {requirement!r}")
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def runtime_requirements(root: Path = ROOT) -> list[str]:
    """``[project].dependencies`` minus what the Lambda runtime already has and what no
    handler imports."""
    with (root / "pyproject.toml").open("rb") as file:
        dependencies: list[str] = tomllib.load(file)["project"]["dependencies"]
    left_out = PROVIDED_BY_LAMBDA | NOT_FOR_LAMBDA
    return [req for req in dependencies if _requirement_name(req) not in left_out]


def common_requirements(root: Path = ROOT) -> list[str]:
    """The runtime requirements every handler gets: all but the model SDK."""
    return [req for req in runtime_requirements(root) if _requirement_name(req) not in MODEL_SDK]


def model_requirements(root: Path = ROOT) -> list[str]:
    """The runtime requirements only model-calling handlers get (`MODEL_SDK`)."""
    return [req for req in runtime_requirements(root) if _requirement_name(req) in MODEL_SDK]


def pip_command(requirements: Sequence[str], directory: Path, target: Target = LAMBDA) -> list[str]:
    selection = (
        ["--implementation", "cp", "--python-version", target.python,
         *(arg for platform in target.platforms for arg in ("--platform", platform))]
        if target.platforms
        else []
    )  # fmt: skip
    return [
        sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
        "--no-compile",  # the bytecode is compiled afterwards, for the target's Python
        "--only-binary=:all:", *selection, "--target", str(directory), *requirements,
    ]  # fmt: skip


def _run(command: Sequence[str]) -> None:
    subprocess.run(command, check=True, env={**os.environ, "PIP_NO_INPUT": "1"})


#: Files nothing reads at run time: pip's list of installed files, software bills of
#: materials, type stubs, and Powertools' copy of Swagger UI (1.7 MB of JavaScript and
#: CSS, served only by ``enable_swagger()`` without a ``swagger_base_url``; no handler
#: enables it). Licences and ``METADATA`` stay (`importlib.metadata` reads it).
UNUSED_AT_RUN_TIME = (
    "*.dist-info/RECORD", "*.dist-info/sboms", "**/*.pyi",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.min.js",
    "aws_lambda_powertools/event_handler/openapi/swagger_ui/*.min.css",
)  # fmt: skip


def _strip(site: Path) -> None:
    """Remove what a dependency may have pulled in that Lambda provides, caches, and
    `UNUSED_AT_RUN_TIME`."""
    for entry in site.iterdir():
        base = entry.name.split("-", 1)[0].lower()
        if base in PROVIDED_BY_LAMBDA or entry.name in {"bin", "__pycache__"}:
            shutil.rmtree(entry, ignore_errors=True)
    for cache in site.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)
    for pattern in UNUSED_AT_RUN_TIME:
        for path in site.glob(pattern):
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()


def _compile(site: Path, target: Target) -> None:
    if target.bytecode:
        Compiler(target.python).compile(site, keep_source=False)


def _entry_key(name: str) -> str:
    """A layer entry's name as installed: ``m.pyc`` (compiled, sourceless) is ``m.py``."""
    return name[:-1] if name.endswith(".pyc") else name


def build_dependencies(root: Path = ROOT, *, run: Runner = _run, target: Target = LAMBDA) -> Path:
    """Install the common runtime dependencies for `target` as a Lambda layer directory
    (``python/`` inside)."""
    requirements = common_requirements(root)
    key = _digest(part.encode() for part in (target.key, *sorted(requirements), *UNUSED_AT_RUN_TIME))

    def fill(staging: Path) -> None:
        site = staging / "python"
        site.mkdir()
        run(pip_command(requirements, site, target))
        _strip(site)
        _compile(site, target)

    return _materialize(root / BUILD_DIR / f"{target.kind('deps')}-{key}", fill)


def installed_pins(site: Path) -> list[str]:
    """``name==version`` of every distribution installed in `site` (its ``*.dist-info``)."""
    pins = []
    for info in sorted(site.glob("*.dist-info")):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        pins.append(f"{name}=={version}")
    return pins


def build_model_dependencies(
    root: Path = ROOT, *, run: Runner = _run, target: Target = LAMBDA
) -> Path:
    """Install the model SDK as a second layer holding only what the common layer lacks.

    pip resolves the SDK together with the common layer's exact versions, so the two
    layers agree on every shared dependency (pydantic, anyio, ...); what the common layer
    already has is then removed. Lambda merges both layers into ``/opt/python``.
    """
    return _build_above_common(model_requirements(root), "model", root, run=run, target=target)


def tracing_requirements(root: Path = ROOT) -> list[str]:
    """The ``tracing`` extra of ``pyproject.toml``: the OpenTelemetry SDK and exporter."""
    with (root / "pyproject.toml").open("rb") as file:
        extra: list[str] = tomllib.load(file)["project"]["optional-dependencies"]["tracing"]
    return extra


def build_tracing_dependencies(root: Path = ROOT, *, run: Runner = _run, target: Target = LAMBDA) -> Path:
    """The tracing extra as a layer of what the common layer lacks, made like the model
    SDK's; added to the functions only when the stack's ``tracing`` is on."""
    return _build_above_common(tracing_requirements(root), "tracing", root, run=run, target=target)


def _build_above_common(requirements: list[str], kind: str, root: Path, *, run: Runner, target: Target) -> Path:
    common = build_dependencies(root, run=run, target=target) / "python"
    key = _digest(
        part.encode()
        for part in (target.key, *sorted(requirements), *UNUSED_AT_RUN_TIME, common.parent.name)
    )

    def fill(staging: Path) -> None:
        site = staging / "python"
        site.mkdir()
        run(pip_command([*requirements, *installed_pins(common)], site, target))
        _strip(site)
        shared = {_entry_key(entry.name) for entry in common.iterdir()}
        for entry in site.iterdir():
            if entry.name not in shared:
                continue
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        _compile(site, target)

    return _materialize(root / BUILD_DIR / f"{target.kind(kind)}-{key}", fill)


def tree_size(path: Path) -> int:
    """Bytes of all files under `path` (an asset's unzipped size)."""
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
