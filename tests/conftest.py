"""Shared test set-up: select Keras 2 before any test module imports TensorFlow or Larq (by importing
larq_mobisearch, which does not import TensorFlow: the same rule as for users, an explicit TF_USE_LEGACY_KERAS=0
is refused); a seeded NumPy generator; TFLite ops through the library's flatbuffer reader; ONE finished digits
run (CLI, tiny settings) and one host latency table shared by the CLI, search, report and supernet tests; their
xdist groups; one TensorFlow thread per pool in each xdist worker; a less frequent garbage collector; under CI
(env var CI set), a session with an unexpected skip fails."""

import gc
import os
import shutil
from collections import namedtuple

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One TensorFlow thread per pool in each xdist worker (set before TensorFlow creates its pools): the README's
    # two workers on two cores otherwise run two threads each, and the oversubscribed pools spin (measured: the
    # supernet and methods tests 13% faster). Subprocesses the tests start inherit it.
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")

import numpy as np
import pytest

import larq_mobisearch  # noqa: F401  (sets TF_USE_LEGACY_KERAS=1 before any test imports TensorFlow)
from run_helpers import TINY, invoke  # tests/: the shared run's settings (imports no TensorFlow)

# Python's cyclic garbage collector, first generation at 10,000 new objects instead of 700: a worker's heap grows to
# ~2.4M live objects (the traced graphs of the models tests cache per process), and each full collection walks all
# of them. Measured over a whole run: the collector's CPU time per worker 19 s -> 10 s, peak memory 4-4.8 GB both ways.
gc.set_threshold(10_000, 10, 10)

TfliteOp = namedtuple("TfliteOp", "name inputs outputs options")


def parse_tflite_ops(flatbuffer: bytes):
    """Operators of subgraph 0 in execution order, read with the library's one flatbuffer reader: name (builtin
    name or custom code), input and output tensor shapes, options (flexbuffer dict for custom ops such as
    LceBconv2d, the builtin options object otherwise)."""
    from larq_mobisearch.deploy.flatbuffer import read_model

    return [TfliteOp(op.name, op.input_shapes, op.output_shapes, op.options) for op in read_model(flatbuffer).ops(0)]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def tflite_ops():
    return parse_tflite_ops


# ----------------------------------------------------------------------------------------------------------
# One digits run for the whole session

@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """(run_dir, output) of `mobisearch run` with `TINY`: supernet, default search, retraining, export.
    Read-only for tests: one that changes the run works on `copy_run(...)`."""
    run_dir = tmp_path_factory.mktemp("shared_run") / "digits"
    result = invoke("run", "--quiet", "--run-dir", run_dir, *TINY)
    assert result.exit_code == 0, result.output
    return run_dir, result.output


@pytest.fixture(scope="session")
def host_latency_table(digits_run, tmp_path_factory):
    """A host latency table (3 timing rounds) of the shared run's architecture and search space."""
    run_dir, _ = digits_run
    out = tmp_path_factory.mktemp("latency") / "host.json"
    result = invoke("latency-table", "--quiet", "--run-dir", run_dir, "--runs", "3", "--calibration-samples", "2",
                    "--output", out)
    assert result.exit_code == 0, result.output
    return out


# ----------------------------------------------------------------------------------------------------------
# pytest-xdist (the README runs `-n 2 --dist loadgroup`): a test that uses a shared fixture of the tests (session or
# module scope, defined here or in a test module) joins that fixture's group, so each shared fixture is built by
# one worker only; every other test is balanced one by one.

#: Session fixtures built on the shared digits run: one group, one worker.
DIGITS_RUN_FIXTURES = {"digits_run", "host_latency_table", "run_copy"}
#: Shared fixtures too cheap to pin their users to one worker.
CHEAP_SHARED_FIXTURES = {"tflite_ops"}


def _shared_fixture_group(item):
    names = set(getattr(item, "fixturenames", ()))
    if names & DIGITS_RUN_FIXTURES:
        return "digits_run"
    info = getattr(item, "_fixtureinfo", None)
    for name in sorted(names - CHEAP_SHARED_FIXTURES):
        for fixturedef in (info.name2fixturedefs.get(name, ()) if info else ()):
            module = getattr(fixturedef.func, "__module__", "")
            if fixturedef.scope in ("session", "module") and (module == "conftest" or module.startswith("test_")):
                return f"{module}::{name}"
    return None


@pytest.hookimpl(tryfirst=True)  # before xdist's own hook reads the marks (it runs first otherwise)
def pytest_collection_modifyitems(config, items):
    groups = {}
    for item in items:
        group = _shared_fixture_group(item)
        if group:
            item.add_marker(pytest.mark.xdist_group(group))
        groups[item.nodeid] = group or item.nodeid
    # Slow tests (marked `slow`: ~10 s or more) first, each with its whole xdist group, the order kept otherwise:
    # xdist hands out work in collection order, so a long test collected last keeps one worker busy while the other
    # waits (measured: a 24 s tail with the two slowest-but-one tests collected last).
    slow_groups = {groups[item.nodeid] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: groups[item.nodeid] not in slow_groups)


# ----------------------------------------------------------------------------------------------------------
# CI: no unexpected skips

#: Skips allowed under CI, by test node id, each with why it cannot run there. Empty: everything runs in CI
#: (.ci/run installs larq-zoo and Fashion-MNIST).
CI_ALLOWED_SKIPS = {}


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    skipped = terminalreporter.stats.get("skipped", [])
    terminalreporter.write_line(f"skipped tests: {len(skipped)}")
    if not os.environ.get("CI"):
        return
    unexpected = [r for r in skipped if r.nodeid not in CI_ALLOWED_SKIPS]
    if unexpected:
        terminalreporter.write_line("CI: unexpected skips (install what they need, or add them to "
                                    "CI_ALLOWED_SKIPS in tests/conftest.py with the reason):", red=True)
        for r in unexpected:
            reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
            terminalreporter.write_line(f"  {r.nodeid}: {reason}", red=True)


def pytest_sessionfinish(session, exitstatus):
    if os.environ.get("CI") and session.exitstatus == 0:
        skipped = session.config.pluginmanager.get_plugin("terminalreporter")
        stats = skipped.stats.get("skipped", []) if skipped else []
        if any(r.nodeid not in CI_ALLOWED_SKIPS for r in stats):
            session.exitstatus = 1
