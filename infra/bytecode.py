"""Bytecode for the Lambda assets, compiled at build time for the Python that runs them.

Lambda's code and layers are read-only, so Python cannot cache the bytecode it compiles:
a module shipped as source is compiled again on every cold start, dependencies included.
Bytecode is specific to a CPython minor version, so it is made by CPython
`LAMBDA_PYTHON` itself: this interpreter when it is that version, otherwise Pyodide
(CPython compiled to WebAssembly, an npm package, run by the Node.js the CDK CLI needs
anyway). A build machine needs neither Docker nor a second Python.

The bytecode is unchecked-hash (PEP 552): Python loads it without comparing it to the
source's modification time, which an unzipped asset need not keep (a zip entry's time
has a two-second resolution, and asset zips may normalise it), and without reading the
source. Deployed code never changes, so
nothing can go stale.

Two layouts (`Compiler.compile`):

- ``keep_source=True`` (the project's own code): ``__pycache__/m.cpython-313.pyc`` next to
  ``m.py``, so tracebacks show the failing line.
- ``keep_source=False`` (dependencies): ``m.pyc`` in place of ``m.py``. Dependencies
  would otherwise weigh twice as much; their tracebacks show file and line, not the text.
"""

from __future__ import annotations

import compileall
import py_compile
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOOLS_DIR = Path("build") / "tools"
#: The Pyodide release per CPython version it embeds (0.29.x: CPython 3.13.2).
PYODIDE = {"3.13": "0.29.3"}
_SCRIPT = Path(__file__).with_name("compile_bytecode.mjs")


class BytecodeError(RuntimeError):
    """The bytecode could not be compiled (a missing tool, or a file that does not parse)."""


def running_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@dataclass(frozen=True)
class Compiler:
    """Compiles a directory tree of Python files for CPython `python` ("3.13")."""

    python: str
    root: Path = ROOT

    def compile(self, tree: Path, *, keep_source: bool) -> None:
        """Compile every ``.py`` under `tree` in place, in the layout `keep_source` picks."""
        if self.python == running_python():
            ok = compileall.compile_dir(
                str(tree), quiet=1, legacy=not keep_source, workers=1,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )  # fmt: skip
            if not ok:
                raise BytecodeError(f"some files under {tree} do not compile")
        else:
            self._compile_with_pyodide(tree, keep_source=keep_source)
        if not keep_source:
            drop_compiled_sources(tree)

    def _compile_with_pyodide(self, tree: Path, *, keep_source: bool) -> None:
        node = shutil.which("node")
        if node is None:
            raise BytecodeError(
                f"compiling bytecode for Python {self.python} needs Node.js (which the CDK CLI "
                "needs too), or run the build with Python " + self.python
            )
        pyodide = self.pyodide()
        result = subprocess.run(
            [node, str(_SCRIPT), str(pyodide), str(tree.resolve()), self.python,
             "1" if keep_source else "0"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise BytecodeError(f"compiling {tree} failed:\n{result.stderr.strip() or result.stdout}")

    def pyodide(self) -> Path:
        """The Pyodide package for `python`, installed from npm on first use into
        ``build/tools/`` (under a name per release, so an upgrade installs anew)."""
        version = PYODIDE.get(self.python)
        if version is None:
            raise BytecodeError(
                f"no Pyodide release embeds Python {self.python} (known: {sorted(PYODIDE)}); "
                f"run the build with Python {self.python}"
            )
        target = self.root / TOOLS_DIR / f"pyodide-{version}"
        package = target / "node_modules" / "pyodide"
        if (package / "pyodide.mjs").is_file():
            return package
        npm = shutil.which("npm")
        if npm is None:
            raise BytecodeError("installing Pyodide needs npm (it comes with Node.js)")
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
        try:
            subprocess.run(
                [npm, "install", "--prefix", str(staging), "--no-save", "--no-audit", "--no-fund",
                 "--loglevel=error", f"pyodide@{version}"],
                check=True, capture_output=True, text=True,
            )  # fmt: skip
            try:
                staging.rename(target)
            except OSError:
                if not package.is_dir():
                    raise
        except subprocess.CalledProcessError as error:
            raise BytecodeError(f"npm install pyodide@{version} failed:\n{error.stderr}") from error
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return package


def drop_compiled_sources(tree: Path) -> None:
    """Remove every ``m.py`` that has its ``m.pyc`` beside it (the sourceless layout)."""
    for source in tree.rglob("*.py"):
        if source.with_suffix(".pyc").is_file():
            source.unlink()
    for cache in tree.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


__all__ = ["BytecodeError", "Compiler", "drop_compiled_sources", "running_python"]
