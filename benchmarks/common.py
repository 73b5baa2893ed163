"""Helpers shared by the benchmark scripts (`peers.py`, `ablation.py`, `make_benchmarks_md.py`).

Pure Python except `profile_costs` (imports Larq lazily): the markdown generator and the tests can import
this module without TensorFlow. Import `larq_mobisearch` before this module's TensorFlow-using helpers.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shlex
import sys
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

#: Bi-Real Net / paper convention (same constant as `larq_mobisearch.search.costs.BOPS_PER_FLOP`).
BOPS_PER_FLOP = 64


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command that ran this script, as a copy-pasteable string (relative to the repo root)."""
    argv = list(sys.argv if argv is None else argv)
    script = argv[0] if argv else ""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        rel = os.path.relpath(os.path.abspath(script), root)
        if not rel.startswith(".."):
            script = rel
    except ValueError:  # pragma: no cover - other drive on Windows
        pass
    return " ".join([".venv/bin/python", shlex.quote(script), *map(shlex.quote, argv[1:])])


def print_machine(machine: Mapping[str, Any], extra: Sequence[str] = ()) -> None:
    print("Machine (host, x86 LCE kernels; NOT a phone or Raspberry Pi measurement):")
    for k in ("cpu", "cpu_count", "platform", "python", "tensorflow_version", "larq_version", "lce_version"):
        print(f"  {k:<20} {machine.get(k)}")
    for line in extra:
        print(f"  {line}")
    try:
        print(f"  {'load average':<20} {tuple(round(x, 2) for x in os.getloadavg())}")
    except OSError:  # pragma: no cover
        pass
    print()


def load_average() -> Optional[List[float]]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return None


def mean_std(values: Sequence[float]) -> Tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value). Raises on an empty list."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean_std needs at least one value")
    m = sum(vals) / len(vals)
    if len(vals) == 1:
        return m, 0.0
    var = sum((v - m) ** 2 for v in vals) / (len(vals) - 1)
    return m, math.sqrt(var)


def fmt_mean_std(values: Sequence[float], scale: float = 1.0, digits: int = 2, unit: str = "") -> str:
    m, s = mean_std(values)
    text = pm(m * scale, s * scale, len(values), digits)
    return f"{text} {unit}".strip()


def pm(mean: float, std: float, n: int, digits: int = 2) -> str:
    """``mean ± std``, or the mean alone when it comes from one value (a spread of 0.00 would be a claim)."""
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if n > 1 else f"{mean:.{digits}f}"


def profile_costs(model) -> Dict[str, float]:
    """BOPs, float FLOPs and FLOPs (= BOPs/64 + float FLOPs) of any Keras model, from Larq's `ModelProfile`.

    Larq counts the multiply-accumulates of every conv / dense layer (weights x output pixels, so grouped and
    depthwise convs are counted with their real kernel size) at the precision max(input bits, weight bits).
    1-bit MACs are BOPs, 32-bit MACs are float FLOPs; any other precision is reported under ``other_macs``
    and counted as float FLOPs. Applied uniformly to every model, this equals `larq_mobisearch.search.costs.count_costs`
    on our models (checked in tests/test_benchmarks.py).
    """
    from larq.models import ModelProfile

    profile = ModelProfile(model)
    total = profile.op_count("mac")
    bops = profile.op_count("mac", 1)
    float_macs = profile.op_count("mac", 32)
    other = total - bops - float_macs
    return {
        "bops": int(bops),
        "float_flops": int(float_macs + other),
        "other_macs": int(other),
        "flops": bops / BOPS_PER_FLOP + float_macs + other,
    }


def paired_ratio(times_a: Sequence[float], times_b: Sequence[float]) -> Dict[str, float]:
    """Paired comparison of two models timed in the same round-robin rounds (round i of a with round i of b).

    On a host whose speed drifts, the per-round ratio a_i / b_i cancels most of the drift that widens each
    model's own spread. Returns the median, p10 and p90 of the per-round ratios, the share of rounds in which
    a was faster, and the number of rounds.
    """
    if len(times_a) != len(times_b) or not times_a:
        raise ValueError(f"paired_ratio needs two equally long, non-empty series ({len(times_a)} vs {len(times_b)})")
    ratios = sorted(float(a) / float(b) for a, b in zip(times_a, times_b))

    def q(p: float) -> float:  # linear interpolation, as numpy.percentile
        x = p * (len(ratios) - 1)
        lo = int(math.floor(x))
        hi = min(lo + 1, len(ratios) - 1)
        return ratios[lo] + (ratios[hi] - ratios[lo]) * (x - lo)

    return {
        "median": q(0.5),
        "p10": q(0.1),
        "p90": q(0.9),
        "share_faster": sum(1 for a, b in zip(times_a, times_b) if a < b) / len(ratios),
        "rounds": len(ratios),
    }


