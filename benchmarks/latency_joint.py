"""The host latency table of a joint width x groups space, and how well it predicts whole networks.

A space with width genes needs a ``block_convs`` table (`larq_mobisearch.deploy.latency_table.block_table_keys`):
every conv of every block at every (input width, output width) pair and every group count legal there, each
converted alone; ``fixed_ms`` is the median residual of 12 random joint genotypes (`host_table.width_references`).
This script builds that table for the space of ``--run-dir`` (default ``runs/fashion_joint``: M1 at 28x28x1, 10
classes, width 0.5, widths 0.5x-1.5x) and, in the same round-robin loop (1 thread, LCE's interpreter, indirect
BGEMM), times ``--checks`` further random joint genotypes that calibrated nothing: predicted (the table) against
measured, the error's mean, max and sign balance, and the Spearman rank correlation of the table's and of the
FLOPs' order with the measured one.

    .venv/bin/python benchmarks/latency_joint.py --convert-only      # LCE conversion only: no idle machine needed
    .venv/bin/python benchmarks/latency_joint.py --json benchmarks/results/latency_joint_28.json \\
        --table benchmarks/results/latency_table_joint_28.json       # the timing: run it on an idle machine

Converted models are cached in ``<run-dir>/latency_cache`` (the CLI's `mobisearch latency-table` uses the same
place), so the timing run converts nothing that ``--convert-only`` converted. The table it writes is what
``search.latency_table`` takes (`benchmarks/pareto.py --latency-table`).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import latency_md  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run-dir", default="runs/fashion_joint", help="a run directory of a space with width genes")
    p.add_argument("--preset", default="fashion_joint", help="preset of a new run directory")
    p.add_argument("--checks", type=int, default=24, help="random joint genotypes checked against the table")
    p.add_argument("--check-seed", type=int, default=1, help="seed of the checked genotypes")
    p.add_argument("--runs", type=int, default=1000, help="round-robin timing rounds")
    p.add_argument("--warmup", type=int, default=20, help="untimed runs of every model first")
    p.add_argument("--table", default=None, help="write the table here (default <run-dir>/latency_table.json)")
    p.add_argument("--json", default=None, help="write the check here (intended: "
                                                "benchmarks/results/latency_joint_28.json)")
    p.add_argument("--convert-only", action="store_true", help="convert every model into the cache, time nothing")
    args = p.parse_args(argv)
    if args.checks < 1 or args.runs < 1 or args.warmup < 0:
        p.error("--checks and --runs must be >= 1, --warmup >= 0")
    return args


def spearman(xs, ys) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(xs, ys).statistic)


def main(argv=None) -> int:
    args = parse_args(argv)
    t0 = time.time()
    from larq_mobisearch import deploy as L
    from larq_mobisearch.search.costs import WidthLatencyCostModel

    run = common.shared_run(args.run_dir, args.preset)
    space = run.space
    if not space.has_widths:
        raise SystemExit(f"{args.run_dir}: model.space_genes={run.cfg.model.space_genes!r} has no width genes; "
                         "benchmarks/latency.py covers groups-only spaces")
    machine = L.machine_info(1)
    common.print_machine(machine)
    refs = L.width_references(space)
    rng = random.Random(args.check_seed)  # `n` random genotypes of the space that calibrated nothing
    checks = L.distinct_draws(lambda: space.sample(rng), args.checks, refs.genotypes)
    cache = L.FlatbufferCache(run.path("latency_cache"))
    if args.convert_only:
        fbs = L.convert_host_models(space.arch, None, refs.genotypes + checks, cache, space=space)
        print(f"Converted {cache.converted} models ({len(fbs)} in the cache for this table) in "
              f"{time.time() - t0:.0f} s")
        return 0
    print(f"Load average before timing: {common.load_average()}")
    result = L.measure_host_table(space.arch, space=space, extra_genotypes=checks, cache=cache, threads=1,
                                  warmup=args.warmup, runs=args.runs)
    table_path = args.table or run.path("latency_table.json")
    L.save_latency_table(result.table, table_path)
    model = WidthLatencyCostModel(result.table, space)
    rows = []
    for g in checks:
        measured = result.networks[g].mean_ms
        predicted = model.cost(g)
        rows.append({"genotype": space.encode(g), "measured_ms": measured, "predicted_ms": predicted,
                     "error_pct": 100.0 * (predicted - measured) / measured,
                     "flops": run.genotype_costs(g).flops})
    errors = latency_md.error_summary([r["error_pct"] for r in rows])
    out = {
        "benchmark": "latency_joint", "command": common.command_line(), "machine": machine,
        "settings": {"run_dir": args.run_dir, "checks": len(checks), "check_seed": args.check_seed, "runs": args.runs,
                     "warmup": args.warmup, "threads": 1, "statistic": result.table.machine.get("statistic")},
        "space": {"module": space.arch.module, "input_shape": list(space.arch.input_shape),
                  "num_classes": space.arch.num_classes, "width_multiplier": space.arch.width_multiplier,
                  "genes": space.genes, "width_choices": list(space.width_choices), "size": space.size},
        "table": {"path": table_path, "entries": len(result.table.entries), "fixed_ms": result.table.fixed_ms,
                  "calibrating": len(refs.calibrating)},
        "rows": rows, "errors": errors,
        "spearman_table": spearman([r["predicted_ms"] for r in rows], [r["measured_ms"] for r in rows]),
        "spearman_flops": spearman([r["flops"] for r in rows], [r["measured_ms"] for r in rows]),
        "load_average": common.load_average(), "seconds": round(time.time() - t0, 1),
    }
    print(f"\n{len(result.table.entries)} entries, fixed_ms {result.table.fixed_ms:.4f}; {len(rows)} checks: mean "
          f"|error| {errors['mae']:.2f}%, max {errors['max']:.2f}%, {errors['above']} above / {errors['below']} "
          f"below, signed {errors['signed']:+.2f}%; Spearman table {out['spearman_table']:.3f}, FLOPs "
          f"{out['spearman_flops']:.3f}")
    if args.json:
        atomic_write_json(args.json, out, indent=1)
        print(f"Wrote {args.json} and {table_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
