"""Search efficiency on one real supernet: best held-out fitness against the number of evaluations, for the
evolutionary search (elitist and per-generation parent selection) and random search, mean over search seeds.

All searches score genotypes with the same evaluator as `mobisearch search` (held-out top-1 of the trained
supernet after exact BatchNorm recalibration), under the preset's FLOPs budget, with the same number of
evaluations per method (population x iterations). The evaluator is a pure function of the genotype, so its
scores are cached in the run directory and shared by every search (a killed run resumes). Needs no
retraining. The supernet is the one of --run-dir (trained first if needed), shared with ranking.py and
ablation.py --shared-supernet.

    python benchmarks/efficiency.py --json benchmarks/results/efficiency.json                 # Fashion-MNIST
    python benchmarks/efficiency.py --quick --run-dir runs/benchmarks/quick --preset digits    # smoke run
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402

import common  # noqa: E402

METHODS = ("elitist", "generation", "random")
LABELS = {"elitist": "evolution, elitist top-K (SPOS/MetaPruning)",
          "generation": "evolution, top-K of each generation (paper)", "random": "random search"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default="runs/benchmarks/fashion", help="shared run directory (supernet)")
    p.add_argument("--preset", default="fashion")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of a new run directory")
    p.add_argument("--seeds", default="0,1,2,3,4")
    p.add_argument("--population", type=int, default=16)
    p.add_argument("--iterations", type=int, default=8)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--method-seeds", action="append", default=[], metavar="METHOD=SEEDS",
                   help="fewer seeds for one method, e.g. generation=0,1 (a subset of --seeds)")
    p.add_argument("--quick", action="store_true", help="2 seeds, population 6, 3 iterations")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.population, args.iterations, args.top_k = "0,1", 6, 3, 2
    args.seed_list = [int(s) for s in args.seeds.split(",")]
    args.method_list = [m for m in args.methods.split(",") if m]
    bad = [m for m in args.method_list if m not in METHODS]
    if bad:
        p.error(f"--methods: unknown {bad}; allowed: {list(METHODS)}")
    args.seeds_of = {m: list(args.seed_list) for m in args.method_list}
    for item in args.method_seeds:
        method, _, seeds = item.partition("=")
        if method not in args.seeds_of:
            p.error(f"--method-seeds: received {item!r}; the method must be one of {args.method_list}")
        try:
            chosen = [int(x) for x in seeds.split(",") if x.strip()]
        except ValueError:
            chosen = []
        if not chosen or not set(chosen) <= set(args.seed_list):
            p.error(f"--method-seeds: received {item!r}; the seeds must be a non-empty subset of --seeds "
                    f"{args.seed_list}")
        args.seeds_of[method] = chosen
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    from larq_mobisearch.search import constraints_from_config, evolutionary_search, random_search

    run = common.shared_run(args.run_dir, args.preset, args.overrides)
    supernet_info = common.ensure_supernet(run)
    evaluator, _ = common.supernet_evaluator(run)
    space = run.space
    base = run.search_config()
    constraints = constraints_from_config(space, base)
    n_evals = args.population * args.iterations
    cached_at_start = len(evaluator.cache)
    print(f"{run.cfg.data.name}: {run.cfg.model.module} width {run.cfg.model.width_multiplier}, FLOPs budget "
          f"{base.flops_budget:.4g}; population {args.population} x {args.iterations} iterations = {n_evals} "
          f"evaluations per search; seeds {args.seed_list}", flush=True)
    curves = {m: {} for m in args.method_list}
    finals = {m: {} for m in args.method_list}
    for seed in args.seed_list:
        for method in (m for m in args.method_list if seed in args.seeds_of[m]):
            cfg = base.model_copy(update=dict(
                seed=seed, population=args.population, iterations=args.iterations, top_k=args.top_k,
                crossover=args.population // 2, mutation=args.population // 2,
                selection=method if method != "random" else base.selection))
            t = time.time()
            if method == "random":
                result = random_search(space, evaluator, constraints, cfg, num_samples=n_evals, seed=seed,
                                       progress=False)
            else:
                result = evolutionary_search(space, evaluator, constraints, cfg, progress=False)
            curve = common.best_so_far(result)
            curves[method][seed] = curve
            finals[method][seed] = {"genotype": result.best and space.encode(result.best.genotype),
                                    "fitness": result.best_fitness, "evaluations": result.num_evaluations,
                                    "stopped_early": result.stopped_early}
            print(f"seed {seed} {method:<10} best {curve[-1]:.4f} after {len(curve)} evaluations "
                  f"({time.time() - t:.0f} s; cache {evaluator.hits} hits / {evaluator.misses} scored)", flush=True)

    summary = {}
    checkpoints = sorted({args.population, n_evals // 4, n_evals // 2, n_evals})
    print("\nBest held-out top-1 after N evaluations (mean ± std over seeds):")
    print(f"  {'method':<58}" + "".join(f"{'N=' + str(n):>18}" for n in checkpoints))
    for method in args.method_list:
        row = {}
        for n in checkpoints:
            vals = [common.best_after(c, n) for c in curves[method].values()]
            row[n] = common.mean_std(vals)
        summary[method] = {str(n): {"mean": m, "std": s} for n, (m, s) in row.items()}
        label = f"{LABELS[method]} ({len(curves[method])} seeds)"
        print(f"  {label:<58}" + "".join(f"{m * 100:11.2f} ± {s * 100:4.2f}" for m, s in row.values()))
    if args.json:
        atomic_write_json(args.json, {
            "benchmark": "efficiency", "command": common.command_line(), "machine": _machine(),
            "settings": {"run_dir": args.run_dir, "preset": args.preset, "dataset": run.cfg.data.name,
                         "module": run.cfg.model.module, "width_multiplier": run.cfg.model.width_multiplier,
                         "image_size": run.cfg.data.image_size, "flops_budget": base.flops_budget,
                         "population": args.population, "iterations": args.iterations, "top_k": args.top_k,
                         "seeds": args.seed_list, "method_seeds": args.seeds_of, "holdout_size": run.data.holdout_size,
                         "recalibration_batches": base.recalibration_batches,
                         "supernet_epochs": run.cfg.supernet.epochs},
            "supernet": supernet_info, "labels": LABELS,
            "curves": {m: {str(s): c for s, c in cs.items()} for m, cs in curves.items()},
            "finals": {m: {str(s): f for s, f in fs.items()} for m, fs in finals.items()},
            "summary": summary, "checkpoints": checkpoints,
            "distinct_genotypes_scored": len(evaluator.cache), "cached_at_start": cached_at_start,
            "scored_this_run": evaluator.misses, "seconds": round(time.time() - t0, 1),
        }, indent=1)
        print(f"Wrote {args.json}")
    return 0


def _machine():
    from larq_mobisearch import deploy as L

    return {**L.machine_info(1), "load_average_end": common.load_average()}


if __name__ == "__main__":
    sys.exit(main())
