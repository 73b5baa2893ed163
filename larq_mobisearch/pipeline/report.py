"""Reports: one per search (``searches/<name>/report.md``) and one for the run, comparing every search of
its supernet in a table and a Pareto plot (test top-1 vs FLOPs, and vs latency where a search had a table).

The run report also has a row for each named baseline (`choices.BASELINES`: the MoBiNet-style depthwise
model), with its FLOPs, and its test top-1 once it is retrained (``mobisearch train --baseline mobinet``)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from .. import plots
from ..fileio import atomic_write_json, atomic_write_text
from ..nn.space import decode
from .rundir import Run, read_json
from .clock import TIMED_STAGES, stage_seconds
from .stages import final_baseline, load_final

#: What the report says about each named baseline.
BASELINE_NOTES = {
    "mobinet": ("MoBiNet-style baseline: binary depthwise 3x3 + pointwise convs with skip connections (every "
                "3x3 conv groups = channels, the paper space). LCE cannot lower depthwise binary convs (1 input "
                "channel per group): its export needs --allow-float-fallback and keeps them as float ops."),
}


def _optional(path: str, what: str) -> Optional[Dict[str, Any]]:
    return read_json(path, what) if os.path.exists(path) else None


def search_summary(run: Run) -> Dict[str, Any]:
    """One search's row: budgets, winner, held-out fitness, evaluations, and (when there) test top-1, FLOPs,
    predicted latency, .tflite size."""
    cfg = run.cfg
    result = _optional(run.search_path("search", "result.json"), "Search result") or {}
    final = _optional(run.search_path("final", "done.json"), "Retraining result") or {}
    exported = _optional(run.search_path("export.json"), "Export result") or {}
    genotype = final.get("genotype") or result.get("genotype")
    row: Dict[str, Any] = {
        "name": run.search,
        "flops_budget": run.flops_budget(),
        "latency_budget_ms": cfg.search.latency_budget_ms,
        "latency_table": cfg.search.latency_table,
        "genotype": genotype,
        "fitness": result.get("fitness"),
        "evaluations": result.get("evaluations"),
        "feasible": result.get("feasible"),
        "test_accuracy": final.get("test_accuracy"),
        "tflite_accuracy": (exported.get("verify") or {}).get("tflite_accuracy"),
        "tflite_bytes": exported.get("tflite_bytes"),
        "stages_done": [s for s in ("search", "retrain", "export") if run.done(s)],
        "flops": None,
        "latency_ms": None,
        "baseline": final_baseline(run),
    }
    if genotype:
        genes = decode(genotype)
        row["flops"] = run.genotype_costs(genes).flops
        latency = run.latency_model()
        if latency is not None and row["baseline"] is None:
            row["latency_ms"] = latency.cost(genes)
    return row


def skipped_files(run: Run) -> List[Dict[str, str]]:
    """The unreadable image files the run's data left out (``data.skip_unreadable``), with the reason."""
    if run.cfg.data.name.strip().lower() != "folder":
        return []
    return [{"file": path, "reason": reason} for path, reason in run.data.skipped_files]


def skipped_markdown(skipped: List[Dict[str, str]]) -> List[str]:
    if not skipped:
        return []
    return (["", f"## Skipped image files ({len(skipped)}, `data.skip_unreadable=true`)", ""]
            + [f"- `{s['file']}`: {s['reason']}" for s in skipped])


def list_searches(run: Run) -> List[Dict[str, Any]]:
    """`search_summary` of every search of the run directory, by name."""
    return [search_summary(run if name == run.search else run.for_search(name)) for name in run.searches()]


def _num(x, fmt: str = "{:.4g}") -> str:
    return "-" if x is None else fmt.format(x)


