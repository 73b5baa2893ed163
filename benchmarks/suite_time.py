"""Time the test suite as CI runs it: ``bash .ci/run`` (the README's test command, ``CI`` set), one run per call.

Each run is appended to ``--json`` (default ``benchmarks/results/suite_time.json``), a ledger of runs: the date,
the commit (and whether the work tree had changes), pytest's own summary (passed, failed, skipped, seconds), the
wall seconds of the whole ``.ci/run`` (its dataset install check included), the slowest tests
(``--durations``, passed to pytest through ``PYTEST_ADDOPTS``), and the 1-minute load average before the run and
its maximum during it (sampled every few seconds), and the CPU. A run is *idle* when nothing else was running: the
load before it below ``IDLE_BEFORE`` and, during it, never above the suite's own two workers plus ``IDLE_MARGIN``
(its subprocess tests included). The
README quotes the latest idle run; BENCHMARKS.md lists every run (`suite_md.py`).

    .venv/bin/python benchmarks/suite_time.py      # alone on the machine: ~7-8 minutes on 2 cores

Run it with nothing else running; a run next to a benchmark is kept but marked as not idle.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_JSON = "benchmarks/results/suite_time.json"
#: Idle: 1-minute load average below this before the run ...
IDLE_BEFORE = 0.5
#: ... and at most the suite's two pytest-xdist workers plus this during it (the suite's own subprocess tests --
#: package imports, multi-worker training -- reach a load of about 3.6 on 2 cores; a 2-thread job beside it more).
IDLE_MARGIN = 2.5
WORKERS = 2
SAMPLE_SECONDS = 5.0

SUMMARY_RE = re.compile(r"^=*\s*(?P<body>(?:\d+ \w+(?:, )?)+) in (?P<seconds>[\d.]+)s")
COUNT_RE = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|warnings?|deselected)")
CI_RE = re.compile(r"^CI: pytest: .*; wall time with the install (?P<wall>\d+) s; skipped tests: (?P<skips>\S+); "
                   r"exit status (?P<rc>\d+)")
DURATION_RE = re.compile(r"^(?P<seconds>[\d.]+)s (?P<phase>call|setup|teardown)\s+(?P<test>\S+)")


def parse_output(text: str) -> Dict[str, Any]:
    """Pytest's counts and seconds, ``.ci/run``'s wall time, skip count and exit status, and the durations
    table, from the combined output of ``.ci/run``. Missing parts are None (a crashed run still gets a row)."""
    out: Dict[str, Any] = {"counts": None, "pytest_seconds": None, "ci_wall_seconds": None, "skipped": None,
                           "exit_status": None, "slowest": []}
    for line in text.splitlines():
        line = line.strip()
        m = SUMMARY_RE.match(line)
        if m:
            out["pytest_seconds"] = float(m.group("seconds"))
            out["counts"] = {k.rstrip("s") if k in ("errors", "warnings") else k: int(n)
                             for n, k in COUNT_RE.findall(m.group("body"))}
        m = CI_RE.match(line)
        if m:
            out["ci_wall_seconds"] = int(m.group("wall"))
            out["skipped"] = int(m.group("skips")) if m.group("skips").isdigit() else None
            out["exit_status"] = int(m.group("rc"))
        m = DURATION_RE.match(line)
        if m:
            out["slowest"].append({"seconds": float(m.group("seconds")), "phase": m.group("phase"),
                                   "test": m.group("test")})
    return out


def cpu() -> Dict[str, Any]:
    """The CPU's model name and whether it has AVX-512 (TensorFlow's oneDNN default depends on it), from
    /proc/cpuinfo (empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # pragma: no cover - not Linux
        return {}
    name = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    flags = re.search(r"^flags\s*:\s*(.+)$", text, re.M)
    return {"cpu": name.group(1).strip() if name else None,
            "avx512": None if flags is None else "avx512f" in flags.group(1).split()}


def is_idle(load_before: Optional[List[float]], load_max: Optional[float]) -> bool:
    """Nothing else ran: see the module docstring."""
    return (load_before is not None and load_max is not None and load_before[0] < IDLE_BEFORE
            and load_max <= WORKERS + IDLE_MARGIN)


def git_state(root: Path = ROOT) -> Dict[str, Any]:
    def git(*args):
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD") or None,
            "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


class LoadSampler:
    """Samples the 1-minute load average every `period` seconds in a thread; `max` is the largest seen."""

    def __init__(self, period: float = SAMPLE_SECONDS):
        self.period, self.max, self._stop = period, None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.period):
            load = common.load_average()
            if load is not None:
                self.max = load[0] if self.max is None else max(self.max, load[0])

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def run_suite(durations: int, root: Path = ROOT, echo=sys.stdout.write) -> Dict[str, Any]:
    """Run ``bash .ci/run`` of the checkout `root` once, echoing its output; the row for the ledger."""
    env = dict(os.environ, PYTEST_ADDOPTS=f"{os.environ.get('PYTEST_ADDOPTS', '')} --durations={durations}".strip())
    before = common.load_average()
    started = datetime.datetime.now(datetime.timezone.utc)
    t0 = time.monotonic()
    lines: List[str] = []
    with LoadSampler() as sampler:
        proc = subprocess.Popen(["bash", ".ci/run"], cwd=root, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            echo(line)
            lines.append(line)
        proc.wait()
    row = {"date": started.isoformat(timespec="seconds"), **git_state(root),
           "wall_seconds": round(time.monotonic() - t0, 1), "load_average_before": before,
           "load_max_during": sampler.max, "load_average_after": common.load_average(),
           **parse_output("".join(lines))}
    row["idle"] = is_idle(before, row["load_max_during"])
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=DEFAULT_JSON, help=f"the ledger of runs (default {DEFAULT_JSON})")
    p.add_argument("--durations", type=int, default=15, help="slowest tests to record (default 15)")
    args = p.parse_args(argv)
    if args.durations < 1:
        p.error(f"--durations must be >= 1, received {args.durations}")
    path = ROOT / args.json
    ledger = json.loads(path.read_text()) if path.is_file() else {"benchmark": "suite_time", "runs": []}
    machine = {"cpu_count": os.cpu_count(), "python": sys.version.split()[0], **cpu()}
    row = run_suite(args.durations)
    row.update(machine=machine, command=common.command_line(argv and [sys.argv[0], *argv]))
    ledger["runs"].append(row)
    # written here rather than with larq_mobisearch.fileio: importing the package would set its TensorFlow
    # environment variables in this process, and the timed `.ci/run` must inherit CI's environment unchanged
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ledger, indent=1) + "\n")
    os.replace(tmp, path)
    print(f"suite: {row['pytest_seconds']} s pytest, {row['wall_seconds']} s wall, {row['counts']}, "
          f"skipped {row['skipped']}, {'idle' if row['idle'] else 'NOT idle'} (load {row['load_average_before']} "
          f"before, max {row['load_max_during']} during) -> {path}")
    return 0 if row["exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
