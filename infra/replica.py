"""The deployed layout built for this machine: what Lambda runs, importable here.

`build` runs the deployment's own pipeline (`infra.bundling`) for `bundling.local_target`:
the source asset with its bytecode, the two layers as bytecode without sources. Next to
them, a directory links the packages the Lambda Python runtime provides (boto3 and what
it imports) from this interpreter's site-packages. `Replica.python` runs an isolated
interpreter (``-I -S -B``: no site-packages, no environment variables, no bytecode
written, as on Lambda) in the source directory, with exactly one function's import path.

``bench/coldstart.py`` times cold imports through it; ``tests/infra/test_deployed_layout.py``
checks that every handler imports and finds its agents that way, so a packaging rule
that drops something a handler needs fails a test rather than a deployment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from infra import bundling

#: What the Lambda Python runtime has besides the standard library.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py")


@dataclass(frozen=True)
class Replica:
    source: Path
    common: Path
    model: Path | None
    runtime: Path

    def path(self, *, calls_models: bool | None) -> list[str]:
        """A function's import path: the source, the common layer, the model SDK layer if
        it `calls_models` (the rule of `RuntimeFunctions.layers`), then the runtime's
        packages. None: the runtime's packages alone."""
        if calls_models is None:
            return [str(self.runtime)]
        layers = [self.common / "python"]
        if calls_models and self.model is not None:
            layers.append(self.model / "python")
        return [str(self.source), *(str(layer) for layer in layers), str(self.runtime)]

    def python(
        self, code: str, path: list[str], *, env: Mapping[str, str] = {}, options: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        """Run `code` in an isolated interpreter whose ``sys.path`` starts with `path`."""
        prelude = f"import sys; sys.path[:0] = {path!r}\n"
        return subprocess.run(
            [sys.executable, "-I", "-S", "-B", *options, "-c", prelude + code],
            cwd=self.source,
            env={"PATH": os.environ.get("PATH", ""), **env},
            capture_output=True,
            text=True,
            check=False,
        )


def build(*, bytecode: bool = True, root: Path = bundling.ROOT) -> Replica:
    """Build (or reuse) the layout for this machine; ``bytecode=False``: sources only."""
    target = bundling.local_target(bytecode=bytecode)
    runtime = root / bundling.BUILD_DIR.parent / "lambda-runtime"
    runtime.mkdir(parents=True, exist_ok=True)
    site = Path(sysconfig.get_paths()["purelib"])
    for name in RUNTIME_PROVIDED:
        link = runtime / name
        if not link.exists() and (site / name).exists():
            link.symlink_to(site / name)
    return Replica(
        source=bundling.build_source(root, bytecode_for=target.python if bytecode else None),
        common=bundling.build_dependencies(root, target=target),
        model=bundling.build_model_dependencies(root, target=target) if bundling.model_requirements(root) else None,
        runtime=runtime,
    )
