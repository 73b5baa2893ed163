"""BENCHMARKS.md section of the test suite's wall time (`suite_time.py`, ``suite_time.json``): every run, idle or
not, against the 8-minute goal, and the slowest tests of the latest idle run."""

from typing import Any, Dict, List, Optional

from suite_time import IDLE_BEFORE, IDLE_MARGIN  # benchmarks/suite_time.py (standard library only)

SUITE_CMD = ".venv/bin/python benchmarks/suite_time.py"
GOAL_SECONDS = 480  # issue 24: the suite in at most 8 minutes on an idle 2-core machine


def latest_idle(data: Optional[Dict[str, Any]]) -> Optional[Dict[str, Any]]:
    """The last idle run of the ledger that passed (None if there is none)."""
    runs = [r for r in (data or {}).get("runs", []) if r.get("idle") and r.get("exit_status") == 0]
    return runs[-1] if runs else None


def _counts(r: Dict[str, Any]) -> str:
    c = r.get("counts") or {}
    return ", ".join(f"{n} {k}" for k, n in c.items() if k in ("passed", "failed", "error", "skipped")) or "-"


def suite_markdown(data: Optional[Dict[str, Any]]) -> List[str]:
    if not data or not data.get("runs"):
        return []
    out = [
        "## Test suite time",
        "",
        "```bash",
        SUITE_CMD,
        "```",
        "",
        "`bash .ci/run` (what CI runs: the README's test command, two pytest-xdist workers) timed on this 2-core "
        f"machine, one row per run. *Idle*: 1-minute load average below {IDLE_BEFORE:g} before the run and never "
        f"above the two workers + {IDLE_MARGIN:g} during it (the suite's own subprocess tests reach about 3.6); a run "
        "next to a benchmark is listed but does not count.",
        "",
        "| date (UTC) | commit | CPU | tests | pytest (s) | whole .ci/run (s) | load before / max during | idle |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in data["runs"]:
        before = (r.get("load_average_before") or [None])[0]
        m = r.get("machine") or {}
        cpu = f"{m.get('cpu', '-')}{'' if m.get('avx512') is None else ', AVX-512' if m['avx512'] else ', no AVX-512'}"
        out.append(f"| {r['date'][:16].replace('T', ' ')} | `{(r.get('commit') or '-')[:8]}`"
                   f"{' (changed)' if r.get('dirty') else ''} | {cpu} | {_counts(r)} | {r.get('pytest_seconds')} | "
                   f"{r.get('ci_wall_seconds')} | {before} / {r.get('load_max_during')} | "
                   f"{'yes' if r.get('idle') else 'no'} |")
    idle = latest_idle(data)
    out.append("")
    if idle is None:
        out += ["Reading: no idle passing run yet.", ""]
        return out
    verdict = "within" if idle["pytest_seconds"] <= GOAL_SECONDS else "over"
    out += [f"Reading: the latest idle run took **{idle['pytest_seconds']:.0f} s** "
            f"({idle['pytest_seconds'] / 60:.1f} min; {_counts(idle)}), {verdict} the goal of "
            f"{GOAL_SECONDS // 60} minutes.", ""]
    if idle.get("slowest"):
        out += ["Slowest tests of that run (each worker runs its share in parallel):", "",
                "| seconds | phase | test |", "|---|---|---|"]
        out += [f"| {s['seconds']:.1f} | {s['phase']} | `{s['test']}` |" for s in idle["slowest"]]
        out.append("")
    return out
