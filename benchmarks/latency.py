"""Latency benchmark: does the per-layer lookup table predict end-to-end LCE latency, and how fast are grouped models?

For each module asked for, on this host with Larq Compute Engine's interpreter (indirect BGEMM kernel):

1. converts every distinct searchable-layer configuration (the host latency table's entries), the two
   reference networks that calibrate ``fixed_ms``, the uniform-group networks (1, 2, 4, ... clamped per
   layer) and N random genotypes of the LCE search space (converted models are cached on disk);
2. times all of them together, round-robin (`larq_mobisearch.deploy.timing.measure_latencies`), so that the
   predictions and the end-to-end measurements they are checked against see the same host conditions;
3. prints measured vs predicted latency (table = fixed_ms + per-layer entries) with the mean absolute
   percentage error (target <= 10%), and the measured latency of the uniform-group models vs the random
   genotypes with FLOPs (BOPs/64 + float FLOPs) and the speed-up over groups = 1.

Host numbers are x86 runs of LCE's portable kernels, not its ARM kernels: use them for ranking and ratios,
never as device latencies. Device tables come from `lce_benchmark_model` (see export/README.md).

    python benchmarks/latency.py --quick                         # M3 at 32x32, 10 classes
    python benchmarks/latency.py --module m3 --input-size 224     # M3 at 224x224, 1000 classes
    python benchmarks/latency.py --module m1,m2,m3 --genotypes 3  # uniform vs random, all modules

Takes minutes: every network is converted with LCE (30-70 s each on a 2-vCPU host; ~15 min for --quick the
first time). Converted models are cached under --tables-dir/flatbuffers, so re-runs only time.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch import deploy as L  # noqa: E402
from larq_mobisearch.choices import STATISTICS  # noqa: E402
from larq_mobisearch.deploy.timing import DEFAULT_STATISTIC  # noqa: E402
from larq_mobisearch.fileio import atomic_write_text  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace, encode  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)

import tensorflow as tf  # noqa: E402  (after larq_mobisearch: Keras 2)

tf.get_logger().setLevel("ERROR")  # the converter's "compiled metrics" warnings, once per model

UNIFORM = (1, 2, 4, 8, 16, 32)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--module", default="m3", help="m1, m2, m3 or a comma-separated list")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--channels", type=int, default=3, help="input channels (1 for Fashion-MNIST's 28x28x1)")
    p.add_argument("--stem", default="mobilenet", choices=["mobilenet", "quicknet"], help="the float stem")
    p.add_argument("--num-classes", type=int, default=None, help="default: 1000 (10 with --quick)")
    p.add_argument("--width-multiplier", type=float, default=1.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--genotypes", type=int, default=10, help="random genotypes measured end to end per module")
    p.add_argument("--uniform", default=",".join(map(str, UNIFORM)), help="uniform group counts to measure")
    p.add_argument("--runs", type=int, default=None,
                   help="round-robin rounds: timed runs of every model (default 100; 40 at >= 160 px)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--statistic", default=DEFAULT_STATISTIC, choices=STATISTICS)
    p.add_argument("--mode", default="lce", choices=["lce", "paper"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="small run: 32x32 inputs, 10 classes")
    p.add_argument("--tables-dir", default="runs/latency",
                   help="where tables and converted models (flatbuffers/, a cache) are written")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    p.add_argument("--convert-only", action="store_true",
                   help="only convert every model into the cache (--tables-dir/flatbuffers) and exit: conversion "
                        "needs no idle machine, the timing run after it does")
    args = p.parse_args(argv)
    if args.quick:
        args.input_size = 32
    if args.num_classes is None:
        args.num_classes = 10 if args.quick else 1000
    if args.runs is None:
        args.runs = 40 if args.input_size >= 160 else 100
    if args.warmup is None:
        args.warmup = 3 if args.input_size >= 160 else 10
    return args


def fmt_flops(x: float) -> str:
    return f"{x / 1e6:,.1f}M"


def print_machine(threads: int) -> None:
    m = L.machine_info(threads)
    print("Machine (host, x86 LCE kernels; NOT a device measurement):")
    for k in ("cpu", "cpu_count", "platform", "python", "tensorflow_version", "larq_version", "lce_version", "threads"):
        print(f"  {k:<20} {m[k]}")
    try:
        print(f"  {'load average':<20} {os.getloadavg()}")
    except OSError:  # pragma: no cover
        pass
    print()


def choose_genotypes(space, n_random: int, uniform_groups, rng: random.Random, exclude=()):
    """Uniform genotypes, and `n_random` distinct random ones that are none of them nor in `exclude` (the
    genotypes that calibrate the table: the check must be on others)."""
    named = []
    for g in uniform_groups:
        u = space.uniform(g)
        if u not in [x for _, x in named]:
            named.append((f"uniform {g}", u))
    seen = {x for _, x in named} | {tuple(x) for x in exclude}
    randoms = []
    while len(randoms) < n_random:
        g = space.sample(rng)
        if g not in seen:
            seen.add(g)
            randoms.append((f"random {len(randoms) + 1}", g))
    return named, randoms


def stat_of(stats: dict, stat: str) -> float:
    return stats[{"median": "median_ms", "mean": "mean_ms", "min": "min_ms", "p10": "p10_ms"}[stat]]


def mape(rows, key="error_pct", only=None):
    vals = [abs(r[key]) for r in rows if only is None or r["label"].startswith(only)]
    return sum(vals) / max(len(vals), 1), max(vals) if vals else float("nan")


def run_module(module: str, args, rng: random.Random) -> dict:
    arch = architecture(module, (args.input_size, args.input_size, args.channels), args.num_classes,
                        args.width_multiplier, args.stem)
    space = SearchSpace(arch, args.mode)
    tables_dir = Path(args.tables_dir)
    tables_dir.mkdir(parents=True, exist_ok=True)
    tag = (f"{module}_{args.input_size}x{args.channels}_c{args.num_classes}_w{args.width_multiplier:g}"
           f"{'' if args.stem == 'mobilenet' else '_' + args.stem}_t{args.threads}")
    table_path = tables_dir / f"host_{tag}.json"
    print(f"=== {module.upper()} at {args.input_size}x{args.input_size}, {args.num_classes} classes, "
          f"width {args.width_multiplier:g}, {args.threads} thread(s), {args.mode} space ({space.size:.3g} genotypes)")

    refs = L.host_references(arch, space.candidates)  # the table's own reference networks
    named, randoms = choose_genotypes(space, args.genotypes, [int(x) for x in args.uniform.split(",") if x.strip()], rng,
                                      exclude=refs.calibrating)
    t0 = time.time()
    cache = L.FlatbufferCache(tables_dir / "flatbuffers")
    if args.convert_only:
        L.convert_host_models(arch, space.candidates, refs.genotypes + [g for _, g in named + randoms], cache,
                              threads=args.threads)
        print(f"Converted into {tables_dir / 'flatbuffers'}: {cache.converted} new, the rest were cached "
              f"({time.time() - t0:.0f} s)")
        return {"module": module, "converted": cache.converted}
    result = L.measure_host_table(
        arch,
        allowed=space.candidates,
        threads=args.threads,
        warmup=args.warmup,
        runs=args.runs,
        statistic=args.statistic,
        extra_genotypes=[g for _, g in named + randoms],
        cache=cache,
    )
    table = result.table
    L.save_latency_table(table, table_path)
    print(f"Table {table_path}: {len(table.entries)} layer entries, fixed_ms = {table.fixed_ms:.3f} "
          f"({len(named) + len(randoms)} networks + {len(table.entries)} layer models; {cache.converted} "
          f"converted, the rest from the cache; {time.time() - t0:.0f} s)")
    for ref in table.calibration["references"]:
        print(f"  {'calibrates' if ref['calibrates'] else 'uniform   '} {encode(ref['genotype'])}: measured "
              f"{ref['measured_ms']:.3f} ms, sum of entries {ref['sum_entries_ms']:.3f} ms, residual "
              f"{ref['residual_ms']:.3f} ms")
    # the calibration before random genotypes (median residual of the uniform ones), checked in the same loop
    uniform_fixed = statistics.median(r["residual_ms"] for r in table.calibration["references"] if not r["calibrates"])
    model = L.LatencyCostModel(table, arch, space.candidates, threads=args.threads)

    rows = []
    for label, g in named + randoms:
        stats = result.networks[g]
        measured = stats.statistic(args.statistic)
        pred = model.cost(g)
        rows.append({
            "label": label, "genotype": encode(g), "genes": list(g), "flops": count_costs(arch, g).flops,
            "measured_ms": measured, "p10_ms": stats.p10_ms, "p90_ms": stats.p90_ms, "predicted_ms": pred,
            "sum_entries_ms": pred - table.fixed_ms, "residual_ms": measured - (pred - table.fixed_ms),
            "error_pct": 100.0 * (pred - measured) / measured, "stats": stats.as_dict(),
            "uniform_calibration_error_pct": 100.0 * (pred - table.fixed_ms + uniform_fixed - measured) / measured,
        })

    print(f"\nPredicted vs measured ({args.statistic} of {args.runs} round-robin rounds, ms):")
    print(f"  {'model':<11} {'genotype':<36} {'measured':>9} {'p10-p90':>15} {'predicted':>9} {'error':>7}")
    for r in rows:
        print(f"  {r['label']:<11} {r['genotype']:<36} {r['measured_ms']:9.3f} "
              f"{r['p10_ms']:7.3f}-{r['p90_ms']:<7.3f} {r['predicted_ms']:9.3f} {r['error_pct']:+6.1f}%")
    all_m, all_max = mape(rows)
    rnd_m, rnd_max = mape(rows, only="random")
    print(f"  mean |error|: {rnd_m:.2f}% over the {len(randoms)} random genotypes (max {rnd_max:.2f}%), "
          f"{all_m:.2f}% over all {len(rows)} models (max {all_max:.2f}%)  [target <= 10%]")
    print(f"  rank agreement (Spearman) predicted vs measured: {spearman(rows):.3f}")
    balance = sign_balance([r["error_pct"] for r in rows if r["label"].startswith("random")])
    print(f"  sign of the error over the random genotypes: {balance['above']} predicted slower, {balance['below']} "
          f"faster; mean signed error {balance['mean_signed_pct']:+.2f}%")
    old = [r["uniform_calibration_error_pct"] for r in rows if r["label"].startswith("random")]
    old_balance = sign_balance(old)
    print(f"  calibrated on the uniform genotypes instead (fixed_ms {uniform_fixed:.3f}): mean |error| "
          f"{sum(map(abs, old)) / len(old):.2f}% (max {max(map(abs, old)):.2f}%), {old_balance['above']} slower, "
          f"{old_balance['below']} faster, mean signed {old_balance['mean_signed_pct']:+.2f}%")
    others = []
    for stat in (x for x in STATISTICS if x != args.statistic):
        def entry(spec, g, stat=stat):
            return stat_of(table.entries[L.key_id(L.layer_key(spec, g, args.threads))]["stats"], stat)

        refs = [tuple(c["genotype"]) for c in table.calibration["references"] if c["calibrates"]]
        fixed = statistics.median(
            result.networks[g].statistic(stat) - sum(entry(s, x) for s, x in zip(arch.gene_layers, g)) for g in refs
        )
        errs = []
        for _, g in randoms:
            m = result.networks[g].statistic(stat)
            p = fixed + sum(entry(s, x) for s, x in zip(arch.gene_layers, g))
            errs.append(abs(p - m) / m * 100)
        others.append(f"{stat} {sum(errs) / max(len(errs), 1):.2f}%")
    print(f"  same check with the other statistics (mean |error|, random genotypes): {', '.join(others)}")

    base = rows[0]["measured_ms"]
    print(f"\nMeasured latency, uniform vs random genotypes ({args.statistic}, ms; speed-up vs uniform 1):")
    print(f"  {'model':<11} {'genotype':<36} {'FLOPs':>9} {'measured':>9} {'speed-up':>8}")
    for r in rows:
        print(f"  {r['label']:<11} {r['genotype']:<36} {fmt_flops(r['flops']):>9} {r['measured_ms']:9.3f} "
              f"{base / r['measured_ms']:7.2f}x")
    print()
    return {"module": module, "arch": L.architecture_info(arch), "table": str(table_path),
            "fixed_ms": table.fixed_ms, "uniform_fixed_ms": uniform_fixed, "calibration": table.calibration,
            "rows": rows,
            "sign_balance": balance, "spearman": spearman([r for r in rows if r["label"].startswith("random")])}


def sign_balance(errors_pct) -> dict:
    """How many predictions are above / below the measurement, and the mean signed error (%)."""
    errors_pct = list(errors_pct)
    return {"above": sum(e > 0 for e in errors_pct), "below": sum(e < 0 for e in errors_pct),
            "mean_signed_pct": sum(errors_pct) / max(len(errors_pct), 1)}


def spearman(rows) -> float:
    ranked_pred = sorted(rows, key=lambda r: r["predicted_ms"])
    ranked_meas = sorted(rows, key=lambda r: r["measured_ms"])
    n = len(rows)
    if n < 2:
        return float("nan")
    rp = {id(r): i for i, r in enumerate(ranked_pred)}
    rm = {id(r): i for i, r in enumerate(ranked_meas)}
    d2 = sum((rp[id(r)] - rm[id(r)]) ** 2 for r in rows)
    return 1.0 - 6.0 * d2 / (n * (n * n - 1))


def main(argv=None) -> int:
    args = parse_args(argv)
    print_machine(args.threads)
    rng = random.Random(args.seed)
    t0 = time.time()
    results = [run_module(m.strip().lower(), args, rng) for m in args.module.split(",") if m.strip()]
    print(f"Total time: {time.time() - t0:.0f} s")
    if args.json and not args.convert_only:
        settings = {k: getattr(args, k) for k in ("input_size", "channels", "num_classes", "width_multiplier", "stem",
                                                   "threads", "genotypes", "runs", "warmup", "statistic", "mode",
                                                   "seed")}
        atomic_write_text(args.json, json.dumps({
            "benchmark": "latency", "command": common.command_line(), "machine": L.machine_info(args.threads),
            "load_average": list(os.getloadavg()), "settings": settings, "seconds": round(time.time() - t0, 1),
            "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
