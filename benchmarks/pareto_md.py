"""The pure logic and the BENCHMARKS.md section of `pareto.py` (accuracy x host latency on Fashion-MNIST: the
searched models against uniform (width, groups) points, larq-zoo's binary networks and float MobileNetV1).

Pure Python (and `common`) plus matplotlib (imported lazily): `make_benchmarks_md.py` and the tests import this module without
TensorFlow. Every number comes from the JSON that `pareto.py` writes (``benchmarks/results/pareto.json``):

- `accuracy_summary`: mean test top-1 over seeds and its standard error (the test set's binomial error and the
  seeds' spread, combined);
- `pareto_front`: the (latency, accuracy) points no other point dominates;
- `dominance_reading`: for every point that is not ours, the best searched point at or below its latency and
  the margin; the goal is that the searched front dominates every uniform and larq-zoo point;
- `plot_pareto`, `pareto_markdown`: the PNG and the markdown section.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import common  # benchmarks/common.py (pure Python)

PARETO_CMD = (".venv/bin/python benchmarks/pareto.py --run-dir runs/benchmarks/ranking_variants/budget --fractions none "
              "--latency-table benchmarks/results/latency_table_joint_28.json --json benchmarks/results/pareto.json")
PARETO_PLOT = "benchmarks/results/pareto.png"
#: The family of our searched models, and the families the goal asks it to dominate (float MobileNetV1 is the
#: accuracy ceiling of a float network, listed in the reading but not part of the goal).
SEARCHED = "searched"
GOAL_FAMILIES = ("uniform", "larq-zoo")
FAMILY_ORDER = ("searched", "uniform", "larq-zoo", "float")
FAMILY_COLORS = {"searched": "tab:blue", "uniform": "tab:orange", "larq-zoo": "tab:red", "float": "tab:gray"}
FAMILY_LABELS = {"searched": "searched (ours, joint width x groups)", "uniform": "uniform (width, groups) (ours)",
                 "larq-zoo": "larq-zoo binary networks", "float": "float MobileNetV1 (accuracy ceiling)"}
SE_RULE = ("SE = sqrt(binomial SE of the mean top-1 on the test set^2 + seed std^2 / seeds): the test images are "
           "the same for every seed, so their part does not shrink with more seeds")


# ----------------------------------------------------------------------------------------------------------
# Pure logic


def accuracy_summary(values: Sequence[float], test_size: int) -> Dict[str, Any]:
    """Mean test top-1 over seeds (`values`, fractions) in points, its sample std, and its standard error.

    The standard error combines the binomial standard error of a top-1 near the mean measured on `test_size`
    images (the same images for every seed, so it does not shrink with seeds) and the standard error of the mean
    over seeds (sample std / sqrt(seeds); 0 with one seed): ``se = sqrt(binomial^2 + std^2 / n)``.
    """
    vals = [100.0 * float(v) for v in values]
    if not vals:
        raise ValueError("accuracy_summary needs at least one value")
    n = len(vals)
    mean, std = common.mean_std(vals)
    binomial = common.binomial_se_points(min(max(mean / 100.0, 0.0), 1.0), int(test_size))
    return {"mean": mean, "std": std, "n": n, "values": vals, "binomial_se": binomial,
            "se": math.sqrt(binomial ** 2 + std ** 2 / n)}


def pareto_front(points: Sequence[Tuple[float, float]]) -> List[int]:
    """Indices of the points of `points` ((latency, accuracy) pairs) that no other point dominates, by latency.

    A point q dominates p when q is no slower and no less accurate, and strictly better in one of the two. Equal
    points do not dominate each other: both stay on the front.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: List[int] = []
    best = -math.inf
    for i in order:
        lat, acc = points[i]
        if acc > best:
            front.append(i)
            best = acc
        elif front and acc == best and tuple(points[front[-1]]) == (lat, acc):
            front.append(i)  # an exact duplicate of the last front point
    return front


