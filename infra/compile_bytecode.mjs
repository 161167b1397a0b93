// Compile a directory of Python files with Pyodide's CPython (see infra/bytecode.py).
//   node compile_bytecode.mjs <pyodide package dir> <tree> <python version> <keep source 1|0>
// The same compileall call as the in-process path: unchecked-hash pycs, in __pycache__
// (keep source) or beside each source (legacy layout, whose sources the caller removes).
import { pathToFileURL } from "node:url";
import path from "node:path";

const [pyodideDir, tree, python, keepSource] = process.argv.slice(2);
const { loadPyodide } = await import(pathToFileURL(path.join(pyodideDir, "pyodide.mjs")).href);
const pyodide = await loadPyodide({ indexURL: pyodideDir + path.sep });
pyodide.FS.mkdirTree("/tree");
pyodide.FS.mount(pyodide.FS.filesystems.NODEFS, { root: tree }, "/tree");
pyodide.globals.set("python", python);
pyodide.globals.set("legacy", keepSource !== "1");
const failed = pyodide.runPython(`
import compileall, py_compile, sys
running = f"{sys.version_info.major}.{sys.version_info.minor}"
if running != python:
    raise SystemExit(f"this Pyodide embeds Python {running}, not {python}")
ok = compileall.compile_dir(
    "/tree", quiet=1, legacy=legacy,
    invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
)
not ok
`);
if (failed) {
  console.error(`some files under ${tree} do not compile`);
  process.exit(1);
}
