"""Lambda packaging: what goes into the source asset and each layer, the pip command,
the cache."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from aws_cdk import aws_lambda as lambda_

from infra import bundling
from infra.constructs.functions import ARCHITECTURE, RUNTIME


def _project(root: Path) -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "x"\ndependencies = ["pydantic>=2", "boto3>=1.40", "httpx>=0.28", '
        '"Aws_Lambda-Powertools[tracer]>=3", "botocore", "httpx2"]\n',
        "agent_runtime/__init__.py": "",
        "agent_runtime/loop.py": "X = 1\n",
        "agent_runtime/__pycache__/loop.cpython-311.pyc": "bytecode",
        "agent_runtime/testing/__init__.py": "",
        "agent_runtime/dev/stack.py": "",
        "agent_runtime/client/__init__.py": "",
        "agent_runtime/cli.py": "",
        "agent_runtime/models/test.py": "",
        "functions/worker.py": "def handler(event, context): ...\n",
        "functions/tests/test_worker.py": "",
        "agents/support_assistant.py": "agent = None\n",
        "agents/.mypy_cache/x.json": "{}",
        "tests/test_x.py": "",
        "infra/stack.py": "",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


LOCAL = bundling.local_target()


def test_source_asset_has_the_packages_and_no_tests_or_caches(tmp_path: Path) -> None:
    root = _project(tmp_path)
    asset = bundling.build_source(root, bytecode_for=None)
    copied = sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file())
    # No local stack, test fakes, client SDK or command line: no handler imports them.
    assert copied == [
        "agent_runtime/__init__.py",
        "agent_runtime/loop.py",
        "agent_runtime/models/test.py",
        "agents/support_assistant.py",
        "functions/worker.py",
    ]
    assert asset.parent == root / bundling.BUILD_DIR


def test_source_asset_is_cached_by_content(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = bundling.build_source(root, bytecode_for=None)
    assert bundling.build_source(root, bytecode_for=None) == first
    (root / "agent_runtime" / "loop.py").write_text("X = 2\n")
    second = bundling.build_source(root, bytecode_for=None)
    assert second != first
    assert not first.exists()  # the stale build is pruned
    assert (second / "agent_runtime" / "loop.py").read_text() == "X = 2\n"


def test_source_asset_carries_its_bytecode_beside_the_sources(tmp_path: Path) -> None:
    root = _project(tmp_path)
    plain = bundling.build_source(root, bytecode_for=None)
    asset = bundling.build_source(root, bytecode_for=LOCAL.python)
    assert asset != plain and plain.exists()  # one build per Python: neither prunes the other
    tag = sys.implementation.cache_tag
    assert (asset / "agent_runtime" / "loop.py").is_file()  # tracebacks keep their text
    assert (asset / "agent_runtime" / "__pycache__" / f"loop.{tag}.pyc").is_file()
    assert (asset / "functions" / "__pycache__" / f"worker.{tag}.pyc").is_file()


def test_requirements_leave_out_what_lambda_provides(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert bundling.runtime_requirements(root) == [
        "pydantic>=2",
        "Aws_Lambda-Powertools[tracer]>=3",
        "httpx2",
    ]


def test_the_model_sdk_is_split_from_the_common_requirements(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert bundling.common_requirements(root) == ["pydantic>=2", "Aws_Lambda-Powertools[tracer]>=3"]
    assert bundling.model_requirements(root) == ["httpx2"]


def test_pip_for_this_machine_selects_no_platform(tmp_path: Path) -> None:
    command = bundling.pip_command(["pydantic>=2"], tmp_path, LOCAL)
    assert "--platform" not in command and "--python-version" not in command
    assert "--only-binary=:all:" in command and "--no-compile" in command


def test_what_is_built_matches_the_functions_runtime_and_architecture() -> None:
    """Sourceless bytecode for another Python than the functions' would not even import."""
    assert RUNTIME.name == f"python{bundling.LAMBDA_PYTHON}"
    assert ARCHITECTURE.name == lambda_.Architecture.ARM_64.name == "arm64"
    assert all(platform.endswith("_aarch64") for platform in bundling.LAMBDA_PLATFORMS)


def test_pip_targets_lambda_python_313_arm64_wheels_only(tmp_path: Path) -> None:
    command = bundling.pip_command(["pydantic>=2"], tmp_path)
    text = " ".join(command)
    assert "--only-binary=:all:" in command
    assert "--python-version 3.13" in text
    assert "--implementation cp" in text
    assert "--platform manylinux2014_aarch64" in text
    assert f"--target {tmp_path}" in text
    assert command[-1] == "pydantic>=2"


def test_dependencies_are_built_once_per_requirement_set(tmp_path: Path) -> None:
    root = _project(tmp_path)
    calls: list[Sequence[str]] = []

    def fake_pip(command: Sequence[str]) -> None:
        calls.append(command)
        target = Path(command[command.index("--target") + 1])
        (target / "pydantic").mkdir()
        (target / "pydantic" / "__init__.py").write_text("")
        (target / "boto3").mkdir()  # pulled in by something: removed
        (target / "pydantic" / "__pycache__").mkdir()

    layer = bundling.build_dependencies(root, run=fake_pip, target=LOCAL)
    assert bundling.build_dependencies(root, run=fake_pip, target=LOCAL) == layer
    assert len(calls) == 1
    assert calls[0][-2:] == ["pydantic>=2", "Aws_Lambda-Powertools[tracer]>=3"]  # no model SDK
    assert sorted(p.name for p in (layer / "python").iterdir()) == ["pydantic"]
    assert not (layer / "python" / "pydantic" / "__pycache__").exists()


