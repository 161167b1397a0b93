"""Bytecode compiled at build time: for this interpreter in process, for Lambda's Python
through Pyodide, in both layouts, unchecked-hash."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from infra import bundling
from infra.bytecode import BytecodeError, Compiler, running_python

#: CPython 3.13's bytecode magic number (Lib/importlib/_bootstrap_external.py: 3571).
MAGIC_313 = (3571).to_bytes(2, "little") + b"\r\n"
UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, do not check the source


def _tree(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("from pkg.mod import answer\n")
    (root / "pkg" / "mod.py").write_text('def answer() -> int:\n    """The answer."""\n    return 42\n')
    return root


def _header(pyc: Path) -> tuple[bytes, int]:
    data = pyc.read_bytes()
    return data[:4], int.from_bytes(data[4:8], "little")


def _run_isolated(path: Path, code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", f"import sys; sys.path.insert(0, {str(path)!r}); {code}"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def test_keeping_the_source_puts_unchecked_bytecode_in_pycache(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src")
    Compiler(running_python()).compile(tree, keep_source=True)
    pyc = tree / "pkg" / "__pycache__" / f"mod.{sys.implementation.cache_tag}.pyc"
    assert (tree / "pkg" / "mod.py").is_file()
    assert _header(pyc) == (importlib.util.MAGIC_NUMBER, UNCHECKED_HASH)
    # Used even though the source changed after compiling: nothing compares them, which
    # is what an immutable deployment wants (and no mtime is needed to agree).
    (tree / "pkg" / "mod.py").write_text("def answer() -> int:\n    return 0\n")
    assert _run_isolated(tree, "import pkg; print(pkg.answer())") == "42"


def test_sourceless_layout_replaces_each_source_by_its_bytecode(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "site")
    Compiler(running_python()).compile(tree, keep_source=False)
    assert sorted(p.relative_to(tree).as_posix() for p in tree.rglob("*") if p.is_file()) == [
        "pkg/__init__.pyc",
        "pkg/mod.pyc",
    ]
    assert _run_isolated(tree, "import pkg; print(pkg.answer(), pkg.answer.__doc__)") == "42 The answer."


def test_a_file_that_does_not_compile_fails_the_build(tmp_path: Path) -> None:
    tree = _tree(tmp_path / "src")
    (tree / "pkg" / "broken.py").write_text("def oops(:\n")
    with pytest.raises(BytecodeError, match="do not compile"):
        Compiler(running_python()).compile(tree, keep_source=True)


def test_a_python_no_tool_can_compile_for_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BytecodeError, match=r"no Pyodide release embeds Python 3\.7"):
        Compiler("3.7").compile(_tree(tmp_path / "src"), keep_source=True)


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs Node.js and npm")
@pytest.mark.skipif(running_python() == bundling.LAMBDA_PYTHON, reason="this Python compiles for Lambda itself")
def test_lambda_bytecode_is_cpython_313s_compiled_by_pyodide(tmp_path: Path) -> None:
    """The build machine runs another Python: Pyodide's CPython 3.13 compiles, in both
    layouts, what Lambda's Python 3.13 loads without its source."""
    kept, sourceless = _tree(tmp_path / "src"), _tree(tmp_path / "site")
    compiler = Compiler(bundling.LAMBDA_PYTHON)
    compiler.compile(kept, keep_source=True)
    compiler.compile(sourceless, keep_source=False)
    assert (kept / "pkg" / "mod.py").is_file()
    assert _header(kept / "pkg" / "__pycache__" / "mod.cpython-313.pyc") == (MAGIC_313, UNCHECKED_HASH)
    assert not list(sourceless.rglob("*.py"))
    assert _header(sourceless / "pkg" / "mod.pyc") == (MAGIC_313, UNCHECKED_HASH)
