"""`benchmarks/suite_time.py` times the real ``.ci/run`` and reads its output: run here on a copy of ``.ci/run`` whose
README's test command runs a tiny pytest file with known outcomes (the reference: what the file was written to do)."""

import shutil
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import suite_md  # noqa: E402
import suite_time  # noqa: E402

TINY_TESTS = """
    import time
    import pytest

    def test_one():
        assert 1 + 1 == 2

    def test_slow():
        time.sleep(0.3)

    @pytest.mark.skip(reason="on purpose")
    def test_skipped():
        pass

    def test_fails_or_not():
        assert {fail} is False
"""
# prints the skip line tests/conftest.py prints (`.ci/run` reads it)
TINY_CONFTEST = """
    def pytest_terminal_summary(terminalreporter, exitstatus, config):
        terminalreporter.write_line(f"skipped tests: {len(terminalreporter.stats.get('skipped', []))}")
"""


def checkout(tmp_path: Path, fail: bool) -> Path:
    root = tmp_path / "repo"
    (root / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", root / ".ci" / "run")
    (root / "tests").mkdir()
    (root / "tests" / "test_tiny.py").write_text(textwrap.dedent(TINY_TESTS.format(fail=fail)))
    (root / "tests" / "conftest.py").write_text(textwrap.dedent(TINY_CONFTEST))
    (root / "README.md").write_text("# tiny\n\n```bash\necho main job\n"
                                    f"{sys.executable} -m pytest -q -p no:cacheprovider tests    # tests\n```\n")
    return root


def test_suite_time_runs_ci_run_and_records_counts_times_and_slowest_tests(tmp_path):
    lines = []
    row = suite_time.run_suite(2, root=checkout(tmp_path, fail=False), echo=lines.append)
    assert row["exit_status"] == 0 and row["skipped"] == 1
    assert row["counts"] == {"passed": 3, "skipped": 1}
    assert row["commit"] is None  # not a git checkout
    # the figures are the ones printed (the echoed output, read here with plain string splitting)
    ci = next(line for line in lines if line.startswith("CI: pytest:"))
    assert row["pytest_seconds"] == float(ci.split(" in ")[1].split("s")[0])
    assert row["ci_wall_seconds"] == int(ci.split("wall time with the install ")[1].split(" ")[0])
    printed = {line.split()[-1]: float(line.split("s ")[0]) for line in lines
               if line.split()[-1:] == ["tests/test_tiny.py::test_slow"]}
    assert {s["test"]: s["seconds"] for s in row["slowest"]}["tests/test_tiny.py::test_slow"] == \
        printed["tests/test_tiny.py::test_slow"]


def test_a_failing_suite_is_recorded_with_its_exit_status_and_never_counts_as_the_idle_figure(tmp_path):
    row = suite_time.run_suite(2, root=checkout(tmp_path, fail=True), echo=lambda line: None)
    assert row["exit_status"] == 1 and row["counts"]["failed"] == 1 and row["counts"]["passed"] == 2
    idle = dict(row, idle=True, pytest_seconds=100.0)
    assert suite_md.latest_idle({"runs": [idle]}) is None  # failed: not quoted
    ok = dict(idle, exit_status=0)
    assert suite_md.latest_idle({"runs": [ok, dict(ok, idle=False)]}) is ok


def test_idle_means_a_quiet_machine_before_and_only_the_two_workers_during():
    assert suite_time.is_idle([0.2, 1.0, 1.0], 3.6)  # the suite's own subprocess tests
    assert not suite_time.is_idle([0.6, 0.1, 0.1], 2.0)  # something ran before
    assert not suite_time.is_idle([0.1, 0.1, 0.1], 5.0)  # something ran beside it
    assert not suite_time.is_idle(None, 2.0)
