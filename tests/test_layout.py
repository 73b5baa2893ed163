"""The package layout (issue 12): every module imports alone in a fresh interpreter (an import circle would
fail there), the module-level import graph has no cycle, and modules stay short."""

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "larq_mobisearch"
#: Modules allowed over ~400 lines, with the README saying why.
LONG_MODULES = {"cli.py": 560}


def module_names():
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def module_level_imports(path: Path):
    """Modules imported at module level (not inside functions) by a file, relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1 if path.name != "__init__.py" else None])
    if path.name == "__init__.py":
        package = ".".join(path.relative_to(ROOT).parts[:-1])
    out = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` imports the submodule x
                out |= {f"{mod}.{a.name}" for a in node.names} if not node.module else {mod}
            else:
                out.add(node.module)
    return {m for m in out if m.startswith("larq_mobisearch")}


def test_module_level_import_graph_has_no_cycle():
    names = set(module_names())
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        graph[name] = {m for m in module_level_imports(path) if m in names and m != name}
    state = {}

    def visit(node, stack):
        state[node] = "open"
        for dep in graph.get(node, ()):
            if state.get(dep) == "open":
                raise AssertionError(f"import cycle: {' -> '.join(stack + [node, dep])}")
            if dep not in state:
                visit(dep, stack + [node])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


#: Imports every module given on the command line in its own forked child of one interpreter that has loaded
#: only the package's top level (which selects Keras 2, as for users) and the heavy third-party libraries: a
#: fresh interpreter per module without paying TensorFlow's import 50 times. Prints the modules that failed.
_FORK_IMPORTER = r"""
import importlib, json, os, sys, traceback
import larq_mobisearch
ours = lambda: sorted(m for m in sys.modules if m.startswith("larq_mobisearch."))
top_level = ours()  # what `import larq_mobisearch` loads (each imported alone too, in a fresh interpreter)
import numpy, tensorflow, tf_keras, larq, larq_compute_engine
assert ours() == top_level, "the parent must load no package module beyond the top level's"
assert len(top_level) <= 3, top_level
failed = []
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    if os.waitpid(pid, 0)[1]:
        failed.append(name)
print(json.dumps(failed))
"""


#: Imported each in a truly fresh interpreter: the package, what its top level loads (the forked children get
#: them from the parent), and the start-up hook.
FRESH = ("larq_mobisearch", "larq_mobisearch._compat", "larq_mobisearch._keras", "larq_mobisearch._onednn",
         "larq_mobisearch._startup")


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


def test_every_module_imports_alone_in_a_fresh_interpreter():
    """Every submodule in a forked child of a parent that holds no package submodule; the package itself and
    `_compat` (which must run before TensorFlow loads) each in a truly fresh interpreter."""
    names = [n for n in module_names() if n not in FRESH]
    proc = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, *names], capture_output=True, text=True, cwd=ROOT,
                          env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [], proc.stderr[-8000:]
    for name in FRESH:
        alone = subprocess.run([sys.executable, "-c", f"import {name}"], capture_output=True, text=True, cwd=ROOT,
                               env=_env(), timeout=300)
        assert alone.returncode == 0, (name, alone.stderr[-2000:])
    assert len(names) >= 45


def test_a_module_that_fails_to_import_alone_is_caught(tmp_path):
    """The forked importer reports a failing module (here one importing a name that does not exist)."""
    pkg = tmp_path / "larq_mobisearch_probe"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "bad.py").write_text("from larq_mobisearch.nn.specs import no_such_name\n")
    env = {**_env(), "PYTHONPATH": f"{ROOT}{os.pathsep}{tmp_path}"}
    proc = subprocess.run([sys.executable, "-c", _FORK_IMPORTER, "larq_mobisearch.nn.specs",
                           "larq_mobisearch_probe.bad"], capture_output=True, text=True, cwd=ROOT, env=env,
                          timeout=600)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == ["larq_mobisearch_probe.bad"], proc.stderr[-4000:]
    assert "no_such_name" in proc.stderr


def test_pure_python_parts_do_not_load_tensorflow():
    code = ("import sys, larq_mobisearch, larq_mobisearch.config, larq_mobisearch.search, larq_mobisearch.nn.specs, "
            "larq_mobisearch.nn.space, larq_mobisearch.pipeline.rundir as r; "
            "print('tensorflow' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_are_short_and_say_what_they_are_for(path):
    text = path.read_text()
    limit = LONG_MODULES.get(str(path.relative_to(PACKAGE)), 400)
    assert len(text.splitlines()) <= limit, f"{path.name}: {len(text.splitlines())} lines"
    doc = ast.get_docstring(ast.parse(text))
    assert doc and len(doc) > 30, f"{path} has no module docstring"
