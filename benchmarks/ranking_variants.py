"""Does the supernet rank the genotypes a search compares, and which way of training it ranks best?

Issue 22's ranking proof on the joint (width x groups) space of `fashion_joint` (Fashion-MNIST, the official
test split):

1. draw genotypes *within the search's FLOPs budget*, spread over its FLOPs range (seeded: a pool of random
   feasible genotypes, one per FLOPs quantile) -- the genotypes a search under that budget compares;
2. train each from scratch stand-alone with one short schedule (`pipeline.retrain`, searches ``rank-NN`` of
   ``OUT_DIR/standalone``) and take its test top-1: the truth the supernet should rank by, and the spread of
   what a search can gain at all;
3. for every supernet-training variant (one supernet each, ``OUT_DIR/<variant>``, or an existing run
   directory with ``--variant-dir``): train it (resumes), score every genotype after BatchNorm recalibration
   (the search's fitness, cached per supernet) and report Kendall's tau and Spearman's rho with the stand-alone
   accuracies, with bootstrap 95% intervals (genotypes resampled with replacement);
4. the noise ceiling: every genotype trained stand-alone a second time with another seed (``--repeat-seed``,
   searches ``rank-NN-s<seed>``). Kendall's tau between the two seeds says how reproducible the one-seed ranking
   the supernets are scored against is; each variant is also correlated with the two seeds' mean, a less noisy
   truth.

Every stage resumes: a killed run redoes at most one epoch. The JSON is the ledger across machines: it is
rewritten after every stand-alone genotype and every variant (``"complete": false`` until all are in), and a
run on a fresh checkout (no run directories) takes every genotype and variant it already holds from it, provided
it was written with the same settings (refused otherwise). Commit it as it grows.

    python benchmarks/ranking_variants.py --variant-dir budget=runs/fashion_joint \\
        --json benchmarks/results/ranking_variants.json
    python benchmarks/ranking_variants.py --quick --preset digits --out-dir runs/benchmarks/rv-quick  # smoke run
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402

import common  # noqa: E402
from ranking import correlations, one_per_quantile, retrain_stand_alone  # noqa: E402

#: Supernet-training variants (issue 22): name -> (label, `supernet.*` overrides over the preset).
VARIANTS: Dict[str, tuple] = {
    "uniform": ("uniform sampling over the whole space (every preset before issue 22)",
                ["supernet.sampling=uniform"]),
    "budget": ("+ sampling within the FLOPs budget (the default)", ["supernet.sampling=budget"]),
    "sandwich": ("+ sandwich rule and in-place distillation",
                 ["supernet.sampling=budget", "supernet.sandwich=true", "supernet.inplace_distillation=true"]),
    "masked": ("+ masked optimizer updates", ["supernet.sampling=budget", "supernet.masked_updates=true"]),
    "all": ("all together (budget, sandwich, distillation, masked updates)",
            ["supernet.sampling=budget", "supernet.sandwich=true", "supernet.inplace_distillation=true",
             "supernet.masked_updates=true"]),
}
DEFAULT_VARIANTS = "budget,uniform,masked,sandwich,all"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="fashion_joint")
    p.add_argument("--out-dir", default="runs/benchmarks/ranking_variants",
                   help="run directories: standalone/ and one per variant")
    p.add_argument("--variants", default=DEFAULT_VARIANTS, help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--variant-dir", action="append", default=[], metavar="VARIANT=RUN_DIR",
                   help="use an existing run directory's supernet for a variant (its settings are checked)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of every new run directory (all variants and the stand-alone runs)")
    p.add_argument("--genotypes", type=int, default=16, help="how many genotypes (>= 16 for the issue)")
    p.add_argument("--epochs", type=int, default=3, help="stand-alone training epochs (one schedule for all)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples of the genotypes")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeat-seed", type=int, default=1,
                   help="retrain every genotype with this seed too (the noise ceiling); negative: no repeat")
    p.add_argument("--quick", action="store_true", help="5 genotypes, 1 epoch, 1 supernet epoch")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.genotypes, args.epochs, args.repeat_seed = 5, 1, -1
        args.overrides = ["supernet.epochs=1", *args.overrides]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        p.error(f"--variants: received {args.variants!r}; allowed: comma-separated names of {', '.join(VARIANTS)}")
    args.variants = names
    dirs = {}
    for item in args.variant_dir:
        name, _, path = item.partition("=")
        if name not in VARIANTS or not path:
            p.error(f"--variant-dir: received {item!r}; expected VARIANT=RUN_DIR with VARIANT one of {', '.join(VARIANTS)}")
        dirs[name] = path
    args.variant_dirs = dirs
    if args.repeat_seed == args.seed:
        p.error(f"--repeat-seed must differ from --seed ({args.seed})")
    if args.genotypes < 3 or args.epochs < 1 or args.bootstrap < 1:
        p.error(f"--genotypes >= 3, --epochs >= 1 and --bootstrap >= 1; received {args.genotypes}, {args.epochs}, "
                f"{args.bootstrap}")
    return args


def feasible_spread(space, flops_model, budget: float, n: int, seed: int, pool: int = 2000) -> List[tuple]:
    """`n` distinct genotypes within `budget` FLOPs, spread over the feasible FLOPs range: `pool` seeded random
    feasible genotypes sorted by FLOPs, one per quantile (the cheapest and the most expensive included)."""
    rng = random.Random(seed)
    cost = flops_model.cost
    return one_per_quantile({space.sample_under(rng, cost, budget) for _ in range(pool)}, cost, n)


def bootstrap_intervals(x: Sequence[float], y: Sequence[float], resamples: int, seed: int) -> Dict[str, List[float]]:
    """95% percentile intervals of Kendall's tau and Spearman's rho over genotypes resampled with replacement
    (resamples with a constant side, where a rank correlation is undefined, are dropped)."""
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    taus, rhos = [], []
    for _ in range(resamples):
        i = rng.integers(0, len(x), len(x))
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            continue
        taus.append(kendalltau(x[i], y[i])[0])
        rhos.append(spearmanr(x[i], y[i])[0])
    q = lambda v: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]  # noqa: E731
    return {"kendall_tau_ci95": q(taus), "spearman_rho_ci95": q(rhos), "resamples": len(taus)}


def open_variant(args, name: str):
    """The variant's run directory (new: the preset + the variant's overrides + --set), its settings checked."""
    overrides = [*VARIANTS[name][1], *args.overrides]
    run_dir = args.variant_dirs.get(name) or str(Path(args.out_dir) / name)
    run = common.shared_run(run_dir, args.preset, overrides if name not in args.variant_dirs else ())
    check_variant(run.cfg, name, run_dir)
    return run


def check_variant(cfg, name: str, run_dir: str) -> None:
    """Refuse (SystemExit) the config `cfg` of `run_dir` as variant `name` if a setting of the variant differs."""
    want = dict(o.split("=", 1) for o in VARIANTS[name][1])
    have = cfg.supernet.model_dump()
    wrong = {k: have[k.split(".", 1)[1]] for k, v in want.items()
             if str(have[k.split(".", 1)[1]]).lower() != v.lower()}
    if wrong:
        raise SystemExit(f"{run_dir} is not variant {name!r}: it has {wrong}, the variant needs {want}")


def train_standalone(args, base, genotypes, flops, known: Dict[str, Dict[str, Any]],
                     on_row: Callable[[List[Dict[str, Any]]], None]) -> List[Dict[str, Any]]:
    """Each genotype trained from scratch (searches ``rank-NN`` of `base`, OUT_DIR/standalone) unless `known`
    (the ledger's rows, by name) holds it; its test top-1. `on_row(rows)` after every new row."""
    rows = []
    for i, g in enumerate(genotypes):
        name = f"rank-{i:02d}"
        text = base.space.encode(g)
        if name in known:
            if known[name]["genotype"] != text:
                raise SystemExit(f"the ledger's {name} is {known[name]['genotype']}, not {text}: another genotype "
                                 f"draw; use another --json")
            rows.append(known[name])
            continue
        done = retrain_stand_alone(base, name, g, epochs=args.epochs, seed=args.seed)
        rows.append({"name": name, "genotype": text, "flops": flops.cost(g),
                     "standalone_test_accuracy": done["test_accuracy"], "standalone_seconds": done.get("seconds")})
        print(f"  {name} {text:<60} FLOPs {flops.cost(g):9.4g} stand-alone {done['test_accuracy']:.4f}", flush=True)
        on_row(rows)
    return rows


def train_repeats(args, base, genotypes, rows: List[Dict[str, Any]],
                  on_row: Callable[[List[Dict[str, Any]]], None]) -> None:
    """Every row's genotype trained again with ``--repeat-seed`` (search ``rank-NN-s<seed>``) unless the row
    holds that repeat: its ``repeat_test_accuracy``. `on_row(rows)` after every new repeat."""
    for row, g in zip(rows, genotypes):
        if row.get("repeat_seed") == args.repeat_seed:
            continue
        done = retrain_stand_alone(base, f"{row['name']}-s{args.repeat_seed}", g, epochs=args.epochs,
                                   seed=args.repeat_seed)
        row.update(repeat_seed=args.repeat_seed, repeat_test_accuracy=done["test_accuracy"])
        print(f"  {row['name']} seed {args.repeat_seed}: {done['test_accuracy']:.4f} (seed {args.seed}: "
              f"{row['standalone_test_accuracy']:.4f})", flush=True)
        on_row(rows)


def noise_ceiling(rows: List[Dict[str, Any]], variants: List[Dict[str, Any]], resamples: int,
                  seed: int) -> Optional[Dict[str, Any]]:
    """With every row repeated: the two seeds' stand-alone accuracies correlated with each other (how
    reproducible the one-seed ranking is), and each variant's scores against the two seeds' mean."""
    if not rows or any("repeat_test_accuracy" not in r for r in rows):
        return None
    a = [r["standalone_test_accuracy"] for r in rows]
    b = [r["repeat_test_accuracy"] for r in rows]
    mean = [(x + y) / 2 for x, y in zip(a, b)]
    diffs = [100 * abs(x - y) for x, y in zip(a, b)]
    return {"repeat_seed": rows[0].get("repeat_seed"),
            "between_seeds": {**correlations(a, b), **bootstrap_intervals(a, b, resamples, seed)},
            "mean_abs_seed_difference_points": sum(diffs) / len(diffs),
            "two_seed_mean_spread_points": 100 * (max(mean) - min(mean)),
            "variants_vs_two_seed_mean": {v["name"]: {**correlations(v["scores"], mean),
                                                      **bootstrap_intervals(v["scores"], mean, resamples, seed)}
                                          for v in variants}}


def score_variant(args, name: str, genotypes, acc: Sequence[float]) -> Dict[str, Any]:
    import tensorflow as tf

    run = open_variant(args, name)
    info = common.ensure_supernet(run)
    evaluator, local = common.supernet_evaluator(run)
    scores = evaluator.score(genotypes)
    local.restore()
    tf.keras.backend.clear_session()
    stats = {**correlations(scores, acc), **bootstrap_intervals(scores, acc, args.bootstrap, args.seed)}
    print(f"[{name}] Kendall tau {stats['kendall_tau']:+.3f} {stats['kendall_tau_ci95']}, Spearman rho "
          f"{stats['spearman_rho']:+.3f} {stats['spearman_rho_ci95']}", flush=True)
    return {"name": name, "label": VARIANTS[name][0], "overrides": VARIANTS[name][1], "run_dir": str(run.run_dir),
            "supernet": {k: info.get(k) for k in ("epochs", "seconds", "holdout_accuracy") if k in info},
            "supernet_settings": {k: v for k, v in run.cfg.supernet.model_dump().items()
                                  if k in ("epochs", "sampling", "sandwich", "sandwich_random",
                                           "inplace_distillation", "masked_updates", "learning_rate", "optimizer")},
            "scores": scores, "correlations": stats}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    from larq_mobisearch import deploy as L

    base = common.shared_run(str(Path(args.out_dir) / "standalone"), args.preset, args.overrides)
    flops, budget = base.flops_model(), base.flops_budget()
    if budget is None:
        raise SystemExit(f"preset {args.preset!r} has no FLOPs budget: nothing to rank within")
    genotypes = feasible_spread(base.space, flops, budget, args.genotypes, args.seed)
    print(f"{len(genotypes)} genotypes within {budget:.4g} FLOPs, from {flops.cost(genotypes[0]):.4g} to "
          f"{flops.cost(genotypes[-1]):.4g}; stand-alone training {args.epochs} epochs each", flush=True)
    settings = {"preset": args.preset, "dataset": base.cfg.data.name,
                "module": base.cfg.model.module, "width_multiplier": base.cfg.model.width_multiplier,
                "space_genes": base.cfg.model.space_genes, "image_size": base.cfg.data.image_size,
                "flops_budget": budget, "genotypes": len(genotypes), "epochs": args.epochs, "seed": args.seed,
                "learning_rate": base.cfg.retrain.learning_rate, "schedule": base.cfg.retrain.schedule,
                "holdout_size": base.data.holdout_size, "test_size": base.data.test_size,
                "bootstrap": args.bootstrap, "overrides": args.overrides}
    ledger = common.read_ledger(args.json, settings)
    known_variants = {v["name"]: v for v in ledger.get("variants", []) if v["overrides"] == VARIANTS[v["name"]][1]}
    # (the repeat seed adds work without changing the rest: kept beside the settings the ledger must match)
    out: Dict[str, Any] = {"benchmark": "ranking_variants", "command": common.command_line(), "complete": False,
                           "settings": settings, "repeat_seed": args.repeat_seed if args.repeat_seed >= 0 else None,
                           "rows": [], "standalone_spread": None, "variants": []}

    def save(rows: List[Dict[str, Any]]) -> None:
        acc = [r["standalone_test_accuracy"] for r in rows]
        mean, std = common.mean_std(acc)
        out["rows"] = rows
        out["standalone_spread"] = {
            "min": min(acc), "max": max(acc), "mean": mean, "std": std,
            "test_se_points": common.binomial_se_points(mean, base.data.test_size),
            "flops": correlations([r["flops"] for r in rows], acc) if len(rows) > 2 else None}
        out["noise_ceiling"] = noise_ceiling(rows, out["variants"], args.bootstrap, args.seed) \
            if args.repeat_seed >= 0 else None
        out["complete"] = len(rows) == len(genotypes) and len(out["variants"]) == len(args.variants) and \
            (args.repeat_seed < 0 or out["noise_ceiling"] is not None)
        out["session_seconds"] = round(time.time() - t0, 1)  # this invocation; per-row and per-supernet times are in the rows
        out["machine"] = {**L.machine_info(1), "load_average_end": common.load_average()}
        if args.json:
            atomic_write_json(args.json, out, indent=1)
            print(f"Wrote {args.json} ({len(rows)} of {len(genotypes)} genotypes, {len(out['variants'])} of "
                  f"{len(args.variants)} variants)", flush=True)

    rows = train_standalone(args, base, genotypes, flops, {r["name"]: r for r in ledger.get("rows", [])}, save)
    acc = [r["standalone_test_accuracy"] for r in rows]
    for name in args.variants:
        variant = known_variants.get(name)
        if variant is None:
            variant = score_variant(args, name, genotypes, acc)
        out["variants"].append(variant)
        save(rows)
    if args.repeat_seed >= 0:
        train_repeats(args, base, genotypes, rows, save)
        save(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