def test_dependency_layers_ship_bytecode_without_sources_or_install_records(tmp_path: Path) -> None:
    root = _project(tmp_path)

    def fake_pip(command: Sequence[str]) -> None:
        site = Path(command[command.index("--target") + 1])
        files = {
            "pydantic/__init__.py": "from pydantic.main import VALUE\n",
            "pydantic/main.py": "VALUE = 42\n",
            "pydantic/main.pyi": "VALUE: int\n",
            "pydantic/py.typed": "",
            "pydantic-2.14.3.dist-info/METADATA": "Name: pydantic\nVersion: 2.14.3\n",
            "pydantic-2.14.3.dist-info/RECORD": "pydantic/__init__.py,,\n",
            "pydantic-2.14.3.dist-info/licenses/LICENSE": "MIT",
            "pydantic-2.14.3.dist-info/sboms/pydantic.cyclonedx.json": "{}",
            "typing_extensions.py": "X = 1\n",
            "aws_lambda_powertools/event_handler/openapi/swagger_ui/html.py": "",
            "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui-bundle.min.js": "js",
            "aws_lambda_powertools/event_handler/openapi/swagger_ui/swagger-ui.min.css": "css",
        }
        for name, text in files.items():
            (site / name).parent.mkdir(parents=True, exist_ok=True)
            (site / name).write_text(text)

    site = bundling.build_dependencies(root, run=fake_pip, target=LOCAL) / "python"
    shipped = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert shipped == [
        "aws_lambda_powertools/event_handler/openapi/swagger_ui/html.pyc",
        "pydantic-2.14.3.dist-info/METADATA",
        "pydantic-2.14.3.dist-info/licenses/LICENSE",
        "pydantic/__init__.pyc",
        "pydantic/main.pyc",
        "pydantic/py.typed",
        "typing_extensions.pyc",
    ]
    # What Lambda does: import from the layer, with nothing else on the path.
    probe = "import pydantic, typing_extensions; print(pydantic.VALUE, pydantic.__file__.endswith('.pyc'))"
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path.insert(0, {str(site)!r}); {probe}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert result.stdout.split() == ["42", "True"]


def _install(target: Path, *entries: str) -> None:
    for entry in entries:
        path = target / entry
        if entry.endswith(".py"):
            path.write_text("")
        else:
            path.mkdir()
            (path / "__init__.py").write_text("")


def test_model_layer_holds_only_what_the_common_layer_lacks(tmp_path: Path) -> None:
    root = _project(tmp_path)
    calls: list[Sequence[str]] = []

    def fake_pip(command: Sequence[str]) -> None:
        calls.append(command)
        target = Path(command[command.index("--target") + 1])
        _install(target, "pydantic", "pydantic-2.14.3.dist-info", "typing_extensions.py")
        if "httpx2" in command:  # the client brings the common packages again
            _install(target, "httpx2", "httpx2-2.16.2.dist-info", "anyio", "boto3")

    common = bundling.build_dependencies(root, run=fake_pip, target=LOCAL)
    model = bundling.build_model_dependencies(root, run=fake_pip, target=LOCAL)
    assert bundling.build_model_dependencies(root, run=fake_pip, target=LOCAL) == model
    assert len(calls) == 2  # the common layer once, the model layer once
    # Resolved with the common layer's exact versions, so the two layers agree.
    assert calls[1][-2:] == ["httpx2", "pydantic==2.14.3"]
    # typing_extensions is compiled in the common layer (typing_extensions.pyc): still
    # recognized as the same module, so the model layer leaves it out.
    assert sorted(p.name for p in (model / "python").iterdir()) == [
        "anyio",
        "httpx2",
        "httpx2-2.16.2.dist-info",
    ]
    assert (common / "python" / "pydantic").is_dir()
    assert (common / "python" / "typing_extensions.pyc").is_file()
    assert model.name.startswith(f"model@{LOCAL.python}-") and common.name.startswith(f"deps@{LOCAL.python}-")


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AGENT_RUNTIME_TEST_PIP") != "1",
    reason="installs real wheels; set AGENT_RUNTIME_TEST_PIP=1",
)
def test_real_dependency_layers_split_the_model_sdk_and_leave_out_what_lambda_provides() -> None:
    def names(layer: Path) -> set[str]:
        return {entry.name.split("-")[0].lower() for entry in (layer / "python").iterdir()}

    common = names(bundling.build_dependencies())
    model = names(bundling.build_model_dependencies())
    assert {"pydantic", "pydantic_core", "aws_lambda_powertools", "httpx"} <= common
    assert {"httpx2", "anyio"} <= model and "anthropic" not in model
    assert "httpx2" not in common
    assert not common & model
    assert not (common | model) & bundling.PROVIDED_BY_LAMBDA
    # Every handler but the worker gets the common layer alone: it must stay small.
    size = bundling.tree_size(bundling.build_dependencies())
    assert size + bundling.tree_size(bundling.build_source()) <= 15_000_000