def dominance(point: Mapping[str, Any], searched: Sequence[Mapping[str, Any]]) -> Dict[str, Any]:
    """Whether a searched point dominates `point`: a higher test top-1 at a latency no higher than its.

    Points are mappings with ``label``, ``latency_ms``, ``top1`` (points) and ``se`` (points). Compared with the
    most accurate searched point at or below `point`'s latency: ``margin`` = its top-1 - `point`'s, with the
    standard error ``sqrt(se_a^2 + se_b^2)`` (conservative: both see the same test images, so their binomial parts
    are positively correlated and the true error of the difference is smaller).
    """
    faster = [s for s in searched if s["latency_ms"] <= point["latency_ms"]]
    out: Dict[str, Any] = {"label": point["label"], "family": point.get("family"), "latency_ms": point["latency_ms"],
                           "top1": point["top1"], "se": point["se"], "by": None, "margin": None, "margin_se": None,
                           "dominated": False, "dominated_2se": False}
    if not faster:
        out["note"] = "no searched point at or below its latency"
        return out
    best = max(faster, key=lambda s: (s["top1"], -s["latency_ms"]))
    margin = best["top1"] - point["top1"]
    se = math.hypot(best["se"], point["se"])
    out.update(by=best["label"], by_latency_ms=best["latency_ms"], by_top1=best["top1"], margin=margin, margin_se=se,
               dominated=margin > 0, dominated_2se=margin > 2 * se)
    return out


def dominance_reading(points: Sequence[Mapping[str, Any]], goal_families: Sequence[str] = GOAL_FAMILIES
                      ) -> Dict[str, Any]:
    """`dominance` of every point outside the searched family, and the goal: every point of `goal_families` is
    dominated. ``goal_met`` is None when there is no searched point or no point of `goal_families`."""
    searched = [p for p in points if p.get("family") == SEARCHED]
    entries = [dict(dominance(p, searched), in_goal=p.get("family") in goal_families)
               for p in points if p.get("family") != SEARCHED]
    goal = [e for e in entries if e["in_goal"]]
    met = all(e["dominated"] for e in goal) if (goal and searched) else None
    met_2se = all(e["dominated_2se"] for e in goal) if (goal and searched) else None
    return {"entries": entries, "goal_met": met, "goal_met_2se": met_2se,
            "goal": f"the searched front dominates every {' and '.join(goal_families)} point (higher test top-1 at "
                    "no higher latency)"}


