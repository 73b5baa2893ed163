"""BENCHMARKS.md sections of the Fashion-MNIST benchmarks that share one supernet: the search-efficiency curve
(`efficiency.py`) and the supernet's ranking quality (`ranking.py`), with their plots. Used by
`make_benchmarks_md.py`; pure Python apart from matplotlib."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import common

EFFICIENCY_CMD = ".venv/bin/python benchmarks/efficiency.py --json benchmarks/results/efficiency.json"
RANKING_CMD = ".venv/bin/python benchmarks/ranking.py --json benchmarks/results/ranking.json"
CURVE_COLORS = {"elitist": "#1f77b4", "generation": "#2ca02c", "random": "#ff7f0e"}


def plot_efficiency(eff: Dict[str, Any], path: str) -> str:
    """Mean best-so-far held-out top-1 (± std band over seeds) against the number of evaluations."""
    fig, (ax,) = common.figure(7.5, 4.6)
    for method, curves in eff["curves"].items():
        runs = list(curves.values())
        n = min(len(c) for c in runs)
        mean = [sum(c[i] for c in runs) / len(runs) for i in range(n)]
        std = [common.mean_std([c[i] for c in runs])[1] for i in range(n)]
        xs = list(range(1, n + 1))
        color = CURVE_COLORS.get(method)
        ax.plot(xs, [100 * m for m in mean], color=color, label=f"{eff['labels'][method]} ({len(runs)} seeds)")
        ax.fill_between(xs, [100 * (m - s) for m, s in zip(mean, std)], [100 * (m + s) for m, s in zip(mean, std)],
                        color=color, alpha=0.15)
    s = eff["settings"]
    ax.set_xlabel("genotypes evaluated on the supernet")
    ax.set_ylabel("best held-out top-1 so far (%)")
    ax.set_title(f"Search efficiency on {s['dataset']} ({s['module'].upper()} width {s['width_multiplier']:g}, "
                 f"FLOPs budget {s['flops_budget']:.3g}); mean ± std", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return common.save_png(fig, path)


def plot_ranking(rank: Dict[str, Any], key: str, path: str, title: str) -> str:
    """Supernet score (x) against stand-alone test top-1 (y) of every sampled genotype, coloured by FLOPs."""
    fig, (ax,) = common.figure(6.2, 4.6)
    rows = rank["rows"]
    xs = [100 * r[key] for r in rows]
    ys = [100 * r["standalone_test_accuracy"] for r in rows]
    sc = ax.scatter(xs, ys, c=[r["flops"] for r in rows], cmap="viridis", s=40, edgecolors="black", linewidths=0.4)
    fig.colorbar(sc, ax=ax, label="FLOPs")
    c = rank["correlations"]["recalibrated" if key == "supernet_recalibrated" else "no_recalibration"]
    ax.set_xlabel(f"supernet held-out top-1 (%), {title}")
    ax.set_ylabel(f"stand-alone test top-1 (%), {rank['settings']['epochs']} epochs")
    ax.set_title(f"{len(rows)} genotypes: Kendall tau {c['kendall_tau']:+.2f}, Spearman rho {c['spearman_rho']:+.2f}",
                 fontsize=9)
    ax.grid(True, alpha=0.3)
    return common.save_png(fig, path)


def method_seeds(eff: Dict[str, Any], method: str) -> List[int]:
    """The search seeds `method` ran with (all of ``settings.seeds`` unless ``--method-seeds`` chose fewer)."""
    return (eff["settings"].get("method_seeds") or {}).get(method, eff["settings"]["seeds"])


def efficiency_markdown(eff: Optional[Dict[str, Any]], plot: Optional[str],
                        title: str = "## Search efficiency on one supernet (Fashion-MNIST)",
                        command: str = EFFICIENCY_CMD) -> List[str]:
    out = [title, ""]
    if eff is None:
        return out + [f"Not run yet: `{command}`.", ""]
    s = eff["settings"]
    out += [
        f"- Command: `{eff['command']}`; wall time {common.minutes(eff.get('seconds'))} "
        f"({eff['distinct_genotypes_scored']} distinct genotypes scored; every search shares the cache).",
        *([f"- {eff['cached_at_start']} of those scores were read from the run directory's fitness cache, filled by "
           f"earlier (stopped) runs of this command and by the other benchmarks on this supernet; "
           f"{eff['scored_this_run']} were scored in this run, so the wall time is this run's share. A search is "
           f"deterministic given its scores, so cached and fresh runs give the same curves."]
          if eff.get("cached_at_start") else []),
        f"- Machine: {common.machine_summary(eff['machine'])}.",
        f"- Supernet: {s['dataset']} {s['image_size']}px, {s['module'].upper()} width {s['width_multiplier']:g}, "
        f"{s['supernet_epochs']} epochs. Fitness = held-out top-1 ({s['holdout_size']} images) after BatchNorm "
        f"recalibration on {s['recalibration_batches']} batches, exactly as `mobisearch search` scores.",
        f"- Each search: population {s['population']} x {s['iterations']} generations "
        f"({s['population'] * s['iterations']} evaluations), top-K {s['top_k']}, FLOPs budget "
        f"{s['flops_budget']:.4g}; random search with the same number of evaluations; search seeds {s['seeds']}"
        + "".join(f" ({m} only {v})" for m, v in (s.get("method_seeds") or {}).items() if v != s["seeds"]) + ".",
        "",
        "Best held-out top-1 (%) after N evaluations, mean ± std over seeds:",
        "",
        "| method | seeds | " + " | ".join(f"N = {n}" for n in eff["checkpoints"]) + " |",
        "|---|---:|" + "---:|" * len(eff["checkpoints"]),
    ]
    for method, row in eff["summary"].items():
        n_seeds = len(method_seeds(eff, method))
        out.append(f"| {eff['labels'][method]} | {n_seeds} | " + " | ".join(
            common.pm(100 * row[str(n)]["mean"], 100 * row[str(n)]["std"], n_seeds) for n in eff["checkpoints"]) + " |")
    out += ["", efficiency_reading(eff), ""]
    if plot:
        out += [f"![search efficiency]({plot})", ""]
    return out


def paired_gap(eff: Dict[str, Any], method: str, n: int) -> Tuple[float, int]:
    """Mean over the seeds both ran of (best of `method` - best of random search) after `n` evaluations."""
    curves = eff["curves"]
    seeds = sorted(set(curves[method]) & set(curves["random"]), key=int)
    diffs = [common.best_after(curves[method][k], n) - common.best_after(curves["random"][k], n) for k in seeds]
    return (sum(diffs) / len(diffs) if diffs else float("nan")), len(diffs)


def efficiency_reading(eff: Dict[str, Any]) -> str:
    """Gaps to random search on the same seeds at the last checkpoint, next to what the held-out set resolves."""
    s, last = eff["settings"], eff["checkpoints"][-1]
    if "random" not in eff["summary"]:
        return ""
    gaps = []
    for method in eff["summary"]:
        if method != "random":
            gap, k = paired_gap(eff, method, last)
            gaps.append(f"{eff['labels'][method]} {100 * gap:+.2f} ({k} seed{'s' * (k != 1)})")
    rand = eff["summary"]["random"][str(last)]["mean"]
    n = s["holdout_size"]
    se = common.binomial_se_points(rand, n)
    return (f"Reading: after {last} evaluations, points above random search on the same seeds: {'; '.join(gaps)}. "
            f"The held-out set has {n} images (one image = {100 / n:.3f} points); the binomial standard error of one "
            f"held-out top-1 near {100 * rand:.1f}% is {se:.2f} points: a genotype's fitness is known to about that "
            f"precision, and the best of many such scores is biased upwards, so gaps below it do not show that one "
            f"search finds better genotypes"
            + ("; with one search seed there is no spread over seeds yet." if len(method_seeds(eff, "random")) < 2
               else "."))


def ranking_markdown(rank: Optional[Dict[str, Any]], plots: List[str]) -> List[str]:
    out = ["## Ranking quality of the supernet (Fashion-MNIST)", ""]
    if rank is None:
        return out + [f"Not run yet: `{RANKING_CMD}`.", ""]
    s, c = rank["settings"], rank["correlations"]
    out += [
        f"- Command: `{rank['command']}`; wall time {common.minutes(rank.get('seconds'))}.",
        f"- Machine: {common.machine_summary(rank['machine'])}.",
        f"- {s['genotypes']} genotypes spread over the FLOPs range of the search space, scored on the supernet "
        f"({s['supernet_epochs']} epochs; held-out top-1 on {s['holdout_size']} images) with and without BatchNorm "
        f"recalibration, and each trained from scratch for {s['epochs']} epochs (Adam {s['learning_rate']:g}, "
        f"{s['schedule']}, seed {s['seed']}) and tested on the official {s['test_size']}-image test split.",
        "",
        "| supernet score | Kendall tau (p) | Spearman rho (p) |",
        "|---|---:|---:|",
    ]
    for key, label in (("recalibrated", "with BatchNorm recalibration (the search's fitness)"),
                       ("no_recalibration", "without recalibration (the supernet's running statistics)"),
                       ("flops", "reference: FLOPs alone")):
        x = c[key]
        out.append(f"| {label} | {x['kendall_tau']:+.3f} ({x['kendall_p']:.2g}) | "
                   f"{x['spearman_rho']:+.3f} ({x['spearman_p']:.2g}) |")
    out += ["", "| genotype | FLOPs | supernet (recal.) | supernet (no recal.) | stand-alone test |",
            "|---|---:|---:|---:|---:|"]
    for r in rank["rows"]:
        out.append(f"| `{r['genotype']}` | {r['flops']:.4g} | {100 * r['supernet_recalibrated']:.2f} | "
                   f"{100 * r['supernet_no_recalibration']:.2f} | {100 * r['standalone_test_accuracy']:.2f} |")
    out += ["", ranking_reading(rank), ""]
    out += [f"![ranking]({p})" for p in plots] + [""]
    return out


def ranking_reading(rank: Dict[str, Any]) -> str:
    """The spread of each score next to the binomial standard error of one such score."""
    s, rows = rank["settings"], rank["rows"]

    def spread(key: str, n: int) -> str:
        vals = [r[key] for r in rows]
        mean = sum(vals) / len(vals)
        se = common.binomial_se_points(mean, n)
        return f"{100 * (max(vals) - min(vals)):.2f} points (one score's binomial standard error {se:.2f})"

    tau = rank["correlations"]["recalibrated"]
    ranked = tau["kendall_tau"] > 0 and tau["kendall_p"] < 0.05
    verdict = ("the supernet ranks these genotypes: a search that follows its score is pointed the right way" if ranked
               else "the supernet's scores do not rank these genotypes measurably: in this FLOPs range the genotypes "
                    "differ by about as much as one score's noise, so a search that picks by the supernet's score can "
                    "do little better than one that picks at random (the efficiency curve above; Table 1)")
    return (f"Reading: the supernet scores span {spread('supernet_recalibrated', s['holdout_size'])}, the stand-alone "
            f"test top-1 after {s['epochs']} epochs spans {spread('standalone_test_accuracy', s['test_size'])}, before "
            f"any training-seed noise. With Kendall tau {tau['kendall_tau']:+.2f} (p {tau['kendall_p']:.2g}) "
            f"{verdict}.")


def table1_reading(ablation: Dict[str, Any]) -> str:
    """Evolution's test top-1 minus each other method's, paired by retraining seed, next to the test-set noise."""
    s, per_seed = ablation["settings"], ablation["per_seed"]
    gaps, means = [], []
    for other, label in (("random", "random search"), ("uniform", "the best uniform genotype")):
        diffs = [sd["methods"]["evolution"]["test_accuracy"] - sd["methods"][other]["test_accuracy"]
                 for sd in per_seed if "evolution" in sd["methods"] and other in sd["methods"]]
        if diffs:
            means.append(sum(diffs) / len(diffs))
            each = ", ".join(f"{100 * d:+.2f}" for d in diffs)
            gaps.append(f"{100 * means[-1]:+.2f} points over {label} (per seed {each})")
    if not gaps:
        return ""
    text = f"Reading: the evolutionary search's winner retrained scores {'; '.join(gaps)}."
    n = s.get("test_size")
    if n:
        p = ablation["aggregate"]["evolution"]["test_accuracy"]["mean"]
        se = common.binomial_se_points(p, n)
        small = max(abs(100 * m) for m in means) < 2 * se
        text += (f" One test top-1 near {100 * p:.1f}% on {n} test images has a binomial standard error of {se:.2f} "
                 f"points, before the retraining seed's own spread: " +
                 ("gaps this small are not a demonstrated win." if small else
                  "the larger gap is above twice that."))
    load = ablation.get("load_average_end")
    if load and load[0] > 2:  # more runnable jobs than this 2-core machine has cores
        text += (f" The latencies were timed on a shared machine (load average {load[0]:.1f} at the end), so their "
                 f"spread over seeds is the machine's, not the models'.")
    return text
