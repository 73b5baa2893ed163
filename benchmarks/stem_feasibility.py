"""Latency feasibility at 224x224 with the QuickNet stem: can a searched binary MobileNet run at QuickNetSmall's
host latency with at least its BOPs?

MobileNet's stem leaves the first binary block at 112x112 (a quarter of the searched M3's host time in the
peers benchmark's per-op profile). With ``model.stem=quicknet`` (larq-zoo QuickNet's float stem, 4x down) and
for each module asked for (default M1 and M3, 224x224x3, 1000 classes), in ONE process on this host:

1. larq-zoo ``QuickNetSmall(weights=None)`` is converted with the package's LCE export path and timed
   round-robin together with the reference networks of the module's 1-thread host latency table
   (`larq_mobisearch.deploy.host_table.measure_host_table`): its mean latency there is the **budget**, in the
   table's own units and conditions;
2. the package's evolutionary search (`larq_mobisearch.search.evolutionary_search`, the paper's population 50 /
   20 iterations) maximizes BOPs (capacity; no ImageNet accuracy here) under ``predicted latency <= budget``;
   the exact optimum of the same table (Pareto dynamic programming) is printed next to it as a check;
3. the winners, QuickNetSmall and the MobileNet-stem uniform M3 at the largest group counts are timed together,
   round-robin, 1 thread; the verdict per module: paired median per-round ratio to QuickNetSmall <= 1.0 and
   BOPs >= QuickNetSmall's (Larq's `ModelProfile`).

A latency-feasibility result on host x86 LCE kernels, not an accuracy claim and not a phone latency. larq-zoo
is a benchmark dependency (``.venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt``).

    python benchmarks/stem_feasibility.py --quick        # smoke run: 64x64, M3, few rounds
    python benchmarks/stem_feasibility.py --json benchmarks/results/stem_feasibility.json

Converted models and tables are cached under --out-dir (default runs/benchmarks/stem), so a re-run only times.
Convert first on a busy machine (``--convert-only``), time on an idle one.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch import deploy as L  # noqa: E402
from larq_mobisearch.config import SearchConfig  # noqa: E402
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace, encode  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)
import peers  # noqa: E402  (benchmarks/peers.py: larq-zoo import, conversion)

QNS = "QuickNetSmall"
STEM = "quicknet"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", default="m1,m3")
    p.add_argument("--input-size", type=int, default=None, help="default 224 (64 with --quick)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--table-runs", type=int, default=None, help="rounds of the table's loop (default 40; 6 --quick)")
    p.add_argument("--runs", type=int, default=None, help="rounds of the final loop (default 60; 8 with --quick)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=0, help="seed of the evolutionary search")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--convert-only", action="store_true", help="convert every model into the cache and exit")
    p.add_argument("--out-dir", default="runs/benchmarks/stem")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    args.input_size = args.input_size or (64 if args.quick else 224)
    args.table_runs = args.table_runs or (6 if args.quick else 40)
    args.runs = args.runs or (8 if args.quick else 60)
    args.module_list = [m.strip().lower() for m in args.modules.split(",") if m.strip()]
    if args.quick and args.modules == "m1,m3":
        args.module_list = ["m3"]
    return args


def bops_table(arch, candidates):
    """BOPs per gene and group count (every searchable conv of M1/M3 is binary) and the fixed BOPs."""
    genes = {c.name for c in arch.gene_layers}
    fixed = sum(c.macs() for c in arch.convs if c.binary and c.name not in genes)
    return fixed, [{g: spec.macs(g) if spec.binary else 0 for g in cands}
                   for spec, cands in zip(arch.gene_layers, candidates)]


def search_max_bops(arch, space, lat_model, budget_ms: float, seed: int) -> dict:
    """Evolution: the most BOPs with predicted latency <= budget_ms; and the table's exact optimum."""
    from larq_mobisearch.search import FunctionEvaluator, evolutionary_search

    cfg = SearchConfig(seed=seed, latency_budget_ms=budget_ms)  # population 50, top-k 10, 20 iterations
    t0 = time.time()
    res = evolutionary_search(space, FunctionEvaluator(lambda g: float(count_costs(arch, g).bops)),
                              [(lat_model, budget_ms)], cfg, progress=True)
    fixed_bops, per_gene = bops_table(arch, space.candidates)
    # minimize -BOPs under the latency budget: the same Pareto DP as peers' fastest-under-FLOPs
    exact = common.pareto_fastest_under_budget(lat_model.fixed, lat_model.table, -fixed_bops,
                                               [{g: -v for g, v in t.items()} for t in per_gene],
                                               space.candidates, budget_ms)
    g = res.best_genotype
    return {
        "genotype": encode(g), "genes": list(g), "bops": count_costs(arch, g).bops, "flops": count_costs(arch, g).flops,
        "predicted_ms": lat_model.cost(g), "budget_ms": budget_ms, "evaluations": res.num_evaluations,
        "seconds": round(time.time() - t0, 2),
        "exact_genotype": None if exact is None else encode(exact[2]),
        "exact_bops": None if exact is None else -exact[1],
        "found_exact_optimum": exact is not None and count_costs(arch, g).bops == -exact[1],
        "fastest_ms": lat_model.min_cost(space.candidates),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    zoo = peers.import_zoo()
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    machine = L.machine_info(1)
    common.print_machine(machine)
    out_dir = Path(args.out_dir)
    size, classes = args.input_size, args.num_classes
    cache = L.FlatbufferCache(out_dir / "flatbuffers", peers.convert_binary)
    built = {}

    def build_qns():
        built["model"] = peers.zoo_model(zoo, "sota.QuickNetSmall", size, classes)
        return built["model"]

    qns_fb = cache.get({"larq_zoo": "sota.QuickNetSmall", "input": size, "classes": classes}, build_qns)
    qns_costs = common.profile_costs(built.get("model") or build_qns())
    print(f"{QNS}: {qns_costs['bops'] / 1e9:.3f}e9 BOPs, {qns_costs['flops'] / 1e6:.1f}M FLOPs")

    modules = {}
    for module in args.module_list:
        arch = architecture(module, (size, size, 3), classes, 1.0, stem=STEM)
        space = SearchSpace(arch, "lce")
        if args.convert_only:  # the table's layers and reference networks
            L.convert_host_models(arch, space.candidates, L.host_references(arch, space.candidates).genotypes, cache)
            print(f"{module.upper()}: {cache.converted} converted so far")
            continue
        # the table and QuickNetSmall timed in one loop: the budget is in the table's conditions
        qns_times = {}

        def measure(fbs, **kw):
            stats = L.measure_latencies({**fbs, QNS: qns_fb}, **kw)
            qns_times.update(stats=stats.pop(QNS))
            return stats

        print(f"=== {module.upper()} with the QuickNet stem at {size}x{size}: host table + {QNS}, "
              f"{args.table_runs} rounds", flush=True)
        result = L.measure_host_table(arch, allowed=space.candidates, threads=1, warmup=args.warmup,
                                      runs=args.table_runs, cache=cache, measure_fn=measure, progress=False)
        L.save_latency_table(result.table, out_dir / "tables" / f"host_{module}_{size}_c{classes}_{STEM}_t1.json")
        lat_model = L.LatencyCostModel(result.table, arch, space.candidates, threads=1)
        budget = qns_times["stats"].mean_ms
        print(f"  budget: {QNS} {budget:.3f} ms in the same loop; table fixed_ms {result.table.fixed_ms:.3f}")
        s = search_max_bops(arch, space, lat_model, budget, args.seed)
        print(f"  searched {s['genotype']}: {s['bops'] / 1e9:.3f}e9 BOPs, predicted {s['predicted_ms']:.3f} ms; "
              f"exact optimum {s['exact_bops'] and s['exact_bops'] / 1e9:.3f}e9 BOPs "
              f"({'found' if s['found_exact_optimum'] else 'not found: ' + str(s['exact_genotype'])})")
        modules[module] = {"arch": arch, "search": s,
                           "table": {"fixed_ms": result.table.fixed_ms, "entries": len(result.table.entries)}}
    if args.convert_only:
        print(f"Converted into {out_dir / 'flatbuffers'}: {cache.converted} new")
        return 0

    rows = {QNS: {"family": "larq-zoo", "costs": qns_costs, "fb": qns_fb}}
    plain = architecture("m3", (size, size, 3), classes, 1.0)
    fastest_plain = SearchSpace(plain, "lce").uniform(32)
    rows["M3 MobileNet stem, uniform max groups"] = {
        "family": "ours", "genotype": encode(fastest_plain), "stem": "mobilenet",
        "costs": count_costs(plain, fastest_plain).as_dict(), "fb": cache.network(plain, fastest_plain)}
    for module, m in modules.items():
        genes = tuple(m["search"]["genes"])
        rows[f"{module.upper()} QuickNet stem, searched <= {QNS} latency"] = {
            "family": "ours", "genotype": m["search"]["genotype"], "stem": STEM, "module": module,
            "costs": count_costs(m["arch"], genes).as_dict(), "fb": cache.network(m["arch"], genes),
            "predicted_ms": m["search"]["predicted_ms"]}
    fbs = {label: r.pop("fb") for label, r in rows.items()}
    print(f"Timing {len(fbs)} models round-robin, 1 thread, {args.runs} rounds ...", flush=True)
    times = {}
    load_before = common.load_average()
    stats = L.measure_latencies(fbs, num_threads=1, warmup=args.warmup, runs=args.runs, progress=True,
                                seed=args.seed, times_out=times)
    verdicts = []
    for label, r in rows.items():
        r["latency"] = stats[label].as_dict()
        r["paired_to_quicknetsmall"] = common.paired_ratio(times[label], times[QNS])
        r["tflite_bytes"] = len(fbs[label])
        line = (f"  {label:<52} {r['costs']['bops'] / 1e9:6.3f}e9 BOPs {stats[label].mean_ms:8.2f} ms "
                f"paired {r['paired_to_quicknetsmall']['median']:.3f}x {QNS}")
        print(line)
        if r.get("module"):
            met = r["paired_to_quicknetsmall"]["median"] <= 1.0 and r["costs"]["bops"] >= qns_costs["bops"]
            r["goal_met"] = met
            verdicts.append(f"{r['module'].upper()} (QuickNet stem): <= 1.0x {QNS} paired with >= its BOPs? "
                            f"{'MET' if met else 'NOT MET'}: {r['paired_to_quicknetsmall']['median']:.3f}x, "
                            f"{r['costs']['bops'] / qns_costs['bops']:.3f}x its BOPs")
    for line in verdicts:
        print(line)
    total = time.time() - t_start
    if args.json:
        atomic_write_json(args.json, {
            "benchmark": "stem_feasibility", "command": common.command_line(), "machine": machine,
            "settings": {"input_size": size, "num_classes": classes, "table_runs": args.table_runs,
                         "runs": args.runs, "warmup": args.warmup, "seed": args.seed, "threads": 1,
                         "statistic": "mean", "stem": STEM},
            "load_average_before": load_before, "load_average_end": common.load_average(),
            "searches": {k: {**m["search"], "table": m["table"]} for k, m in modules.items()},
            "rows": rows, "verdict_lines": verdicts, "seconds": round(total, 1),
            "converted_in_run": cache.converted,
        }, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