def row_point(row: Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """A row of the JSON as a point for the reading (None until it has an accuracy and a latency)."""
    acc, lat = row.get("accuracy"), row.get("latency")
    if not acc or not lat:
        return None
    return {"label": row["label"], "family": row["family"], "latency_ms": lat["mean_ms"], "top1": acc["mean"],
            "se": acc["se"]}


def result_points(result: Mapping[str, Any]) -> List[Dict[str, Any]]:
    return [p for p in (row_point(r) for r in result.get("rows") or []) if p is not None]


def family_fronts(points: Sequence[Mapping[str, Any]]) -> Dict[str, List[Dict[str, Any]]]:
    """Each family's Pareto front (its points, by latency)."""
    out: Dict[str, List[Dict[str, Any]]] = {}
    for fam in dict.fromkeys(p["family"] for p in points):
        mine = [p for p in points if p["family"] == fam]
        out[fam] = [mine[i] for i in pareto_front([(p["latency_ms"], p["top1"]) for p in mine])]
    return out


# ----------------------------------------------------------------------------------------------------------
# Plot and markdown


def plot_pareto(result: Mapping[str, Any], path: str) -> Optional[str]:
    """Test top-1 against host latency: every row's mean ± SE, each family's Pareto front as a step line."""
    import common

    points = result_points(result)
    if not points:
        return None
    fig, (ax,) = common.figure(7.4, 4.8)
    fronts = family_fronts(points)
    for fam in sorted(fronts, key=lambda f: FAMILY_ORDER.index(f) if f in FAMILY_ORDER else 99):
        mine = [p for p in points if p["family"] == fam]
        color = FAMILY_COLORS.get(fam, "black")
        ax.errorbar([p["latency_ms"] for p in mine], [p["top1"] for p in mine], yerr=[p["se"] for p in mine],
                    fmt="o", color=color, capsize=3, ms=5, label=FAMILY_LABELS.get(fam, fam))
        front = fronts[fam]
        ax.step([p["latency_ms"] for p in front], [p["top1"] for p in front], where="post", color=color, lw=1.2,
                alpha=0.8)
        for p in mine:
            ax.annotate(p["label"], (p["latency_ms"], p["top1"]), fontsize=6, xytext=(3, 3),
                        textcoords="offset points", color=color)
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    ax.xaxis.set_major_formatter(plain)
    ax.xaxis.set_minor_formatter(plain)
    ax.tick_params(axis="x", which="minor", labelsize=7)
    s = result.get("settings") or {}
    epochs = s.get("epochs")
    ax.set_xlabel("host latency (ms, log scale): round-robin mean, 1 thread, x86; LCE interpreter for binary "
                  "models, TFLite for float")
    ax.set_ylabel("test top-1 (%), mean ± SE over seeds")
    ax.set_title(f"{s.get('dataset', '')}: {epochs} epoch{'' if epochs == 1 else 's'}, one recipe for every model; "
                 "steps: each family's Pareto front", fontsize=9)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(fontsize=7, loc="best")
    return common.save_png(fig, path)


def numerics_failed(row: Mapping[str, Any]) -> bool:
    """Whether the `.tflite` of some seed of `row` differs from its Keras model beyond the export's tolerance."""
    return any((s.get("numerics") or {}).get("passed") is False for s in row.get("per_seed") or [])


NUMERICS_MARK = "†"
NUMERICS_NOTE = (f"{NUMERICS_MARK} the `.tflite` differs from the Keras model beyond the export's numerics tolerance "
                 "(`deploy.verify`; recorded per seed under `numerics`, not enforced for models that are not ours): "
                 "read its `.tflite` top-1 as what the deployed file computes. Where the difference comes from: the "
                 "section below (`peer_numerics.py`).")


def tflite_top1_text(row: Mapping[str, Any]) -> str:
    """Mean `.tflite` top-1 over seeds (points), marked when the numerics gate failed."""
    tfl = [s.get("tflite_accuracy") for s in row.get("per_seed") or [] if s.get("tflite_accuracy") is not None]
    if not tfl:
        return "-"
    return f"{100 * sum(tfl) / len(tfl):.2f}" + (NUMERICS_MARK if numerics_failed(row) else "")


def _fmt_row(row: Mapping[str, Any], reference: Optional[str]) -> str:
    acc, lat, c = row.get("accuracy"), row.get("latency"), row.get("costs") or {}
    acc_txt = f"{acc['mean']:.2f} ± {acc['se']:.2f}" if acc else "-"
    tfl_txt = tflite_top1_text(row)
    lat_txt = f"{lat['mean_ms']:.3f} ({lat['p10_ms']:.3f}-{lat['p90_ms']:.3f})" if lat else "-"
    paired = row.get("paired_to_reference")
    ratio = "1 (reference)" if row["label"] == reference else (f"{paired['median']:.2f}x" if paired else "-")
    fl = f"{c['flops']:.3g}" if c.get("flops") is not None else "-"
    bops = f"{c['bops']:.3g}" if c.get("bops") is not None else "-"
    size = f"{row['tflite_bytes'] / 1e3:,.0f} kB" if row.get("tflite_bytes") else "-"
    seeds = len(acc["values"]) if acc else 0
    return (f"| {row['family']} | {row['label']} | {row.get('input_size', '-')} | {seeds} | {acc_txt} | {tfl_txt} | "
            f"{fl} | {bops} | {size} | {lat_txt} | {ratio} |")


def reading_lines(reading: Mapping[str, Any]) -> List[str]:
    """One line per compared point, then the goal's verdict."""
    out = []
    for e in reading.get("entries") or []:
        head = f"- {e['label']} ({e['family']}, {e['top1']:.2f}% at {e['latency_ms']:.3f} ms)"
        if e.get("margin") is None:
            out.append(f"{head}: not dominated: {e.get('note', 'no searched point at or below its latency')}"
                       + ("" if e.get("in_goal") else " (not part of the goal)") + ".")
            continue
        verdict = "dominated" if e["dominated"] else "NOT dominated"
        strength = " (by more than 2 SE)" if e["dominated_2se"] else ""
        out.append(f"{head}: {verdict}{strength} by {e['by']} ({e['by_top1']:.2f}% at {e['by_latency_ms']:.3f} ms): "
                   f"margin {e['margin']:+.2f} ± {e['margin_se']:.2f} points"
                   + ("" if e.get("in_goal") else " (not part of the goal)") + ".")
    met = reading.get("goal_met")
    if met is None:
        out.append("Goal (" + reading.get("goal", "") + "): not decided yet (no searched point or no peer with a "
                   "latency and an accuracy).")
    else:
        out.append(f"Goal ({reading.get('goal', '')}): **{'MET' if met else 'NOT MET'}**"
                   + (" (every margin above 2 SE)" if reading.get("goal_met_2se") else "") + ".")
    return out


def _budget_note(row: Mapping[str, Any]) -> str:
    """`` (table: 0.22 ms for a 0.23 ms budget; measured 0.21 ms)`` for a latency-budget search's row,
    `` (table: 0.22 ms; measured 0.21 ms)`` for another row the table predicts."""
    if row.get("predicted_ms") is None:
        return ""
    budget = row.get("latency_budget_ms")
    measured = (row.get("latency") or {}).get("mean_ms")
    return (f" (table: {row['predicted_ms']:.3f} ms" + (f" for a {budget:.3f} ms budget" if budget is not None else "")
            + (f"; measured {measured:.3f} ms" if measured is not None else "") + ")")


def budget_neighbours(rows: Sequence[Mapping[str, Any]],
                      scores: Optional[Mapping[str, float]] = None) -> List[Dict[str, Any]]:
    """For each latency-budget searched row, the uniform row nearest to it in measured latency (paired ratio to
    the reference), and whether the latency table, the search's cost model, put that row within the budget: a
    uniform point the table puts just over a budget is one the search could not pick, however fast it runs.
    With `scores` (supernet score by label), both rows' scores too."""
    ratio = lambda r: (r.get("paired_to_reference") or {}).get("median")  # noqa: E731
    uniform = [r for r in rows if r.get("family") == "uniform" and r.get("predicted_ms") is not None
               and ratio(r) is not None and r.get("accuracy")]
    out = []
    for s in rows:
        if s.get("family") != "searched" or s.get("latency_budget_ms") is None or ratio(s) is None \
                or not s.get("accuracy") or not uniform:
            continue
        u = min(uniform, key=lambda r: abs(ratio(r) - ratio(s)))
        out.append({"searched": s["label"], "uniform": u["label"], "budget_ms": s["latency_budget_ms"],
                    "searched_top1": s["accuracy"]["mean"], "searched_ratio": ratio(s),
                    "uniform_top1": u["accuracy"]["mean"], "uniform_ratio": ratio(u),
                    "uniform_predicted_ms": u["predicted_ms"],
                    "uniform_feasible": u["predicted_ms"] <= s["latency_budget_ms"],
                    "searched_score": (scores or {}).get(s["label"]), "uniform_score": (scores or {}).get(u["label"])})
    return out


def budget_neighbour_lines(rows: Sequence[Mapping[str, Any]],
                           scores: Optional[Mapping[str, float]] = None) -> List[str]:
    """`budget_neighbours` as markdown bullets."""
    def supernet(n):
        if n["searched_score"] is None or n["uniform_score"] is None:
            return ""
        return (f" The supernet scores the winner {100 * n['searched_score']:.2f}% and {n['uniform']} "
                f"{100 * n['uniform_score']:.2f}%.")

    def verdict(n):
        if n["uniform_feasible"]:
            return f"within the {n['budget_ms']:.3f} ms budget: the search could have picked it."
        return (f"over the {n['budget_ms']:.3f} ms budget by "
                f"{100 * (n['uniform_predicted_ms'] / n['budget_ms'] - 1):.1f}%: the search could not pick it.")

    return [f"- {n['searched']} ({n['searched_top1']:.2f}%, measured {n['searched_ratio']:.2f}x): nearest uniform "
            f"point {n['uniform']} ({n['uniform_top1']:.2f}%, measured {n['uniform_ratio']:.2f}x), which the table "
            f"predicts at {n['uniform_predicted_ms']:.3f} ms, " + verdict(n) + supernet(n)
            for n in budget_neighbours(rows, scores)]


def same_supernet_note(rows: Sequence[Mapping[str, Any]], scores: Mapping[str, float]) -> str:
    """Whether the scoring supernet gives the searched rows the fitness their searches recorded (then it is the
    searches' supernet, or a bit-identical retraining of it)."""
    pairs = [(scores[r["label"]], r["supernet_fitness"]) for r in rows
             if r.get("family") == "searched" and r["label"] in scores and r.get("supernet_fitness") is not None]
    if not pairs:
        return ""
    if all(abs(a - b) < 1e-9 for a, b in pairs):
        return (f" It gives the {len(pairs)} searched winners exactly the fitness their searches recorded: it is the "
                f"searches' supernet, or a bit-identical retraining of it.")
    worst = max(abs(a - b) for a, b in pairs)
    return (f" It is not the searches' supernet: it scores the searched winners up to {100 * worst:.2f} points away "
            f"from the fitness their searches recorded.")


def score_agreement(rows: Sequence[Mapping[str, Any]], scores: Mapping[str, float]) -> Optional[Dict[str, Any]]:
    """Kendall tau (and its p-value) between the supernet's scores and the stand-alone test top-1 of the rows
    that have both; None with fewer than 3 such rows."""
    from scipy.stats import kendalltau

    both = [(scores[r["label"]], r["accuracy"]["mean"]) for r in rows if r["label"] in scores and r.get("accuracy")]
    if len(both) < 3:
        return None
    tau, p = kendalltau([a for a, _ in both], [b for _, b in both])
    return {"tau": float(tau), "p": float(p), "n": len(both)}


def pareto_markdown(result: Optional[Mapping[str, Any]], plot: Optional[str] = None) -> str:
    """The BENCHMARKS.md section: how it was measured, one table row per model, the plot and the reading.

    `plot` is the PNG's path as the markdown links it (default: the JSON's ``plot``, else `PARETO_PLOT`)."""
    if not result:
        return f"## Accuracy x latency against what users would otherwise pick\n\nNot run yet: `{PARETO_CMD}`.\n"
    s = result.get("settings") or {}
    reference = result.get("reference")
    reading = result.get("reading") or dominance_reading(result_points(result))
    plot = plot or result.get("plot") or PARETO_PLOT
    fractions = ", ".join(f"{f:g}" for f in s.get("budget_fractions") or [])
    latency = ", ".join(f"{f:g}" for f in s.get("latency_fractions") or [])
    budgets = " and ".join(
        ([f"FLOPs budgets of {fractions} x the uniform width-1 / groups-1 model"] if fractions else [])
        + ([f"latency budgets of {latency} x the uniform width-1 / groups-1 model's latency as predicted by the "
            f"host latency table of the joint space (`{s.get('latency_table')}`, `benchmarks/latency_joint.py`)"]
           if latency else [])) or "no budget yet"
    epochs = s.get("epochs")
    out = [
        f"## Accuracy x latency against what users would otherwise pick ({s.get('dataset', '')})",
        "",
        "```bash",
        result.get("command", PARETO_CMD),
        "```",
        "",
        f"One training recipe for every model: {epochs} epoch{'' if epochs == 1 else 's'}, "
        f"{str(s.get('optimizer')).capitalize()} {s.get('learning_rate', 0):g} with {s.get('schedule')} decay, batch "
        f"{s.get('batch_size')}, no augmentation, seeds {', '.join(map(str, s.get('seeds') or []))} "
        f"(initialization); test top-1 on the {s.get('test_size', 0):,}-image test split (Fashion-MNIST: the "
        f"official one), in Keras and as the `.tflite` (LCE interpreter for binary "
        f"models, TFLite for float). Searched rows: the joint (width x groups) search of the `{s.get('run_dir')}` "
        f"supernet at {budgets}, each winner retrained "
        f"from scratch. Inputs {s.get('image_size')}x{s.get('image_size')}x{s.get('channels')}; models that do not "
        f"build at that size get the images zero-padded (background value) to the size in the table. Host "
        f"latency: every `.tflite` timed together, round-robin, 1 thread, {s.get('timing_runs')} rounds "
        f"(mean, p10-p90); "
        + (f"ratio = paired median per-round ratio to {reference}. " if reference else "not timed yet. ")
        + f"{SE_RULE}."
        + ("" if result.get("complete") else " **Incomplete: the models finished so far.**"),
        "",
        "| family | model | input | seeds | test top-1 (%) ± SE | .tflite top-1 (%) | FLOPs | BOPs | .tflite | "
        "latency ms (p10-p90) | ratio |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    out += [_fmt_row(r, reference) for r in result.get("rows") or []]
    if any(numerics_failed(r) for r in result.get("rows") or []):
        out += ["", NUMERICS_NOTE]
    untrained = [r["label"] for r in result.get("rows") or [] if str(r.get("timed", "")).endswith("untrained")]
    if untrained:
        out += ["", f"Timed on the same architecture exported untrained (the trained `.tflite` was trained in an "
                    f"earlier session, on another machine; kernels do not depend on weight values): "
                    f"{', '.join(untrained)}."]
    genotypes = [r for r in result.get("rows") or [] if r.get("genotype")]
    if genotypes:
        out += ["", "Genotypes (group counts, then block widths after `_w`):", ""]
        out += [f"- {r['label']}: `{r['genotype']}`" + _budget_note(r) for r in genotypes]
    if result_points(result):
        out += ["", f"![accuracy vs latency]({plot})"]
    sn = result.get("supernet_scores") or {}
    neighbours = budget_neighbour_lines(result.get("rows") or [], sn.get("scores"))
    if neighbours:
        out += ["", "Each latency budget's winner against the uniform point nearest to it in measured latency (ratios "
                    "to the reference):", ""] + neighbours
    agreement = score_agreement(result.get("rows") or [], sn.get("scores") or {})
    if agreement:
        out += ["", f"Supernet scores (held-out top-1 after BatchNorm recalibration, as the search scores; supernet "
                    f"weights `{sn.get('supernet')}`, `--supernet-scores`) against test top-1 over our "
                    f"{agreement['n']} rows: Kendall tau {agreement['tau']:+.2f} (p {agreement['p']:.2f})."
                    + same_supernet_note(result.get("rows") or [], sn["scores"])]
        by = {int(n): score_agreement(result.get("rows") or [], scores)
              for n, scores in (sn.get("by_recalibration") or {}).items()}
        if len(by) > 1:
            out += ["", "The same genotypes scored after other numbers of BatchNorm recalibration batches (the "
                        f"search uses {sn.get('recalibration_batches')}): " + "; ".join(
                            f"{n} batches: tau {a['tau']:+.2f} (p {a['p']:.2f})" for n, a in sorted(by.items()) if a)
                    + "."]
        variants = {name: (v, score_agreement(result.get("rows") or [], v["scores"]))
                    for name, v in (sn.get("by_variant") or {}).items()}
        if variants:
            out += ["", "The same genotypes on supernets trained otherwise (`--score-variants`: "
                        "`benchmarks/ranking_variants.py`'s variants, otherwise the same recipe, scored as the "
                        "search scores): " + "; ".join(
                            f"`{name}` (`{v['run_dir']}`): tau {a['tau']:+.2f} (p {a['p']:.2f})"
                            for name, (v, a) in variants.items() if a) + "."]
    out += ["", "Reading:", ""]
    lines = reading_lines(reading)
    out += lines[:-1] + ["", lines[-1]]  # the goal's verdict as a paragraph of its own
    machine = result.get("machine")
    if machine:
        import common

        out += ["", f"Machine: {common.machine_summary(machine)}. Host x86 LCE kernels, not a phone: read ratios."]
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------------------------------------
# Why the larq-zoo QuickNets fail the numerics gate at 32x32 (`peer_numerics.py`)

PEER_NUMERICS_CMD = ".venv/bin/python benchmarks/peer_numerics.py --json benchmarks/results/peer_numerics.json"


def numerics_summary(result: Mapping[str, Any]) -> Dict[str, Any]:
    """One model at one size (trained or not): its smallest feature map, the largest BatchNorm gain, the first cut
    where the median image departs systematically (relative difference above 1e-4), and at the logits the median
    image's relative LCE-Keras difference, the share of images above 1e-4 and the top-1 agreement."""
    cuts = [c for c in result["cuts"] if c["bn_gain"] is not None]
    logits = result["cuts"][-1]
    first = next((c for c in result["cuts"] if c["median_image_relative"] > 1e-4), None)
    return {"model": result["model"], "input_size": result["input_size"],
            "trained_epochs": result.get("trained_epochs", 0),
            "last_side": min((c["shape"][0] for c in cuts), default=None),
            "max_gain": max((c["bn_gain"] for c in cuts), default=None),
            "first_systematic": first, "median_relative": logits["median_image_relative"],
            "images_over": logits["images_over_1e-4"],
            "top1_agreement": logits["top1_agreement"]}


def peer_numerics_markdown(data: Optional[Mapping[str, Any]]) -> List[str]:
    if not data:
        return []
    g = lambda x: "-" if x is None else f"{x:.2g}"  # noqa: E731
    commands = list(dict.fromkeys(r.get("command", PEER_NUMERICS_CMD) for r in data["results"]))
    out = ["### Where the larq-zoo QuickNets' `.tflite` departs from Keras", "", "```bash", *commands, "```", "",
           "Each model built as in the Pareto run, either untrained with its BatchNorms given the exact statistics "
           "of Fashion-MNIST training images (zero-padded), or trained on all 60,000 of them; cut after every "
           "BatchNorm (or only at the logits), each cut converted with LCE, and LCE compared with Keras on test "
           "images. Relative difference: an image's largest |LCE - Keras| over the output's largest |Keras| value. "
           "BN gain: |gamma| / sqrt(moving variance + epsilon), largest over channels (a zero variance gives "
           "1/sqrt(epsilon), 316 for epsilon 1e-5).", "",
           "| model | input | weights | test images | smallest map | largest BN gain | first cut with a systematic "
           "difference (BN gain there) | logits: median image's relative difference | images above 1e-4 | "
           "top-1 agreement |", "|---|---:|---|---:|---:|---:|---|---:|---:|---:|"]
    summaries = [numerics_summary(r) for r in data["results"]]
    for s, r in zip(summaries, data["results"]):
        side = "-" if s["last_side"] is None else f"{s['last_side']}x{s['last_side']}"
        how = f"trained {s['trained_epochs']} epoch(s)" if s["trained_epochs"] else \
            f"untrained, BN from {r.get('calibration_images')} images"
        f = s["first_systematic"]
        first = "none" if f is None else f"`{f['layer']}` {'x'.join(map(str, f['shape']))} ({g(f['bn_gain'])})"
        out.append(f"| {s['model']} | {s['input_size']} | {how} | {r.get('test_images')} | {side} | "
                   f"{g(s['max_gain'])} | {first} | {g(s['median_relative'])} | {100 * s['images_over']:.0f}% | "
                   f"{100 * s['top1_agreement']:.1f}% |")
    pad_rows = (data.get("padding") or {}).get("rows") or []
    wrong_sides = sorted({r["side"] for r in pad_rows if r["pad_values"] == 0 and r["relative"] > 1e-2})
    ok = [s for s in summaries if not s["trained_epochs"] and s["first_systematic"] is None]
    reading = []
    if ok:
        gains = [s["max_gain"] for s in ok if s["max_gain"] is not None]
        shares = [100 * s["images_over"] for s in ok]
        reading.append(
            f"Untrained, {' and '.join(dict.fromkeys(s['model'] for s in ok))} match Keras on the typical image to {g(max(s['median_relative'] for s in ok))} "
            f"relative (float rounding) at every size, even where the 1x1 maps at 32 px give BN gains of "
            f"{g(max(gains, default=None))}; their large differences come from {min(shares):.0f}-{max(shares):.0f}% "
            "of the images, as sign flips at near ties would (a binary conv input within rounding of 0; the "
            "export's gate excludes such images; not checked per image here).")
    for s, r in zip(summaries, data["results"]):
        f = s["first_systematic"]
        if f is None:
            continue
        before = [c for c in r["cuts"][:r["cuts"].index(f)] if c["bn_gain"] is not None]
        most_before = max((c["bn_gain"] for c in before), default=0.0)
        collapsed = (f["bn_gain"] or 0) > 150 and most_before < (f["bn_gain"] or 0) / 10
        share = "every image" if s["images_over"] == 1 else f"{100 * s['images_over']:.0f}% of the images"
        how = f"trained ({s['trained_epochs']} epoch(s))" if s["trained_epochs"] else "untrained"
        text = (f"{s['model']} {how} at {s['input_size']} px departs on {share} (logits: median relative "
                f"difference {g(s['median_relative'])}, top-1 agreement {100 * s['top1_agreement']:.1f}%), from "
                f"`{f['layer']}` ({'x'.join(map(str, f['shape']))}, BN gain {g(f['bn_gain'])}, relative difference "
                f"{g(f['median_image_relative'])} on the median image there; the BatchNorms before it: gains at most "
                f"{g(most_before)}).")
        if collapsed:
            text += (" A gain near 1/sqrt(epsilon) means a channel whose variance collapsed to ~0 in training; the "
                     "difference is consistent with float rounding multiplied by it rather than a wrong kernel (which "
                     "op of the converted graph loses the precision was not isolated).")
        elif f["median_image_relative"] > 0.1 and f["shape"][0] in wrong_sides:
            text += (f" A relative difference of {g(f['median_image_relative'])} at once is a wrong result, not "
                     f"rounding: the map is {f['shape'][0]}x{f['shape'][0]}, and LCE computes a 3x3 'same' binary conv "
                     f"with zero padding (`pad_values=0`, larq's default, which Bi-RealNet keeps) wrongly on "
                     f"{' and '.join(f'{x}x{x}' for x in wrong_sides)} inputs (the table below); with `pad_values=1` "
                     "(QuickNet, and this package's binary convs by default) it is right at every size.")
        reading.append(text)
    out += ["", "Reading: " + " ".join(reading), ""] if reading else [""]
    if pad_rows:
        out += ["One binary conv alone (3x3, 'same', BatchNorm after it, random inputs, "
                f"{pad_rows[0]['channels']} channels; `{(data.get('padding') or {}).get('command', PEER_NUMERICS_CMD)}`): "
                "relative LCE-Keras difference by input side and padding value.", "",
                "| input side | pad_values | weights | relative difference |", "|---:|---:|---|---:|"]
        out += [f"| {r['side']} | {r['pad_values']:g} | {r['kernel_quantizer']} | {g(r['relative'])} |" for r in pad_rows]
        out.append("")
    return out
