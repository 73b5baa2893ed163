"""The whole method over one run directory: train the supernet once, then any number of named searches on
it, each retrained from scratch and exported (`rundir` has the layout, `stages` the four stages, `report`
the reports)."""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, Sequence

from .report import baseline_rows, list_searches, search_summary, searches_table, \
    write_run_report, write_search_report
from .rundir import DEFAULT_SEARCH, RESTART_STAGES, STAGES, Run, RunDirError, check_search_name
from .methods import build_teacher, load_teacher, model_options, needs_teacher_stage, train_teacher
from .stages import build_final, check_budgets, export, final_baseline, load_final, load_supernet, retrain, search, \
    searched_genotype, train_supernet

__all__ = [
    "DEFAULT_SEARCH", "STAGES", "RESTART_STAGES", "Run", "RunDirError", "check_search_name", "train_supernet",
    "load_supernet", "search", "searched_genotype", "check_budgets", "build_final", "retrain", "load_final", "export",
    "search_summary", "list_searches", "searches_table", "write_search_report",
    "write_run_report", "write_report", "run_all", "run_baseline", "baseline_rows", "final_baseline",
    "build_teacher", "train_teacher", "load_teacher", "needs_teacher_stage", "model_options",
]


def write_report(run: Run) -> Dict[str, Any]:
    """The search's report and the run's (every search compared); returns the search's."""
    report = write_search_report(run)
    write_run_report(run)
    return report


def run_baseline(run: Run, baseline: str, *, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Retrain the named `baseline` (e.g. "mobinet") in the search of its own name with the settings of
    `run.search`, export it (float fallback allowed: a MoBiNet-style model has binary depthwise convs LCE
    cannot lower) and write its report; finished steps are skipped."""
    b = Run.open(run.run_dir, run.cfg, run.verbose, search=baseline, echo=echo)
    if not b.done("retrain"):
        echo(f"[baseline {baseline}] retraining ...")
        retrain(b, baseline=baseline)
    if not b.done("export"):
        echo(f"[baseline {baseline}] exporting (float fallback allowed: LCE cannot lower its depthwise binary "
             f"convs) ...")
        export(b, allow_float_fallback=True)
    return write_search_report(b)


def run_all(run: Run, *, echo: Callable[[str], None] = print, baselines: Sequence[str] = ()) -> Dict[str, Any]:
    """Run every unfinished stage of `run.search` in order (finished ones are skipped, an interrupted one
    resumes), then write the reports. The teacher stage runs first when a stage distills from the float twin;
    each of `baselines` is then retrained and exported in the search of its name (`run_baseline`).

    In a multi-worker cluster, workers other than the chief stop after retraining and return
    ``{"worker": index, "workers": count}``; the chief exports and writes the reports.
    """
    stages = (("supernet", train_supernet), ("search", search), ("retrain", retrain), ("export", export))
    if needs_teacher_stage(run):
        stages = (("teacher", train_teacher),) + stages
    worker = run.worker if run.cfg.distribute.strategy != "default" else None
    if run.search is not None and not run.done("search"):
        feasible = check_budgets(run)  # an impossible budget is refused before the supernet trains
        echo(f"[search] {feasible.describe()}")
    for name, fn in stages:
        if name == "export" and worker is not None and not worker.is_chief:
            echo(f"[worker {worker.index}/{worker.count}] training and search done; the chief exports")
            return {"worker": worker.index, "workers": worker.count}
        if run.done(name):
            echo(f"[{name}] done already, skipping ({run.marker(name)})")
            continue
        echo(f"[{name}] running ..." if name in ("teacher", "supernet") else f"[{name}] running (search {run.search!r}) ...")
        start = time.time()
        fn(run)
        echo(f"[{name}] finished in {time.time() - start:.0f} s")
    report = write_search_report(run)
    for baseline in baselines:
        run_baseline(run, baseline, echo=echo)
    write_run_report(run)
    return report