def pareto_fastest_under_budget(
    fixed_cost: float,
    cost_tables: Sequence[Mapping[int, float]],
    fixed_latency: float,
    latency_tables: Sequence[Mapping[int, float]],
    candidates: Sequence[Sequence[int]],
    budget: float,
) -> Optional[Tuple[float, float, Tuple[int, ...]]]:
    """Exact minimum of an additive latency under an additive cost budget: (cost, latency, genotype) or None.

    Dynamic programming over the genes, keeping only the (cost, latency) Pareto front of the partial
    genotypes: a partial genotype dominated by another (no cheaper, no faster) can be replaced by it in any
    completion, so the front after the last gene contains the optimum. Prefixes that cannot finish within
    the budget are dropped.
    """
    n = len(candidates)
    min_rest = [0.0] * (n + 1)
    for i in range(n - 1, -1, -1):
        min_rest[i] = min_rest[i + 1] + min(cost_tables[i][g] for g in candidates[i])
    front: List[Tuple[float, float, Tuple[int, ...]]] = [(float(fixed_cost), float(fixed_latency), ())]
    for i, cands in enumerate(candidates):
        grown = [
            (c + cost_tables[i][g], lat + latency_tables[i][g], genes + (int(g),))
            for c, lat, genes in front
            for g in cands
            if c + cost_tables[i][g] + min_rest[i + 1] <= budget * (1 + 1e-12)
        ]
        grown.sort(key=lambda t: (t[0], t[1]))
        front = []
        best = math.inf
        for t in grown:
            if t[1] < best:
                front.append(t)
                best = t[1]
    if not front:
        return None
    return min(front, key=lambda t: (t[1], t[0]))


def machine_summary(machine: Mapping[str, Any]) -> str:
    return (
        f"{machine.get('cpu')} ({machine.get('cpu_count')} logical CPUs, {machine.get('machine') or platform.machine()}), "
        f"{machine.get('platform')}; Python {machine.get('python')}, TensorFlow {machine.get('tensorflow_version')}, "
        f"Larq {machine.get('larq_version')}, LCE {machine.get('lce_version')}"
    )


# --------------------------------------------------------------------------------------------------------
# One supernet shared by several benchmarks (Fashion-MNIST: ranking, efficiency curve, Table 1)


def read_ledger(path: Optional[str], settings: Dict[str, Any]) -> Dict[str, Any]:
    """The results an earlier run of a benchmark wrote to `path` (``{}`` if none): the ledger that carries its
    finished work across machines and sessions (run directories do not travel; the committed JSON does).
    Refused (SystemExit) if its ``settings`` differ from `settings` in any key of `settings`."""
    if not path or not os.path.isfile(path):
        return {}
    with open(path) as f:
        old = json.load(f)
    differ = {k: (old.get("settings", {}).get(k), v) for k, v in settings.items()
              if old.get("settings", {}).get(k) != v}
    if differ:
        what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in differ.items())
        raise SystemExit(f"{path} was written with other settings ({what}): use another --json, or delete it "
                         f"to start over")
    return old


def shared_run(run_dir: str, preset: str, overrides: Sequence[str] = (), search: Optional[str] = None):
    """The run directory `run_dir` (created from `preset` + `overrides` if new, else its saved config plus
    `overrides`), opened for search `search` (None: the supernet only). Import larq_mobisearch first."""
    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config
    from larq_mobisearch.pipeline.rundir import saved_config

    saved = saved_config(run_dir, search)
    cfg = load_config(preset=preset, overrides=overrides) if saved is None else \
        load_config(overrides=overrides, base=saved)
    return P.Run.open(run_dir, cfg, verbose=0, search=search, echo=print)


def ensure_supernet(run) -> Dict[str, Any]:
    """Train the run's supernet unless it is trained (resumes an interrupted one); its done.json."""
    import json

    from larq_mobisearch import pipeline as P

    if not run.done("supernet"):
        print(f"Training the supernet in {run.run_dir} ({run.cfg.supernet.epochs} epochs) ...", flush=True)
        run.verbose = 2  # one line per epoch
        P.train_supernet(run)
        run.verbose = 0
    with open(run.path("supernet", "done.json")) as f:
        return json.load(f)


