"""The BENCHMARKS.md section of `methods.py` (related methods: RSign, RPReLU, distributional loss, two-step,
Bop, MoBiNet) and the MoBiNet row of the Table-1 ablations, kept apart from `make_benchmarks_md.py`.

Pure Python plus matplotlib; every number comes from the JSON (``benchmarks/results/methods.json``).
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import common

METHODS_CMD = ".venv/bin/python benchmarks/methods.py --preset fashion --json benchmarks/results/methods.json"


_figure, _save, _minutes = common.figure, common.save_png, common.minutes


def _machine_lines(machine: Dict[str, Any]) -> List[str]:
    return [f"- Machine: {common.machine_summary(machine)}. **Host x86**: LCE's portable x86 kernels, not its ARM "
            "kernels -- read ratios, not phone latencies."]


def ablation_baselines_markdown(ablation: Optional[Dict[str, Any]]) -> List[str]:
    """The ablation's named-baseline rows (MoBiNet-style), when its JSON has them."""
    if not ablation or "mobinet" not in (ablation.get("aggregate") or {}):
        return []
    a = ablation["aggregate"]["mobinet"]
    acc, fl, lat = a["test_accuracy"], a["flops"], a["latency_ms"]
    return ["MoBiNet-style baseline in the same runs (every binary 3x3 conv depthwise, retrained from scratch with "
            "the same settings, not scored by the supernet; LCE cannot lower depthwise binary convs, so its "
            "`.tflite` keeps them as float ops, exported with `--allow-float-fallback`):", "",
            "| method | test top-1 (%) | FLOPs | latency (ms) |", "|---|---:|---:|---:|",
            f"| MoBiNet-style (depthwise) | {100 * acc['mean']:.2f} ± {100 * acc['std']:.2f} | {fl['mean']:.4g} | "
            f"{lat['mean']:.3f} ± {lat['std']:.3f} |", ""]


def plot_methods(methods: Dict[str, Any], path: str) -> str:
    fig, (ax,) = _figure(7.5, 4.8)
    for i, e in enumerate(methods["methods"]):
        common.plot_seeds_and_mean(ax, e["per_seed"], e, f"C{i}", e["label"])
    s = methods["settings"]
    ax.set_xlabel("host latency, LCE interpreter, 1 thread (median, ms)")
    ax.set_ylabel("test top-1 (%)")
    ax.set_title(f"Related methods on {s['dataset']} ({s['module'].upper()} width {s['width_multiplier']:g}, "
                 f"{len(s['seeds'])} seeds; dots: single seeds)", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def methods_markdown(methods: Optional[Dict[str, Any]], plot: Optional[str]) -> List[str]:
    """The related-methods section (benchmarks/methods.py): one row per method, every number from the JSON."""
    out = ["## Related methods: RSign, RPReLU, distributional loss, two-step, Bop, MoBiNet", ""]
    if methods is None:
        return out + [f"Not run yet: `{METHODS_CMD}`.", ""]
    s = methods["settings"]
    teacher = methods.get("teacher")
    genotype = s.get("genotype") or f"uniform groups={s.get('groups')}"
    out += [
        f"- Command: `{methods['command']}`; wall time {_minutes(methods.get('seconds'))}.",
        *_machine_lines(methods["machine"]),
        f"- Data: `{s['dataset']}` at {s['image_size']}px (preset `{s['preset']}`), test top-1 of the retrained Keras "
        f"model on the whole test split; module {s['module'].upper()} at width {s['width_multiplier']:g}; genotype "
        f"{genotype} for every row but MoBiNet; {s['retrain_epochs']} retraining epochs per row (two-step: "
        f"{'each step all of them' if s.get('two_step_full') else 'the same total, split in half'}); seeds "
        f"{', '.join(map(str, s['seeds']))} (data order and initialization).",
        "- Teacher of the distillation rows: the float twin (groups 1, ReLU in place of the sign), "
        + (f"{teacher['epochs']} epochs, test top-1 {100 * teacher['test_accuracy']:.2f}%." if teacher else "not run."),
        f"- Latency: every exported `.tflite` timed together round-robin ({s['latency_runs']} rounds, LCE "
        "interpreter, 1 thread, median); 'vs baseline' is the median of the per-round ratios to the baseline of "
        "the same seed. FLOPs count conv and dense MACs only (BOPs/64 + float FLOPs): the element-wise float ops "
        "these methods add are in the last column (LCE op census difference to the baseline).",
        "",
        f"Mean ± sample std over {len(s['seeds'])} seeds:" if len(s["seeds"]) > 1 else "One seed (no spread yet):",
        "",
        "| method | epochs | test top-1 (%) | FLOPs | latency (ms) | vs baseline | float ops added |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for e in methods["methods"]:
        acc, lat, n = e["test_accuracy"], e["latency_ms"], len(e["per_seed"])
        ratio = e.get("latency_ratio_to_baseline")
        added = ", ".join(f"{k} {v:+d}" for k, v in (e.get("ops_added") or {}).items()) or "-"
        out.append(f"| {e['label']} | {e['epochs']} | {common.pm(100 * acc['mean'], 100 * acc['std'], n)} | "
                   f"{e['costs']['flops']:.4g} | {common.pm(lat['mean'], lat['std'], n, 3)} | "
                   f"{'-' if ratio is None else f'{ratio:.3f}x'} | {added} |")
    if any(e.get("baseline") == "mobinet" for e in methods["methods"]):
        out += ["", "MoBiNet-style: LCE cannot lower depthwise binary convs (1 input channel per group); its "
                "`.tflite` keeps them as float ops (`--allow-float-fallback`), which its latency includes."]
    out += ["", "Per seed:", "", "| method | seed | genotype | test top-1 (%) | latency (ms) | vs baseline |",
            "|---|---:|---|---:|---:|---:|"]
    for e in methods["methods"]:
        for r in e["per_seed"]:
            ratio = (r.get("paired_to_baseline") or {}).get("median")
            out.append(f"| {e['label']} | {r['seed']} | `{r['genotype']}` | {100 * r['test_accuracy']:.2f} | "
                       f"{r['latency_ms']:.3f} | {'-' if ratio is None else f'{ratio:.3f}x'} |")
    out.append("")
    if plot:
        out += [f"![related methods: accuracy vs latency]({plot})", ""]
    return out
