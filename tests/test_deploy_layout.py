"""Layout of `larq_mobisearch.deploy`: one concept per module, the public API re-exported, old import paths
still served, no import of click in the library, no cycle between `search.costs` and `deploy`."""

import ast
import importlib
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import larq_mobisearch  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "larq_mobisearch"
DEPLOY = PACKAGE / "deploy"


def _imports(path: Path):
    """(module, names) of every import statement of a file; relative modules resolved against its package."""
    tree = ast.parse(path.read_text())
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield a.name, []
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            yield module, [a.name for a in node.names]


def test_deploy_modules_are_small_and_documented():
    for path in sorted(DEPLOY.glob("*.py")):
        text = path.read_text()
        assert len(text.splitlines()) <= 400, f"{path.name} has {len(text.splitlines())} lines"
        doc = ast.get_docstring(ast.parse(text))
        assert doc and len(doc) > 40, f"{path.name} has no module docstring"


def test_public_api_is_reexported_and_resolves():
    from larq_mobisearch import deploy

    assert len(deploy.__all__) > 60
    for name in deploy.__all__:
        assert getattr(deploy, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        deploy.nope


@pytest.mark.parametrize("old, names", [
    ("larq_mobisearch.latency", ["LatencyTable", "measure_latencies", "build_latency_table", "LatencyCostModel"]),
    ("larq_mobisearch.devices", ["parse_benchmark_output", "latency_table_from_benchmark_outputs", "load_manifest"]),
    ("larq_mobisearch.export", ["export_tflite", "verify_tflite", "op_census", "binary_convs", "sign_margins"]),
    ("larq_mobisearch.deploy.latency", ["load_latency_table", "measure_latency"]),
    ("larq_mobisearch.deploy.devices", ["parse_benchmark_output", "export_calibration_models"]),
])
def test_old_import_paths_still_work(old, names):
    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert any(issubclass(w.category, DeprecationWarning) and old in str(w.message) for w in caught)
    for name in names:
        assert callable(getattr(module, name)) or getattr(module, name) is not None


def test_library_never_imports_click_and_has_no_private_cross_imports():
    for path in PACKAGE.rglob("*.py"):
        for module, names in _imports(path):
            if path.name != "cli.py":
                assert module.split(".")[0] != "click", f"{path} imports click"
            if module.startswith("larq_mobisearch"):
                where = ROOT.joinpath(*module.split("."))
                private = [n for n in names if n.startswith("_") and not n.startswith("__")
                           and not (where / f"{n}.py").exists()]  # a package's own private module is fine
                assert not private, f"{path} imports private names {private} from {module}"


def test_latency_table_is_pure_and_search_costs_imports_it_without_a_cycle():
    for name in ("latency_table.py", "schema.py", "benchmark_output.py"):
        modules = [m for m, _ in _imports(DEPLOY / name)]
        assert not any(m.startswith(("tensorflow", "larq_compute_engine", "larq_mobisearch.search")) or m == "larq"
                       for m in modules), (name, modules)
    # a fresh interpreter: search.costs first (as larq_mobisearch/__init__ does), then deploy's TF modules
    code = ("import larq_mobisearch.search.costs as c, larq_mobisearch.deploy.host_table as h; "
            "print(c.LatencyCostModel.__module__, h.build_latency_table.__module__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=240,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["larq_mobisearch.search.costs", "larq_mobisearch.deploy.host_table"]
