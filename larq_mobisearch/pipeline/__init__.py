"""The whole method over one run directory: train the supernet once, then any number of named searches on
it, each retrained from scratch and exported (`rundir` has the layout, `stages` the four stages, `report`
the reports)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict

from .report import list_searches, parameter_memory, search_summary, searches_table, write_run_report, \
    write_search_report
from .rundir import DEFAULT_SEARCH, STAGES, Run, RunDirError, check_search_name
from .stages import build_final, check_budgets, export, load_final, load_supernet, retrain, search, searched_genotype, \
    train_supernet

__all__ = [
    "DEFAULT_SEARCH", "STAGES", "Run", "RunDirError", "check_search_name", "train_supernet", "load_supernet",
    "search", "searched_genotype", "check_budgets", "build_final", "retrain", "load_final", "export", "parameter_memory",
    "search_summary", "list_searches", "searches_table", "write_search_report", "write_run_report",
    "write_report", "run_all",
]


def write_report(run: Run) -> Dict[str, Any]:
    """The search's report and the run's (every search compared); returns the search's."""
    report = write_search_report(run)
    write_run_report(run)
    return report


def run_all(run: Run, *, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run every unfinished stage of `run.search` in order (finished ones are skipped, an interrupted one
    resumes), then write the reports.

    In a multi-worker cluster, workers other than the chief stop after retraining and return
    ``{"worker": index, "workers": count}``; the chief exports and writes the reports.
    """
    stages = (("supernet", train_supernet), ("search", search), ("retrain", retrain), ("export", export))
    worker = run.worker if run.cfg.distribute.strategy != "default" else None
    if run.search is not None and not run.done("search"):
        check_budgets(run)  # an impossible budget is refused before the supernet trains
    for name, fn in stages:
        if name == "export" and worker is not None and not worker.is_chief:
            echo(f"[worker {worker.index}/{worker.count}] training and search done; the chief exports")
            return {"worker": worker.index, "workers": worker.count}
        if run.done(name):
            echo(f"[{name}] done already, skipping ({run.marker(name)})")
            continue
        echo(f"[{name}] running ..." if name == "supernet" else f"[{name}] running (search {run.search!r}) ...")
        start = time.time()
        fn(run)
        echo(f"[{name}] finished in {time.time() - start:.0f} s")
    return write_report(run)
