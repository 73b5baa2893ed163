"""Ranking quality of the supernet: does its score order genotypes like training them stand-alone does?

On the supernet of --run-dir (Fashion-MNIST by default; trained first if needed, shared with efficiency.py
and ablation.py --shared-supernet):

1. sample genotypes spread over the FLOPs range of the search space (seeded: many random genotypes, sorted
   by FLOPs, one per FLOPs quantile);
2. score each on the supernet, with BatchNorm recalibration (the search's evaluator) and without (the
   supernet's own running statistics);
3. train each from scratch stand-alone with one short schedule shared by all (`pipeline.retrain`, named
   searches ``rank-NN`` of the run directory, so a killed run resumes) and take its test top-1 on the
   official test split;
4. report Kendall's tau and Spearman's rho between supernet scores and stand-alone accuracies (and, as a
   reference, between FLOPs and stand-alone accuracy).

    python benchmarks/ranking.py --json benchmarks/results/ranking.json
    python benchmarks/ranking.py --quick --run-dir runs/benchmarks/quick --preset digits   # smoke run
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.space import encode  # noqa: E402

import common  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default="runs/benchmarks/fashion", help="shared run directory (supernet)")
    p.add_argument("--preset", default="fashion")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config overrides of a new run directory")
    p.add_argument("--genotypes", type=int, default=14, help="how many genotypes (>= 12 for the issue)")
    p.add_argument("--epochs", type=int, default=3, help="stand-alone training epochs (one schedule for all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="5 genotypes, 1 epoch")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.quick:
        args.genotypes, args.epochs = 5, 1
    return args


def spread_genotypes(space, flops_model, n: int, seed: int, pool: int = 4000):
    """`n` distinct genotypes spread over the FLOPs range: `pool` seeded random ones sorted by FLOPs, one
    per quantile (the cheapest and the most expensive included)."""
    rng = random.Random(seed)
    return one_per_quantile({space.sample(rng) for _ in range(pool)}, flops_model.cost, n)


def one_per_quantile(genotypes, cost, n: int):
    """`n` of `genotypes` sorted by `cost`, one per quantile (the cheapest and the dearest included); all of them
    when there are no more than `n`."""
    ranked = sorted(genotypes, key=lambda g: (cost(g), g))
    if len(ranked) <= n:
        return ranked
    return [ranked[round(i * (len(ranked) - 1) / (n - 1))] for i in range(n)]


def retrain_stand_alone(run, name: str, genotype, *, epochs: int, seed: int) -> dict:
    """`genotype` trained from scratch (`epochs` epochs, retraining seed `seed`) in search `name` of `run`
    (resumes; a finished one is read back); its ``final/done.json``. Refused if that search holds another
    genotype."""
    import tensorflow as tf

    from larq_mobisearch import pipeline as P

    text = run.space.encode(genotype)
    cfg = run.cfg.model_copy(update={"retrain": run.cfg.retrain.model_copy(update={"epochs": epochs, "seed": seed})})
    r = P.Run.open(run.run_dir, cfg, verbose=0, search=name)
    if not r.done("retrain"):
        t = time.time()
        P.retrain(r, genotype)
        tf.keras.backend.clear_session()
        print(f"  {name} {text} trained in {time.time() - t:.0f} s", flush=True)
    with open(r.search_path("final", "done.json")) as f:
        done = json.load(f)
    if done["genotype"] != text:
        raise SystemExit(f"{r.search_path('final')} holds {done['genotype']}, not {text}: another genotype draw "
                         f"(--seed, --genotypes or the preset changed); use another run directory")
    return done


def correlations(x, y):
    from scipy.stats import kendalltau, spearmanr

    tau, p_tau = kendalltau(x, y)
    rho, p_rho = spearmanr(x, y)
    return {"kendall_tau": float(tau), "kendall_p": float(p_tau), "spearman_rho": float(rho),
            "spearman_p": float(p_rho)}


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    run = common.shared_run(args.run_dir, args.preset, args.overrides)
    supernet_info = common.ensure_supernet(run)
    evaluator, local = common.supernet_evaluator(run)
    flops = run.flops_model()
    genotypes = spread_genotypes(run.space, flops, args.genotypes, args.seed)
    print(f"{len(genotypes)} genotypes from {flops.cost(genotypes[0]):.4g} to {flops.cost(genotypes[-1]):.4g} "
          f"FLOPs; stand-alone training {args.epochs} epochs each", flush=True)
    recal = evaluator.score(genotypes)
    no_recal = []
    for g in genotypes:
        local.restore()  # the supernet's own running BatchNorm statistics
        no_recal.append(local.accuracy_of(g, recalibrate=False))
    local.restore()
    rows = []
    for i, (g, s_rec, s_raw) in enumerate(zip(genotypes, recal, no_recal)):
        name = f"rank-{i:02d}"
        done = retrain_stand_alone(run, name, g, epochs=args.epochs, seed=args.seed)
        rows.append({"name": name, "genotype": encode(g), "flops": flops.cost(g), "supernet_recalibrated": s_rec,
                     "supernet_no_recalibration": s_raw, "standalone_test_accuracy": done["test_accuracy"],
                     "standalone_seconds": done.get("seconds")})
        print(f"  {name} {encode(g):<30} FLOPs {flops.cost(g):9.4g} supernet {s_rec:.4f} (no recal {s_raw:.4f}) "
              f"stand-alone {done['test_accuracy']:.4f}", flush=True)
    acc = [r["standalone_test_accuracy"] for r in rows]
    stats = {
        "recalibrated": correlations([r["supernet_recalibrated"] for r in rows], acc),
        "no_recalibration": correlations([r["supernet_no_recalibration"] for r in rows], acc),
        "flops": correlations([r["flops"] for r in rows], acc),
    }
    print(f"\nRank correlation with stand-alone test top-1 ({len(rows)} genotypes, {args.epochs} epochs each):")
    for key, label in (("recalibrated", "supernet, BN recalibrated (the search's score)"),
                       ("no_recalibration", "supernet, no BN recalibration"), ("flops", "FLOPs alone")):
        c = stats[key]
        print(f"  {label:<48} Kendall tau {c['kendall_tau']:+.3f} (p {c['kendall_p']:.3g})  "
              f"Spearman rho {c['spearman_rho']:+.3f} (p {c['spearman_p']:.3g})")
    if args.json:
        from larq_mobisearch import deploy as L

        atomic_write_json(args.json, {
            "benchmark": "ranking", "command": common.command_line(),
            "machine": {**L.machine_info(1), "load_average_end": common.load_average()},
            "settings": {"run_dir": args.run_dir, "preset": args.preset, "dataset": run.cfg.data.name,
                         "module": run.cfg.model.module, "width_multiplier": run.cfg.model.width_multiplier,
                         "image_size": run.cfg.data.image_size, "genotypes": len(rows), "epochs": args.epochs,
                         "seed": args.seed, "learning_rate": run.cfg.retrain.learning_rate,
                         "schedule": run.cfg.retrain.schedule, "holdout_size": run.data.holdout_size,
                         "test_size": run.data.test_size, "supernet_epochs": run.cfg.supernet.epochs},
            "supernet": supernet_info, "rows": rows, "correlations": stats, "seconds": round(time.time() - t0, 1),
        }, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
