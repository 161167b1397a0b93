"""Lambda packaging: what goes into the source asset, the pip command, the cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from infra import bundling


def _project(root: Path) -> Path:
    files = {
        "pyproject.toml": '[project]\nname = "x"\ndependencies = ["pydantic>=2", "boto3>=1.40", '
        '"Aws_Lambda-Powertools[tracer]>=3", "botocore"]\n',
        "agent_runtime/__init__.py": "",
        "agent_runtime/loop.py": "X = 1\n",
        "agent_runtime/__pycache__/loop.cpython-311.pyc": "bytecode",
        "agent_runtime/testing/__init__.py": "",
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


def test_source_asset_has_the_packages_and_no_tests_or_caches(tmp_path: Path) -> None:
    root = _project(tmp_path)
    asset = bundling.build_source(root)
    copied = sorted(p.relative_to(asset).as_posix() for p in asset.rglob("*") if p.is_file())
    assert copied == [
        "agent_runtime/__init__.py",
        "agent_runtime/loop.py",
        "agent_runtime/testing/__init__.py",
        "agents/support_assistant.py",
        "functions/worker.py",
    ]
    assert asset.parent == root / bundling.BUILD_DIR


def test_source_asset_is_cached_by_content(tmp_path: Path) -> None:
    root = _project(tmp_path)
    first = bundling.build_source(root)
    assert bundling.build_source(root) == first
    (root / "agent_runtime" / "loop.py").write_text("X = 2\n")
    second = bundling.build_source(root)
    assert second != first
    assert not first.exists()  # the stale build is pruned
    assert (second / "agent_runtime" / "loop.py").read_text() == "X = 2\n"


def test_requirements_leave_out_what_lambda_provides(tmp_path: Path) -> None:
    root = _project(tmp_path)
    assert bundling.runtime_requirements(root) == [
        "pydantic>=2",
        "Aws_Lambda-Powertools[tracer]>=3",
    ]


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

    layer = bundling.build_dependencies(root, run=fake_pip)
    assert bundling.build_dependencies(root, run=fake_pip) == layer
    assert len(calls) == 1
    assert sorted(p.name for p in (layer / "python").iterdir()) == ["pydantic"]
    assert not (layer / "python" / "pydantic" / "__pycache__").exists()


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("AGENT_RUNTIME_TEST_PIP") != "1",
    reason="installs real wheels; set AGENT_RUNTIME_TEST_PIP=1",
)
def test_real_dependency_layer_imports_nothing_lambda_provides() -> None:
    layer = bundling.build_dependencies()
    names = {entry.name.split("-")[0].lower() for entry in (layer / "python").iterdir()}
    assert {"pydantic", "anthropic", "aws_lambda_powertools", "httpx"} <= names
    assert not names & bundling.PROVIDED_BY_LAMBDA
