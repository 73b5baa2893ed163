"""BENCHMARKS.md sections of the host latency tools: how well a host latency table predicts whole networks
(`latency.py`, ``latency_m3_28.json`` and ``latency_m3_224.json``), and the QuickNet stem's latency feasibility at
224 px against QuickNetSmall (`stem_feasibility.py`, ``stem_feasibility.json``). Pure Python plus matplotlib."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence

LATENCY_CMDS = (
    ".venv/bin/python benchmarks/latency.py --module m3 --input-size 28 --channels 1 --num-classes 10 --genotypes 24 "
    "--runs 1000 --json benchmarks/results/latency_m3_28.json",
    ".venv/bin/python benchmarks/latency.py --module m3 --input-size 224 --genotypes 24 "
    "--json benchmarks/results/latency_m3_224.json",
)
LATENCY_JOINT_CMD = (".venv/bin/python benchmarks/latency_joint.py --run-dir runs/benchmarks/ranking_variants/budget "
                     "--json benchmarks/results/latency_joint_28.json --table benchmarks/results/latency_table_joint_28.json")
STEM_CMD = ".venv/bin/python benchmarks/stem_feasibility.py --json benchmarks/results/stem_feasibility.json"
#: issue 23: mean |error| <= 2% with about as many predictions above as below
MAE_GOAL = 2.0


def random_rows(result: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    return [r for r in result["rows"] if r["label"].startswith("random")]


def error_summary(errors_pct: Sequence[float]) -> Dict[str, float]:
    """Mean and max |error|, mean signed error, and how many predictions lie above / below the measurement."""
    errors = [float(e) for e in errors_pct]
    if not errors:
        raise ValueError("no errors to summarize")
    return {"mae": sum(abs(e) for e in errors) / len(errors), "max": max(abs(e) for e in errors),
            "signed": sum(errors) / len(errors), "above": sum(e > 0 for e in errors),
            "below": sum(e < 0 for e in errors), "n": len(errors)}


def balanced(summary: Mapping[str, float]) -> bool:
    """No systematic sign: the smaller side holds at least a third of the predictions (binomial, n >= 20: a fair
    coin falls below that about 1 time in 10 or less)."""
    return min(summary["above"], summary["below"]) >= summary["n"] / 3


def _identity_axes(ax, rows: Sequence[Mapping[str, Any]], title: str) -> None:
    """The prediction = measurement line over `rows`, the title and the axis labels of a predicted-vs-measured plot."""
    lo = min(min(r["measured_ms"], r["predicted_ms"]) for r in rows)
    hi = max(max(r["measured_ms"], r["predicted_ms"]) for r in rows)
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="prediction = measurement")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("measured (ms, host LCE, 1 thread)")
    ax.set_ylabel("predicted by the table (ms)")
    ax.legend(fontsize=8)


def plot_latency(data: Sequence[Mapping[str, Any]], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(data), figsize=(5.2 * len(data), 4.4), squeeze=False)
    for ax, d in zip(axes[0], data):
        res = d["results"][0]
        rows = res["rows"]
        for kind, color in (("uniform", "tab:orange"), ("random", "tab:blue")):
            pts = [(r["measured_ms"], r["predicted_ms"]) for r in rows if r["label"].startswith(kind)]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=color, label=f"{kind} genotypes")
        h, w, c = res["arch"]["input_shape"]
        s = error_summary([r["error_pct"] for r in random_rows(res)])
        _identity_axes(ax, rows, f"{res['module'].upper()} {h}x{w}x{c}: mean |error| {s['mae']:.2f}%, "
                                 f"{s['above']} above / {s['below']} below")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def latency_markdown(data: Sequence[Optional[Mapping[str, Any]]], plot: Optional[str] = None) -> List[str]:
    data = [d for d in data if d]
    if not data:
        return []
    out = ["## Latency table error: predicted vs measured whole networks", "", "```bash"]
    out += [d.get("command", "") for d in data] + ["```", ""]
    out += [
        "Each run converts every searchable-layer configuration of M3 alone and the networks, and times them all "
        "together, round-robin, 1 thread, LCE's interpreter (`deploy.host_table.measure_host_table`); the table "
        "predicts a network as `fixed_ms` plus its layers' entries. `fixed_ms` is the median residual (measured "
        "minus the sum of entries) of 12 random genotypes of the space (`random_references`); the row \"uniform\" "
        "is the calibration before, on the uniform genotypes, checked in the same loop. Checked on random genotypes "
        "that calibrated neither. Error = (predicted - measured) / measured.",
        "",
        "| input | classes | rounds | calibrated on | random genotypes checked | mean abs error | max abs error | "
        "above / below | mean signed error | Spearman | fixed_ms | goal (<= 2%, no systematic sign) |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    tally: Dict[str, List[bool]] = {}
    for d in data:
        for res in d["results"]:
            h, w, c = res["arch"]["input_shape"]
            rows = random_rows(res)
            variants = [("random genotypes (the table)", [r["error_pct"] for r in rows], res["fixed_ms"])]
            if all("uniform_calibration_error_pct" in r for r in rows):
                variants.append(("uniform genotypes (before)", [r["uniform_calibration_error_pct"] for r in rows],
                                 res.get("uniform_fixed_ms")))
            for name, errors, fixed in variants:
                s = error_summary(errors)
                met = s["mae"] <= MAE_GOAL and balanced(s)
                out.append(
                    f"| {h}x{w}x{c} | {res['arch']['num_classes']} | {d['settings']['runs']} | {name} | {s['n']} | "
                    f"{s['mae']:.2f}% | {s['max']:.2f}% | {s['above']} / {s['below']} | {s['signed']:+.2f}% | "
                    f"{res['spearman']:.3f} | {fixed:.3f} | {'met' if met else 'missed'} |")
                tally.setdefault(name, []).append(met)
    out += ["", "Reading: " + "; ".join(f"calibrated on {name.split(' (')[0]}, the goal is met in {sum(v)} of {len(v)} runs"
                                       for name, v in tally.items()) + ". A run's timing noise (each network's mean "
            "over its rounds) is of the order of the errors themselves: the sign balance is only meaningful with many "
            "rounds."]
    out += ["", f"Machine: {data[0]['machine'].get('cpu')}, {data[0]['machine'].get('cpu_count')} logical CPUs; load "
            f"average when written {', '.join(f'{x:.2f}' for x in data[0].get('load_average', []))}. Host numbers are "
            "x86 LCE kernels: they rank genotypes, they are not phone latencies.", ""]
    if plot:
        out += [f"![Predicted vs measured latency]({plot})", ""]
    return out


def plot_joint_latency(data: Mapping[str, Any], path: str) -> str:
    """Predicted (the joint space's table) vs measured latency of the checked random joint genotypes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = data["rows"]
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.scatter([r["measured_ms"] for r in rows], [r["predicted_ms"] for r in rows], s=18, color="tab:blue",
               label="random joint genotypes (checks)")
    e, sp = data["errors"], data["space"]
    h, w, c = sp["input_shape"]
    _identity_axes(ax, rows, f"{sp['module'].upper()} {h}x{w}x{c}, {sp['genes']} space: mean |error| "
                             f"{e['mae']:.2f}%, {e['above']} above / {e['below']} below")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def joint_latency_markdown(data: Optional[Mapping[str, Any]], plot: Optional[str] = None) -> List[str]:
    """The section of `latency_joint.py`: the joint space's table against whole networks."""
    if not data:
        return []
    e, sp, t, st = data["errors"], data["space"], data["table"], data["settings"]
    h, w, c = sp["input_shape"]
    met = e["mae"] <= MAE_GOAL and balanced(e)
    out = ["## Latency table of the joint width x groups space", "", "```bash", data.get("command", LATENCY_JOINT_CMD),
           "```", "",
           f"A space with width genes changes every conv a block touches, so its table (scope `block_convs`, "
           f"`deploy.table_plan.block_table_keys`) holds every conv of every block at every (input width, output "
           f"width) pair and every group count legal there: {t['entries']} configurations for "
           f"{sp['module'].upper()} at {h}x{w}x{c}, width {sp['width_multiplier']:g}, width choices "
           f"{', '.join(f'{x:g}' for x in sp['width_choices'])} ({sp['size']:.3g} genotypes). `fixed_ms` "
           f"({t['fixed_ms']:.4f} ms: stem, shortcuts, pooling, classifier, per-call cost"
           + ("; negative because every isolated layer model carries its own call and input-quantization overhead, "
              "more than the rest of the network costs: every genotype has the same number of block convs, so it "
              "cancels" if t["fixed_ms"] < 0 else "")
           + f") is the median residual of "
           f"{t['calibrating']} random joint genotypes; {st['checks']} other random joint genotypes, timed in the same "
           f"round-robin loop ({st['runs']} rounds, 1 thread), check it. This is the table the Pareto benchmark's "
           f"latency-budget searches use.", "",
           "| genotypes checked | mean abs error | max abs error | above / below | mean signed error | "
           "Spearman (table) | Spearman (FLOPs) | goal (<= 2%, no systematic sign) |",
           "|---:|---:|---:|---:|---:|---:|---:|---|",
           f"| {e['n']} | {e['mae']:.2f}% | {e['max']:.2f}% | {e['above']} / {e['below']} | {e['signed']:+.2f}% | "
           f"{data['spearman_table']:.3f} | {data['spearman_flops']:.3f} | {'met' if met else 'missed'} |", "",
           f"Machine: {data['machine'].get('cpu')}, {data['machine'].get('cpu_count')} logical CPUs; load average "
           f"after timing {', '.join(f'{x:.2f}' for x in data.get('load_average') or [])}.", ""]
    if plot:
        out += [f"![Joint table: predicted vs measured]({plot})", ""]
    return out


def stem_markdown(data: Optional[Mapping[str, Any]]) -> List[str]:
    if not data:
        return []
    s = data["settings"]
    out = [
        f"## Peers at {s['input_size']} px: the QuickNet stem at QuickNetSmall's latency (latency feasibility)",
        "",
        "```bash",
        data.get("command", STEM_CMD),
        "```",
        "",
        f"{s['input_size']}x{s['input_size']}x3, {s['num_classes']} classes, host LCE, 1 thread. Budget: "
        "QuickNetSmall's mean latency timed in the same loop as each module's host latency table; the search "
        "(evolution, population 50 x 20 generations) maximizes BOPs under it; then every model below is timed "
        f"together, round-robin ({s['runs']} rounds). **Latency feasibility, no ImageNet accuracy.**",
        "",
        "| model | genotype | BOPs | FLOPs | predicted (ms) | measured mean (ms) | paired ratio to QuickNetSmall |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for label, r in data["rows"].items():
        p = r["paired_to_quicknetsmall"]
        pred = r.get("predicted_ms")
        out.append(f"| {label} | {('`' + r['genotype'] + '`') if r.get('genotype') else '-'} | "
                   f"{r['costs']['bops'] / 1e9:.3f}e9 | {r['costs']['flops'] / 1e6:.1f}M | "
                   f"{'-' if pred is None else f'{pred:.2f}'} | {r['latency']['mean_ms']:.2f} | "
                   f"{p['median']:.3f}x (p10 {p['p10']:.3f}, p90 {p['p90']:.3f}) |")
    out += [""] + [f"- {line}" for line in data.get("verdict_lines", [])]
    for module, search in data.get("searches", {}).items():
        out.append(f"- {module.upper()} search: budget {search['budget_ms']:.2f} ms, {search['evaluations']} evaluations; "
                   f"exact optimum of the table {'found' if search['found_exact_optimum'] else 'not found'}; the "
                   f"fastest genotype of the space is predicted at {search['fastest_ms']:.2f} ms.")
    return out + [""]
