"""Write BENCHMARKS.md and its PNG plots from the JSON results of `peers.py` and `ablation.py`.

Every number in BENCHMARKS.md comes from those JSON files (and ``measured.json``, figures quoted by the code's
documentation with their source) (written by the scripts that measured them, with the
command line and the machine); nothing is typed in. Plots go next to the JSON files:

- ``peers_latency.png``: mean latency (p10-p90 bars) of every model, 1 and 2 threads, and FLOPs vs latency;
- ``ablation_accuracy_latency.png``: test top-1 vs host latency, every seed and the mean +- std per method;
- ``methods_accuracy_latency.png``: the same for the related methods of ``methods.py`` (`methods_md.py`).

    python benchmarks/make_benchmarks_md.py        # reads benchmarks/results/{peers,ablation}.json
    python benchmarks/make_benchmarks_md.py --check    # writes nothing; fails if BENCHMARKS.md is stale
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402  (benchmarks/common.py; pure Python)
import fashion_md  # noqa: E402
import methods_md  # noqa: E402
import elastic_md  # noqa: E402
import latency_md  # noqa: E402
import pareto_md  # noqa: E402
import suite_md  # noqa: E402
import convert_md  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEERS_CMD = ".venv/bin/python benchmarks/peers.py --json benchmarks/results/peers.json"
ABLATION_CMD = ".venv/bin/python benchmarks/ablation.py --json benchmarks/results/ablation.json"
ABLATION_FASHION_CMD = (".venv/bin/python benchmarks/ablation.py --preset fashion --shared-supernet runs/benchmarks/fashion "
                        "--seeds 0,1 --retrain-epochs 8 --json benchmarks/results/ablation_fashion.json")
MD_CMD = ".venv/bin/python benchmarks/make_benchmarks_md.py"
INSTALL_CMD = ".venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt"
METHOD_LABELS = {
    "uniform": "uniform groups (best within budget)",
    "random": "random-group search",
    "evolution": "evolutionary search (ours)",
}
FAMILY_COLORS = {"ours": "#1f77b4", "larq-zoo": "#d62728", "float": "#7f7f7f"}
METHOD_COLORS = {"uniform": "#7f7f7f", "random": "#ff7f0e", "evolution": "#1f77b4"}


def _read(path: Optional[str]) -> Optional[Dict[str, Any]]:
    if not path or not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _num(x: Optional[float], digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _load_lines(peers: Dict[str, Any]) -> List[str]:
    timings = peers.get("timings") or {}
    loads, loaded = [], False
    for t, v in timings.items():
        if not v.get("load_average"):
            continue
        before = v.get("load_average_before")
        loads.append(f"{t} thread{'s' if str(t) != '1' else ''}: "
                     + (f"{before} before, " if before else "") + f"{v['load_average']} after")
        loaded = loaded or max([v["load_average"][0]] + ([before[0]] if before else [])) > int(t) + 0.5
    if not loads:
        return []
    verdict = ("**the machine was loaded** (more runnable processes than this benchmark's interpreter threads: other "
               "jobs shared the CPUs)" if loaded else "the machine was otherwise idle")
    return [f"- Load average (1, 5, 15 min) around each timing loop: {'; '.join(loads)}. The machine has "
            f"{peers['machine'].get('cpu_count')} logical CPUs; {verdict}. The round-robin loop and the paired "
            "ratios are meant to absorb the drift this causes; absolute milliseconds are less reliable than ratios."]


def _cache_note(peers: Dict[str, Any]) -> str:
    n, tables = peers.get("converted_in_run"), peers.get("tables_from_cache")
    if n is None:
        return ""
    parts = [f"{n} models converted in this run"]
    if tables:
        parts.append("latency tables read from the cache of an earlier run (`--out-dir`), so this time is search "
                     "+ timing only")
    return " (" + "; ".join(parts) + ")"


# ----------------------------------------------------------------------------------------------------------
# Plots


_figure, _save, _minutes = common.figure, common.save_png, common.minutes


def plot_peers(peers: Dict[str, Any], path: str) -> str:
    rows = peers["rows"]
    threads = [str(t) for t in peers["settings"]["threads"]]
    fig, (ax, ax2) = _figure(13, 0.42 * len(rows) + 2.0, ncols=2)
    labels = [r["label"] for r in rows]
    height = 0.8 / len(threads)
    for j, t in enumerate(threads):
        ys = [i + (j - (len(threads) - 1) / 2) * height for i in range(len(rows))]
        means = [r["latency"][t]["mean_ms"] for r in rows]
        lo = [r["latency"][t]["mean_ms"] - r["latency"][t]["p10_ms"] for r in rows]
        hi = [r["latency"][t]["p90_ms"] - r["latency"][t]["mean_ms"] for r in rows]
        colors = [FAMILY_COLORS.get(r["family"], "k") for r in rows]
        ax.barh(ys, means, height=height * 0.9, color=colors, alpha=1.0 if j == 0 else 0.55,
                xerr=[[max(x, 0) for x in lo], [max(x, 0) for x in hi]], capsize=2,
                label=f"{t} thread{'s' if t != '1' else ''}")
    ax.set_yticks(range(len(rows)), labels)
    ax.invert_yaxis()
    ax.set_xlabel("mean latency per image (ms), bars p10-p90")
    ax.set_title(f"{peers['settings']['input_size']}x{peers['settings']['input_size']}, host x86 (darker: "
                 f"{threads[0]} thread)")
    base = next((r for r in rows if r["label"] == "Bi-RealNet"), None)
    if base is not None:
        ax.axvline(base["latency"][threads[0]]["mean_ms"], color=FAMILY_COLORS["larq-zoo"], ls=":", lw=1)
    t = threads[0]
    for r in rows:
        x, y = r["costs"]["flops"], r["latency"][t]["mean_ms"]
        ax2.scatter([x], [y], color=FAMILY_COLORS.get(r["family"], "k"), s=30, zorder=3)
        ax2.annotate(r["label"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=7)
    ax2.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax2.xaxis.set_minor_formatter(NullFormatter())
    ax2.set_xlabel("FLOPs (BOPs/64 + float FLOPs)")
    ax2.set_ylabel(f"mean latency, {t} thread (ms)")
    ax2.set_title("FLOPs vs measured latency (blue: ours, red: larq-zoo, grey: float)")
    ax2.grid(True, alpha=0.3)
    return _save(fig, path)


def plot_ablation(ablation: Dict[str, Any], path: str) -> str:
    fig, (ax,) = _figure(7.5, 4.8)
    agg = ablation["aggregate"]
    for method, label in METHOD_LABELS.items():
        points = [s["methods"][method] for s in ablation["per_seed"] if method in s["methods"]]
        common.plot_seeds_and_mean(ax, points, agg.get(method), METHOD_COLORS[method], f"{label} (mean ± std)")
    s = ablation["settings"]
    ax.set_xlabel("host latency, LCE interpreter, 1 thread (ms)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"Table 1 ablation on {s['dataset']} ({s['module'].upper()} width {s['width_multiplier']:g}, "
                 f"{len(s['seeds'])} seeds; dots: single seeds)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


# ----------------------------------------------------------------------------------------------------------
# Markdown


def _machine_lines(machine: Dict[str, Any]) -> List[str]:
    return [f"- Machine: {common.machine_summary(machine)}. **Host x86**: LCE's portable x86 kernels, not its ARM "
            "kernels -- read ratios, not phone latencies."]


def peers_markdown(peers: Optional[Dict[str, Any]], plot: Optional[str]) -> List[str]:
    out = ["## Peers: LCE latency vs larq-zoo and float MobileNetV1", ""]
    if peers is None:
        return out + [f"Not run yet: `{INSTALL_CMD}` then `{PEERS_CMD}`.", ""]
    s = peers["settings"]
    threads = [str(t) for t in s["threads"]]
    out += [
        f"- Command: `{peers['command']}` (larq-zoo {s.get('larq_zoo_version')} installed with `{INSTALL_CMD}`); "
        f"wall time {_minutes(peers.get('seconds'))}{_cache_note(peers)}.",
        *_machine_lines(peers["machine"]),
        *_load_lines(peers),
        f"- {s['input_size']}x{s['input_size']}x3, {s['num_classes']} classes, batch 1. All models timed together, "
        f"round-robin ({s['runs']} rounds after {s['warmup']} warm-up runs per thread count; mean, with the p10-p90 "
        "range): LCE interpreter with `use_indirect_bgemm=True`, except the row marked TFLite (TensorFlow's "
        "`tf.lite.Interpreter`, XNNPACK). Our models and larq-zoo's are converted with the package's LCE export "
        "path (`export_tflite`, which checks every binary conv became `LceBconv2d`); weights are random "
        "(`weights=None`), which does not change latency.",
        "- FLOPs = BOPs/64 + float FLOPs (paper §4.1): `count_costs` for our models, Larq's `ModelProfile` MAC "
        "counts (1-bit MACs = BOPs, 32-bit MACs = float FLOPs) for the others; both agree on our models "
        "(`tests/test_benchmarks.py`).",
        "",
    ]
    has_qns = any(r.get("paired_to_quicknetsmall") for r in peers["rows"])
    head = "| model | FLOPs | BOPs | `.tflite` | LceBconv2d ops |"
    sep = "|---|---:|---:|---:|---:|"
    for t in threads:
        head += f" latency {t} thr, ms: mean (p10-p90) | vs Bi-RealNet {t} thr: mean ratio / paired |"
        sep += "---:|---:|"
        if has_qns:
            head += f" vs QuickNetSmall {t} thr: mean ratio / paired |"
            sep += "---:|"
    out += [head, sep]
    for r in peers["rows"]:
        c = r["costs"]
        line = (f"| {r['label']} | {c['flops'] / 1e8:.3f}e8 | {c['bops'] / 1e9:.3f}e9 | "
                f"{r['tflite_bytes'] / 1e6:.2f} MB | {r['lce_bconv2d_ops']} |")
        for t in threads:
            st = r["latency"][t]
            ratio = r["ratio_to_birealnet"].get(t)
            paired = (r.get("paired_to_birealnet") or {}).get(t)
            ratio_txt = "-" if ratio is None else f"{ratio:.2f}x"
            paired_txt = "-" if paired is None else f"{paired['median']:.2f}x"
            line += f" {st['mean_ms']:.2f} ({st['p10_ms']:.2f}-{st['p90_ms']:.2f}) | {ratio_txt} / {paired_txt} |"
            if has_qns:
                q_ratio = (r.get("ratio_to_quicknetsmall") or {}).get(t)
                q_paired = (r.get("paired_to_quicknetsmall") or {}).get(t)
                line += (f" {'-' if q_ratio is None else f'{q_ratio:.2f}x'} / "
                         f"{'-' if q_paired is None else format(q_paired['median'], '.2f') + 'x'} |")
        out.append(line)
    out += ["", "Mean ratio: ratio of the mean latencies. Paired: median over the timing rounds of the ratio to "
            "the peer's time in the same round, which cancels most of the host's speed drift.", ""]
    ours = [r for r in peers["rows"] if r["family"] == "ours"]
    if ours:
        out += ["Genotypes of our rows (group count of the 3x3 conv of blocks 1-13; M2 then the five float 1x1 convs):", ""]
        out += [f"- {r['label']}: `{r['genotype']}` -- {r['what']}" for r in ours]
        out.append("")
    if peers.get("searches"):
        out += ["Searched rows: the package's evolutionary search (population 50, 20 generations) with fitness = "
                "minus the latency predicted by a 1-thread host latency table of the module, under the paper's "
                "FLOPs budget. **The fastest genotype of the LCE search space under the budget: a latency-aware "
                "feasibility result, not an accuracy claim** (no ImageNet here).", "",
                "| module | budget | searched genotype | FLOPs | predicted (ms) | exact table optimum (ms) | found it "
                "| fastest with no budget (ms) | non-searchable part (ms) |",
                "|---|---:|---|---:|---:|---:|---|---:|---:|"]
        for m, sr in peers["searches"].items():
            out.append(f"| {m.upper()} | {sr['budget']:.3g} | `{sr['genotype']}` | {sr['flops']:.4g} | "
                       f"{sr['predicted_ms']:.2f} | {sr['exact_predicted_ms']:.2f} | "
                       f"{'yes' if sr.get('found_exact_optimum') else 'no'} | "
                       f"{_num(sr.get('unconstrained_fastest_ms'))} | {_num(sr.get('table_fixed_ms'))} |")
        out += ["", "Predicted latencies come from the 1-thread host latency table measured in the same run (a "
                "separate round-robin loop from the table above). The non-searchable part is the table's "
                "`fixed_ms`: stem, pointwise convs, classifier and per-call costs, which no group count changes.", ""]
    if peers.get("verdict_lines"):
        out += ["Goal, moonshot and targets (as measured in this run):", ""] + [f"- {x}" for x in peers["verdict_lines"]] + [""]
    if plot:
        out += [f"![peers latency]({plot})", ""]
    out += profiles_markdown(peers)
    return out


def profiles_markdown(peers: Dict[str, Any]) -> List[str]:
    """Per-op time breakdown tables (`peers.json` "profiles")."""
    profiles = peers.get("profiles") or {}
    if not profiles:
        return []
    labels = list(profiles)
    first = profiles[labels[0]]
    out = ["### Per-op time breakdown (1 thread)", "",
           f"- Command: `{peers['command']}` (same run as the table above); {first['runs']} rounds per model. "
           "LCE's Python interpreter has no op profiler, so every op is cut out of the flatbuffer into a single-op "
           "model and timed against an empty twin with the same inputs and outputs (the call overhead), back to "
           "back, round-robin over all ops (`larq_mobisearch.deploy.profile.op_profile`): op time = median of "
           "the per-round differences. The sum of the op times exceeds the network's own time (ops run alone "
           "see colder caches); use the shares.",
           "- Load average (1, 5, 15 min) before and after each profile: "
           + "; ".join(f"{k}: {v.get('load_average')}" for k, v in profiles.items()) + ".", ""]
    types = sorted({t for p in profiles.values() for t in p["by_type"]},
                   key=lambda t: -max(p["by_type"].get(t, {}).get("ms", 0) for p in profiles.values()))
    out += ["| op | " + " | ".join(f"{k}: ms (count, share)" for k in labels) + " |",
            "|---|" + "---:|" * len(labels)]
    for t in types:
        cells = []
        for k in labels:
            v = profiles[k]["by_type"].get(t)
            cells.append("-" if v is None else f"{v['ms']:.2f} ({v['count']}, {100 * v['share']:.0f}%)")
        out.append(f"| {t} | " + " | ".join(cells) + " |")
    out.append("| **sum of ops** / network | " + " | ".join(
        f"**{profiles[k]['sum_ops_ms']:.2f}** / {profiles[k]['network_ms']:.2f}" for k in labels) + " |")
    out += ["", "By output resolution (where in the network the time goes; all ops of that stage):", ""]
    stages = sorted({s for p in profiles.values() for s in p.get("by_stage", {})},
                    key=lambda s: -int(s.split("x")[0]) if "x" in s else 1)
    out += ["| stage | " + " | ".join(f"{k}: ms (ops)" for k in labels) + " |", "|---|" + "---:|" * len(labels)]
    for st in stages:
        cells = []
        for k in labels:
            v = profiles[k].get("by_stage", {}).get(st)
            cells.append("-" if v is None else f"{v['ms']:.2f} ({v['count']})")
        out.append(f"| {st} | " + " | ".join(cells) + " |")
    early = []
    for k in labels:
        stages = profiles[k].get("by_stage", {})
        high = sum(v["ms"] for st, v in stages.items() if "x" in st and int(st.split("x")[0]) >= 55)
        total = sum(v["ms"] for v in stages.values()) or 1.0
        early.append(f"{k} {high:.2f} ms ({100 * high / total:.0f}%)")
    out += ["", "Op time at 56x56 resolution or more (the first MobileNet blocks; larq-zoo models reach it through "
            "float stems): " + "; ".join(early) + "."]
    for k in labels:
        top = profiles[k].get("top") or []
        if top:
            out += ["", f"Slowest ops of {k}: " + "; ".join(
                f"{o['name']} {'x'.join(map(str, o['output_shape'][1:]))} {o['ms']:.2f} ms" for o in top[:8]) + "."]
    out.append("")
    return out


def measured_markdown(measured: Optional[Dict[str, Any]]) -> List[str]:
    """The "Measured" section: figures that explain design choices, with where they come from."""
    if not measured:
        return []
    out = ["## Measured", "", measured.get("note", ""), "", "| what | figure | source |", "|---|---|---|"]
    for item in measured.get("items", []):
        out.append(f"| {item['what']} | {item['figure']} | {item['source']} |")
    out.append("")
    return out


def ablation_markdown(ablation: Optional[Dict[str, Any]], plot: Optional[str], *,
                      title: str = "## Ablation: the paper's Table 1 on real data",
                      command: str = ABLATION_CMD) -> List[str]:
    out = [title, ""]
    if ablation is None:
        return out + [f"Not run yet: `{command}`.", ""]
    s = ablation["settings"]
    per_seed = ablation["per_seed"]
    budget = per_seed[0].get("flops_budget") if per_seed else None
    retrain_total = sum(v.get("retrain_seconds") or 0 for sd in per_seed for v in sd["methods"].values()
                        if "same_as" not in v)
    out += [
        f"- Command: `{ablation['command']}`; wall time {_minutes(ablation.get('seconds'))}"
        + (f" (the retrainings, resumed from their run directories when already done, took "
           f"{_minutes(retrain_total)} in all, as each recorded)." if retrain_total else "."),
        *_machine_lines(ablation["machine"]),
        f"- Data: `{s['dataset']}` at {s['image_size']}px (preset `{s['preset']}`; train/holdout/test split fixed, "
        f"split seed {s.get('split_seed')}); module {s['module'].upper()} at width {s['width_multiplier']:g}, "
        f"`{s['space']}` search space; FLOPs budget {budget:.4g} ({s['flops_budget_fraction']} x the uniform "
        f"groups=1 model).",
        (f"- Per seed ({', '.join(map(str, s['seeds']))}; the seed sets data order, initializations and the "
         f"search): supernet {s['supernet_epochs']} epochs; evolutionary search (population "
         f"{s['search_population']}, {s['search_iterations']} generations), random-group search with as many "
         "evaluations, uniform groups 1/2/4/8/16/32 (clamped) within the budget -- all scored on the supernet; "
         f"then each winner retrained from scratch for {s['retrain_epochs']} epochs and tested on the whole "
         "test split." if not s.get("shared_supernet") else
         f"- One supernet ({s['supernet_epochs']} epochs) and one search on it: evolutionary search (population "
         f"{s['search_population']}, {s['search_iterations']} generations, {per_seed[0].get('search_evaluations')} "
         f"evaluations), random-group search with {per_seed[0].get('random_evaluations')} evaluations, uniform "
         "groups 1/2/4/8/16/32 (clamped) within the budget -- all scored on the supernet (held-out top-1 after "
         f"BatchNorm recalibration); then each of the three winners retrained from scratch for "
         f"{s['retrain_epochs']} epochs once per seed ({', '.join(map(str, s['seeds']))}: the seed sets the "
         "initialization and the data order) and tested on the official test split.")
        + f" Latency: the exported `.tflite` of every retrained model, timed together round-robin "
        f"({s['latency_runs']} rounds, LCE interpreter, 1 thread, mean).",
        "",
        f"Mean ± sample std over {len(per_seed)} seeds:" if len(per_seed) > 1 else "One seed (no spread yet):",
        "",
        "| method | test top-1 (%) | FLOPs | latency (ms) | supernet held-out top-1 (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for method, label in METHOD_LABELS.items():
        a = ablation["aggregate"].get(method)
        if not a:
            continue
        acc, fl, lat, fit = a["test_accuracy"], a["flops"], a["latency_ms"], a["supernet_fitness"]
        n = len(per_seed)
        flops = f"{fl['mean']:.4g} ± {fl['std']:.3g}" if n > 1 else f"{fl['mean']:.4g}"
        out.append(f"| {label} | {common.pm(100 * acc['mean'], 100 * acc['std'], n)} | {flops} | "
                   f"{common.pm(lat['mean'], lat['std'], n, 3)} | {common.pm(100 * fit['mean'], 100 * fit['std'], n)} |")
    out += ["", "Per seed:", "", "| seed | method | genotype | supernet top-1 | test top-1 | FLOPs | latency (ms) |",
            "|---:|---|---|---:|---:|---:|---:|"]
    for sd in per_seed:
        for method, label in METHOD_LABELS.items():
            v = sd["methods"].get(method)
            if not v:
                continue
            same = f" (same genotype as {v['same_as']})" if v.get("same_as") else ""
            out.append(f"| {sd['seed']} | {label}{same} | `{v['genotype']}` | {100 * v['supernet_fitness']:.2f} | "
                       f"{100 * v['test_accuracy']:.2f} | {v['costs']['flops']:.4g} | {v['latency_ms']:.3f} |")
    out += ["", fashion_md.table1_reading(ablation), ""]
    if plot:
        out += [f"![ablation: accuracy vs latency]({plot})", ""]
    return out


def build_markdown(peers: Optional[Dict[str, Any]], ablation: Optional[Dict[str, Any]],
                   peers_plot: Optional[str] = None, ablation_plot: Optional[str] = None,
                   measured: Optional[Dict[str, Any]] = None, fashion: Optional[Dict[str, Any]] = None) -> str:
    fashion = fashion or {}
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/make_benchmarks_md.py from benchmarks/results/*.json. Do not edit by hand: "
        "re-run the commands below. -->",
        "",
        "Every number below was measured by the benchmark scripts on the machine named with it and written to "
        "`benchmarks/results/*.json`; this file and its plots are generated from those files. Latencies are "
        "host (x86) runs of Larq Compute Engine's interpreter: use the ratios between models measured in the "
        "same run, not the absolute milliseconds, and not as phone or Raspberry Pi figures (`export/README.md` "
        "benchmarks a device).",
        "",
        "Reproduce:",
        "",
        "```bash",
        INSTALL_CMD + "   # larq-zoo for the peers (its pins conflict, so no deps)",
        PEERS_CMD,
        latency_md.STEM_CMD,
        *latency_md.LATENCY_CMDS,
        latency_md.LATENCY_JOINT_CMD,
        ABLATION_CMD,
        fashion_md.EFFICIENCY_CMD,
        ABLATION_FASHION_CMD,
        fashion_md.RANKING_CMD,
        methods_md.METHODS_CMD,
        elastic_md.ELASTIC_CMD,
        elastic_md.RANKING_VARIANTS_CMD,
        elastic_md.TABLE1_JOINT_CMD,
        elastic_md.EFFICIENCY_JOINT_CMD,
        pareto_md.PARETO_CMD,
        pareto_md.PEER_NUMERICS_CMD,
        convert_md.CONVERT_CMD,
        suite_md.SUITE_CMD,
        MD_CMD,
        "```",
        "",
    ]
    lines += ablation_markdown(fashion.get("ablation"), fashion.get("ablation_plot"),
                               title="## Table 1 on Fashion-MNIST: uniform vs random vs evolutionary groups",
                               command=ABLATION_FASHION_CMD)
    lines += methods_md.ablation_baselines_markdown(fashion.get("ablation"))
    lines += fashion_md.efficiency_markdown(fashion.get("efficiency"), fashion.get("efficiency_plot"))
    lines += fashion_md.ranking_markdown(fashion.get("ranking"), fashion.get("ranking_plots") or [])
    lines += peers_markdown(peers, peers_plot)
    lines += latency_md.stem_markdown(fashion.get("stem_feasibility"))
    lines += latency_md.latency_markdown([fashion.get("latency_m3_28"), fashion.get("latency_m3_224")],
                                         fashion.get("latency_plot"))
    lines += latency_md.joint_latency_markdown(fashion.get("latency_joint"), fashion.get("latency_joint_plot"))
    lines += methods_md.methods_markdown(fashion.get("methods"), fashion.get("methods_plot"))
    lines += ablation_markdown(ablation, ablation_plot, title="## Table 1 on scikit-learn digits (small, 8x8 images)")
    lines += methods_md.ablation_baselines_markdown(ablation)
    lines += elastic_md.elastic_step_markdown(fashion.get("elastic_step"), fashion.get("elastic_step_plot"))
    lines += elastic_md.fashion_joint_run_markdown(fashion.get("fashion_joint_run"))
    if fashion.get("efficiency_joint") is not None:
        lines += fashion_md.efficiency_markdown(fashion["efficiency_joint"], fashion.get("efficiency_joint_plot"),
                                                title=elastic_md.EFFICIENCY_JOINT_TITLE,
                                                command=elastic_md.EFFICIENCY_JOINT_CMD)
    lines += elastic_md.table1_joint_markdown(fashion.get("table1_joint"), fashion.get("table1_joint_plot"),
                                              fashion.get("ranking_variants"))
    lines += elastic_md.ranking_variants_markdown(fashion.get("ranking_variants"), fashion.get("ranking_variants_plot"))
    lines += pareto_md.pareto_markdown(fashion.get("pareto"), fashion.get("pareto_plot")).rstrip("\n").split("\n") + [""]
    lines += pareto_md.peer_numerics_markdown(fashion.get("peer_numerics"))
    if fashion.get("convert_time") is not None:
        lines += convert_md.section(fashion["convert_time"])
    lines += suite_md.suite_markdown(fashion.get("suite_time"))
    lines += measured_markdown(measured)
    return "\n".join(lines).rstrip() + "\n"


def _plot(write: bool, fn, data: Dict[str, Any], path: str, *rest) -> str:
    """`fn(data, path, *rest)` when `write`; the plot's path either way (``--check`` writes no file)."""
    return fn(data, path, *rest) if write else path