def searches_table(rows: List[Dict[str, Any]]) -> List[str]:
    lines = ["| search | FLOPs budget | latency budget (ms) | winner | held-out top-1 | evaluated (feasible) | "
             "test top-1 | FLOPs | latency (ms) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("baseline"):
            lines.append(f"| {r['name']} (baseline {r['baseline']}) | - | - | `{r['genotype'] or '-'}` | - | - | "
                         f"{_num(r['test_accuracy'])} | {_num(r['flops'])} | - |")
            continue
        feasible = r.get("feasible") or {}
        seen = _num(r["evaluations"], "{:d}") + (f" ({feasible.get('count'):,}{'' if feasible.get('exact') else ' est.'})"
                                                 if feasible.get("count") is not None else "")
        lines.append(f"| {r['name']} | {_num(r['flops_budget'])} | {_num(r['latency_budget_ms'])} | "
                     f"`{r['genotype'] or '-'}` | {_num(r['fitness'])} | {seen} | {_num(r['test_accuracy'])} | "
                     f"{_num(r['flops'])} | {_num(r['latency_ms'], '{:.3f}')} |")
    return lines


def write_search_report(run: Run) -> Dict[str, Any]:
    """``searches/<name>/report.{json,md}`` of a search that was retrained and exported."""
    cfg, arch = run.cfg, run.arch
    final = read_json(run.search_path("final", "done.json"), "Retraining result")
    baseline = final.get("baseline")
    search_result = {} if baseline else read_json(run.search_path("search", "result.json"), "Search result")
    exported = read_json(run.search_path("export.json"), "Export result")
    verify = exported.get("verify") or {}
    costs = run.genotype_costs(decode(final["genotype"]))
    memory = exported.get("parameter_memory")
    if memory is None:  # exported before export.json recorded it: from the retrained model
        from ..deploy.export import parameter_memory

        memory = parameter_memory(load_final(run)[0])
    plot_dir = run.search_path("plots")
    report = {
        "search": run.search,
        "baseline": baseline,
        "baseline_note": BASELINE_NOTES.get(baseline),
        "methods": {"activation": cfg.model.activation, "nonlinearity": cfg.model.nonlinearity,
                    "loss": cfg.retrain.loss, "optimizer": cfg.retrain.optimizer,
                    "two_step": cfg.retrain.two_step},
        "module": arch.module,
        "dataset": cfg.data.name,
        "input_shape": list(arch.input_shape),
        "genotype": final["genotype"],
        "test_accuracy": final["test_accuracy"],
        "tflite_accuracy": verify.get("tflite_accuracy"),
        "tflite_samples": verify.get("num_samples"),
        "max_abs_logit_diff": verify.get("max_abs_diff"),
        "export_verification": exported.get("verification"),
        "costs": costs.as_dict(),
        "flops_budget": search_result.get("budgets", {}).get("flops"),
        "parameter_memory": memory,
        "tflite": exported.get("tflite"),
        "tflite_bytes": exported.get("tflite_bytes"),
        "float_tflite_bytes": exported.get("float_tflite_bytes"),
        "op_census": exported.get("op_census"),
        # wall seconds of each stage, measured by the run (resumed stages add up); the supernet's is shared by
        # every search of the run directory
        "stage_seconds": {stage: stage_seconds(run, stage) for stage in TIMED_STAGES},
        "search_result": {k: search_result.get(k) for k in ("fitness", "evaluations", "random_best",
                                                             "random_evaluations", "uniform", "feasible")},
        "plots": sorted(os.path.join("plots", p) for p in os.listdir(plot_dir) if p.endswith(".png"))
        if os.path.isdir(plot_dir) else [],
        "skipped_files": skipped_files(run),
    }
    atomic_write_json(run.search_path("report.json"), report)
    atomic_write_text(run.search_path("report.md"), _search_markdown(report))
    return report


def _accuracy_line(r: Dict[str, Any]) -> str:
    n = r.get("tflite_samples")
    where = f"on {n:,} test images, `export.verify_samples`" if n else "verify samples"
    return (f"- test top-1 (Keras, whole test split): {r['test_accuracy']:.4f}; test top-1 of the .tflite ({where}): "
            f"{_num(r['tflite_accuracy'])}")


def _baseline_markdown(r: Dict[str, Any]) -> str:
    lines = [
        f"# larq_mobisearch baseline {r['baseline']!r} (search {r['search']!r}): {r['module'].upper()} on "
        f"{r['dataset']}",
        "",
        f"- {r['baseline_note']}",
        f"- genotype: `{r['genotype']}`",
        _accuracy_line(r),
        f"- FLOPs: {_num(r['costs']['flops'])} (BOPs {r['costs']['bops']:,}, float FLOPs "
        f"{r['costs']['float_flops']:,})",
        f"- .tflite: {r['tflite']} ({r['tflite_bytes']:,} bytes); ops: {r.get('op_census')}",
        "",
        "## Plots", "",
    ] + [f"![{p}]({p})" for p in r["plots"]] + skipped_markdown(r.get("skipped_files") or [])
    return "\n".join(lines) + "\n"


def _seconds_line(r: Dict[str, Any]) -> str:
    times = r.get("stage_seconds") or {}
    return "- wall time per stage (measured by the run; a resumed stage adds its sessions): " + ", ".join(
        f"{stage} {_num(seconds, '{:,.0f}')} s" for stage, seconds in times.items())


def _search_markdown(r: Dict[str, Any]) -> str:
    if r.get("baseline"):
        return _baseline_markdown(r)
    s = r["search_result"]
    feasible = s.get("feasible") or {}
    seen = f"search saw {s['evaluations']} genotypes" + (
        f" ({feasible['count']:,}{'' if feasible.get('exact') else ' (estimated)'} feasible of "
        f"{feasible['space_size']:.3g})" if feasible.get("count") is not None else "")
    lines = [
        f"# larq_mobisearch search {r['search']!r}: {r['module'].upper()} on {r['dataset']}",
        "",
        f"- searched genotype: `{r['genotype']}`; {seen}",
        _accuracy_line(r),
        f"- FLOPs: {_num(r['costs']['flops'])} (BOPs {r['costs']['bops']:,}, float FLOPs "
        f"{r['costs']['float_flops']:,}); budget {_num(r['flops_budget'])}",
        f"- parameter memory: {r['parameter_memory']['bytes']:,} bytes "
        f"(float32 equivalent {r['parameter_memory']['float32_bytes']:,})",
        f"- .tflite: {r['tflite']} ({r['tflite_bytes']:,} bytes; float TFLite {r['float_tflite_bytes'] or '-'} bytes)",
        _seconds_line(r),
        "",
        "## Search vs baselines at the same budget (supernet held-out top-1 after BatchNorm recalibration)",
        "",
        "| method | genotype | held-out top-1 | FLOPs |",
        "|---|---|---|---|",
        f"| evolutionary search | `{r['genotype']}` | {s['fitness']:.4f} | {_num(r['costs']['flops'])} |",
    ]
    if s.get("random_best"):
        rb = s["random_best"]
        lines.append(f"| random search (best of {s.get('random_evaluations')}) | `{rb['genotype']}` | "
                     f"{rb['fitness']:.4f} | {_num(rb['costs'].get('flops'))} |")
    for u in s.get("uniform") or []:
        lines.append(f"| {u.get('label') or 'uniform'} | `{u['genotype']}` | {u['fitness']:.4f} | "
                     f"{_num(u['costs'].get('flops'))} |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in r["plots"]]
    lines += skipped_markdown(r.get("skipped_files") or [])
    return "\n".join(lines) + "\n"


def write_run_report(run: Run) -> Dict[str, Any]:
    """``report.{json,md}`` of the run: the supernet and every search on it, with Pareto plots."""
    rows = list_searches(run)
    supernet = _optional(run.path("supernet", "done.json"), "Supernet result") or {}
    plot_paths = ["plots/supernet_training.png"] if os.path.exists(run.path("plots", "supernet_training.png")) else []
    trained = [r for r in rows if r["test_accuracy"] is not None]
    for axis, key, label in (("flops", "flops", "FLOPs"), ("latency", "latency_ms", "predicted latency (ms)")):
        points = {r["name"]: (r[key], r["test_accuracy"]) for r in trained if r[key] is not None}
        if points:
            front = _front(list(points.values()))
            path = os.path.join("plots", f"searches_{axis}.png")
            plots.plot_pareto([], front, run.path(path), label, points, y_label="test top-1",
                              title=f"Searches on one supernet: test top-1 vs {label}")
            plot_paths.append(path)
    baselines = baseline_rows(run, rows)
    report = {"run_dir": os.path.abspath(run.run_dir), "module": run.cfg.model.module, "dataset": run.cfg.data.name,
              "supernet": supernet, "searches": rows, "baselines": baselines, "plots": plot_paths,
              "skipped_files": skipped_files(run)}
    atomic_write_json(run.path("report.json"), report)
    lines = [f"# larq_mobisearch run: {run.cfg.model.module.upper()} on {run.cfg.data.name}", "",
             f"Supernet: {supernet.get('epochs', '-')} epochs, final train accuracy "
             f"{_num(supernet.get('final_train_accuracy'))}. {len(rows)} search(es) on it "
             f"(per-search reports: searches/<name>/report.md).", ""]
    lines += searches_table(rows) + ["", "## Baselines", "", "| baseline | genotype | FLOPs | test top-1 | note |",
                                     "|---|---|---|---|---|"]
    for b in baselines:
        lines.append(f"| {b['label']} | `{b['genotype']}` | {_num(b['flops'])} | {_num(b['test_accuracy'])} | "
                     f"{b['note']} |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plot_paths] + skipped_markdown(report["skipped_files"])
    atomic_write_text(run.path("report.md"), "\n".join(lines) + "\n")
    return report


def baseline_rows(run: Run, rows: Optional[List[Dict[str, Any]]] = None) -> List[Dict[str, Any]]:
    """One row per named baseline: genotype, FLOPs and, when some search retrained it, its test top-1 (the
    best over such searches) and those searches' names."""
    from ..nn.space import encode
    from ..nn.specs import baseline_genotype

    rows = list_searches(run) if rows is None else rows
    out = []
    for name, note in BASELINE_NOTES.items():
        genes = baseline_genotype(run.arch, name)
        trained = [r for r in rows if r.get("baseline") == name and r.get("test_accuracy") is not None]
        out.append({"baseline": name, "label": f"{name} (MoBiNet-style, depthwise)" if name == "mobinet" else name,
                    "genotype": encode(genes), "flops": run.genotype_costs(genes).flops,
                    "test_accuracy": max((r["test_accuracy"] for r in trained), default=None),
                    "searches": [r["name"] for r in trained],
                    "note": note + ("" if trained else f" Train it with `mobisearch train --baseline {name}`.")})
    return out


def _front(points: List[tuple]) -> List[tuple]:
    """(cost, accuracy) points not dominated by a cheaper-or-equal, at-least-as-accurate other point."""
    return [p for p in points if not any(q != p and q[0] <= p[0] and q[1] >= p[1] for q in points)]