class CachedEvaluator:
    """An evaluator whose scores are kept in a JSON file: the supernet's fitness of a genotype is a pure
    function of the genotype (fixed weights, recalibration batches and held-out split), so every search of
    a benchmark can share it, and a killed benchmark resumes without re-scoring.

    # Arguments
        evaluator: object with ``score(genotypes) -> list[float]``.
        path: the JSON cache file.
        context: what the scores depend on (supernet weights hash, data settings); a file made with
            another context is refused.
    """

    def __init__(self, evaluator, path: str, context: Mapping[str, Any]):
        import json

        self.evaluator, self.path, self.context = evaluator, path, dict(context)
        self.cache: Dict[str, float] = {}
        self.hits = self.misses = 0
        if os.path.exists(path):
            with open(path) as f:
                data = json.load(f)
            if data.get("context") != self.context:
                raise SystemExit(f"{path} holds scores of another supernet or data ({data.get('context')}, now "
                                 f"{self.context}); delete it")
            self.cache = {k: float(v) for k, v in data["scores"].items()}

    def score(self, genotypes):
        from larq_mobisearch.fileio import atomic_write_json
        from larq_mobisearch.nn.space import encode

        keys = [encode(g) for g in genotypes]
        todo = [g for g, k in zip(genotypes, keys) if k not in self.cache]
        self.hits += len(genotypes) - len(todo)
        self.misses += len(todo)
        if todo:
            for g, s in zip(todo, self.evaluator.score(todo)):
                self.cache[encode(g)] = float(s)
            atomic_write_json(self.path, {"context": self.context, "scores": self.cache})
        return [self.cache[k] for k in keys]


def best_so_far(result) -> List[float]:
    """Best fitness after each evaluation of a `SearchResult` (in evaluation order)."""
    out, best = [], -math.inf
    for c in result.evaluated:
        best = max(best, c.fitness)
        out.append(best)
    return out


def best_after(curve: Sequence[float], n: int) -> float:
    """The best-so-far value after `n` evaluations of a `best_so_far` curve (its last value if it is shorter)."""
    return curve[min(n, len(curve)) - 1]


def binomial_se_points(p: float, n: int) -> float:
    """Binomial standard error, in percentage points, of a top-1 near `p` measured on `n` images."""
    return 100 * math.sqrt(p * (1 - p) / n)


def supernet_evaluator(run, cache_name: str = "fitness_cache.json", recalibration_batches: Optional[int] = None):
    """The search's evaluator on the run's supernet (held-out top-1 after BatchNorm recalibration, exactly
    as `pipeline.search` builds it, or with `recalibration_batches` instead of the search's), behind a
    `CachedEvaluator` stored in the run directory; also returns the uncached `SupernetEvaluator` (for
    `accuracy_of(genotype, recalibrate=False)`)."""
    from larq_mobisearch import pipeline as P
    from larq_mobisearch.pipeline.files import sha256_file
    from larq_mobisearch.training import SupernetEvaluator

    cfg, data = run.cfg, run.data
    batches = recalibration_batches or cfg.search.recalibration_batches
    local = SupernetEvaluator(P.load_supernet(run), data.recalibration_batches(batches), data.eval_batches("holdout"))
    context = {"supernet": sha256_file(run.path("supernet", "weights.h5"), 16), "data": cfg.data.model_dump(),
               "recalibration_batches": batches}
    return CachedEvaluator(local, run.path("benchmarks", cache_name), context), local


# --------------------------------------------------------------------------------------------------------
# Plots and text shared by the markdown generators


def figure(width: float, height: float, ncols: int = 1):
    """A matplotlib figure with `ncols` axes side by side (Agg canvas: no pyplot state, works headless)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    return fig, axes


def plot_seeds_and_mean(ax, points: Sequence[Mapping[str, Any]], summary: Optional[Mapping[str, Any]], color: str,
                        label: str) -> None:
    """Accuracy (%) against host latency (ms): one faint dot per seed, and the mean ± std with error bars.

    `points` hold ``latency_ms`` and ``test_accuracy`` per seed; `summary` holds their ``{"mean", "std"}``.
    """
    ax.scatter([p["latency_ms"] for p in points], [100 * p["test_accuracy"] for p in points],
               color=color, alpha=0.35, s=18)
    if summary and summary.get("test_accuracy") and summary.get("latency_ms"):
        lat, acc = summary["latency_ms"], summary["test_accuracy"]
        ax.errorbar([lat["mean"]], [100 * acc["mean"]], xerr=[lat["std"]], yerr=[100 * acc["std"]], fmt="o",
                    color=color, capsize=3, ms=7, label=label)


def save_png(fig, path: str) -> str:
    """Write `fig` to `path` atomically."""
    from larq_mobisearch.fileio import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", bbox_inches="tight"), suffix=".png")
    return path


def minutes(seconds: Optional[float]) -> str:
    return "-" if seconds is None else f"{seconds / 60:.1f} min"