def render(peers_path: str, ablation_path: str, measured_path: str, out: str, plots_dir: Optional[str] = None, *,
           write_plots: bool = True) -> Optional[str]:
    """BENCHMARKS.md's text from the JSON results (None when neither peers nor ablation results exist).

    # Arguments
        peers_path, ablation_path, measured_path: the results files; the other results (``ablation_fashion``,
            ``efficiency``, ``ranking``, ``methods``) are read next to `peers_path`.
        out: where the markdown goes (plot links are relative to its directory).
        plots_dir: where the PNGs go (default: the directory of `peers_path`).
        write_plots: False links the plots without drawing them (nothing is written).
    """
    peers, ablation = _read(peers_path), _read(ablation_path)
    if peers is None and ablation is None:
        return None
    plots_dir = Path(plots_dir or Path(peers_path).parent)
    out_dir = Path(out).resolve().parent
    rel = lambda path: os.path.relpath(path, out_dir)  # noqa: E731
    peers_plot = ablation_plot = None
    if peers is not None:
        peers_plot = rel(_plot(write_plots, plot_peers, peers, str(plots_dir / "peers_latency.png")))
    if ablation is not None:
        ablation_plot = rel(_plot(write_plots, plot_ablation, ablation, str(plots_dir / "ablation_accuracy_latency.png")))
    results = Path(peers_path).parent
    fashion: Dict[str, Any] = {k: _read(str(results / f"{f}.json")) for k, f in
                               (("ablation", "ablation_fashion"), ("efficiency", "efficiency"), ("ranking", "ranking"),
                                ("methods", "methods"), ("elastic_step", "elastic_step"),
                                ("fashion_joint_run", "fashion_joint_run"), ("ranking_variants", "ranking_variants"),
                                ("table1_joint", "table1_joint"), ("efficiency_joint", "efficiency_joint"),
                                ("pareto", "pareto"), ("stem_feasibility", "stem_feasibility"),
                                ("latency_m3_28", "latency_m3_28"), ("latency_m3_224", "latency_m3_224"),
                                ("latency_joint", "latency_joint_28"), ("suite_time", "suite_time"),
                                ("peer_numerics", "peer_numerics"), ("convert_time", "convert_time"))}
    # one plot per result: key -> (plotting function, PNG file), linked as fashion["<key>_plot"]
    single_plots = {
        "efficiency_joint": (fashion_md.plot_efficiency, "efficiency_joint.png"),
        "pareto": (pareto_md.plot_pareto, "pareto.png"),
        "table1_joint": (elastic_md.plot_table1_joint, "table1_joint.png"),
        "ranking_variants": (elastic_md.plot_ranking_variants, "ranking_variants.png"),
        "elastic_step": (elastic_md.plot_elastic_step, "elastic_step.png"),
        "methods": (methods_md.plot_methods, "methods_accuracy_latency.png"),
        "ablation": (plot_ablation, "ablation_fashion_accuracy_latency.png"),
        "efficiency": (fashion_md.plot_efficiency, "efficiency.png"),
        "latency_joint": (latency_md.plot_joint_latency, "latency_joint.png"),
    }
    nothing_to_plot = {"ranking_variants": lambda d: not d["variants"],  # a ledger with stand-alone rows only
                       "pareto": lambda d: not pareto_md.result_points(d)}  # nothing timed yet
    for key, (plot, filename) in single_plots.items():
        if fashion[key] is not None and not nothing_to_plot.get(key, lambda d: False)(fashion[key]):
            fashion[f"{key}_plot"] = rel(_plot(write_plots, plot, fashion[key], str(plots_dir / filename)))
    latency = [fashion[k] for k in ("latency_m3_28", "latency_m3_224") if fashion[k] is not None]
    if latency:
        fashion["latency_plot"] = rel(_plot(write_plots, latency_md.plot_latency, latency,
                                            str(plots_dir / "latency_table_error.png")))
    if fashion["ranking"] is not None:
        ranking = lambda rank, path, key, title: fashion_md.plot_ranking(rank, key, path, title)  # noqa: E731
        fashion["ranking_plots"] = [
            rel(_plot(write_plots, ranking, fashion["ranking"], str(plots_dir / "ranking_recalibrated.png"),
                      "supernet_recalibrated", "BN recalibrated")),
            rel(_plot(write_plots, ranking, fashion["ranking"], str(plots_dir / "ranking_no_recalibration.png"),
                      "supernet_no_recalibration", "no BN recalibration")),
        ]
    return build_markdown(peers, ablation, peers_plot, ablation_plot, _read(measured_path), fashion)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--peers", default=str(ROOT / "benchmarks" / "results" / "peers.json"))
    p.add_argument("--ablation", default=str(ROOT / "benchmarks" / "results" / "ablation.json"))
    p.add_argument("--measured", default=str(ROOT / "benchmarks" / "results" / "measured.json"))
    p.add_argument("--out", default=str(ROOT / "BENCHMARKS.md"))
    p.add_argument("--plots-dir", default=None, help="default: the directory of --peers")
    p.add_argument("--check", action="store_true",
                   help="write nothing; exit 1 (with a diff) if --out differs from what the results generate")
    args = p.parse_args(argv)
    text = render(args.peers, args.ablation, args.measured, args.out, args.plots_dir, write_plots=not args.check)
    if text is None:
        print(f"No results at {args.peers} or {args.ablation}: run {PEERS_CMD} and {ABLATION_CMD} first")
        return 2
    if args.check:
        current = Path(args.out).read_text(encoding="utf-8") if os.path.isfile(args.out) else ""
        if current == text:
            print(f"{args.out} is what the results generate")
            return 0
        import difflib

        sys.stdout.writelines(difflib.unified_diff(current.splitlines(True), text.splitlines(True),
                                                   f"{args.out} (committed)", f"{args.out} (generated)"))
        print(f"{args.out} differs from what the results generate: run {MD_CMD}")
        return 1
    from larq_mobisearch.fileio import atomic_write_text

    atomic_write_text(args.out, text)
    print(f"Wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
