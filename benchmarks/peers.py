"""Peers benchmark: our binary MobileNets vs larq-zoo's QuickNetSmall / QuickNet / Bi-RealNet vs float MobileNetV1.

At 224x224 and 1000 classes, on this host, in ONE process:

1. **Our models**: modules M1/M2/M3 with uniform groups 1, 4, 16 (each layer clamped to its largest legal
   count in the LCE search space, `SearchSpace.uniform`), and per module a **searched** genotype at the
   paper's FLOPs budget (M1 1.56e8 (the paper's 1.55e8 is infeasible in the LCE space), M2 0.80e8, M3 0.50e8).
   There is no ImageNet here, so the search cannot score accuracy at 224: the searched row is **the fastest
   genotype of the LCE search space under the budget** -- the package's evolutionary search
   (`larq_mobisearch.search.evolutionary_search`, the paper's population 50 / 20 iterations) with fitness =
   minus the latency predicted by a host latency table (`larq_mobisearch.deploy.host_table.measure_host_table`, 1 thread)
   under the FLOPs constraint. A latency-aware feasibility result, not an accuracy claim. The exact optimum of
   the same table (Pareto dynamic programming) is printed next to it as a check of the search.
2. **Peers**: larq-zoo `QuickNetSmall`, `QuickNet`, `BiRealNet` built with ``weights=None`` (latency does not
   depend on the weights), converted with the package's LCE export path (`larq_mobisearch.deploy.export.export_tflite`,
   which also checks every binary conv became `LceBconv2d`), run in LCE's interpreter (indirect BGEMM).
3. **Float reference**: ``tf.keras.applications.MobileNet(weights=None)`` (MobileNetV1, width 1.0) converted with
   plain ``tf.lite.TFLiteConverter`` (static batch 1) and run in TensorFlow's own ``tf.lite.Interpreter``
   (XNNPACK delegate), plus the same flatbuffer in LCE's interpreter.

Our models are exported as `export_tflite` exports them: M3's pointwise pairs fused into one binary conv each
(`larq_mobisearch.deploy.fuse`, 26 instead of 39 `LceBconv2d`); the searched M3 is also timed unfused, as a row
of its own, so the fusion's effect is measured in the same loop.

All flatbuffers are timed together, round-robin (`larq_mobisearch.deploy.timing.measure_latencies`), once per
thread count. Columns: FLOPs = BOPs/64 + float FLOPs (our counter `count_costs` for our models, Larq's
`ModelProfile` MAC count for the others -- the two agree on our models), BOPs, `.tflite` bytes, mean latency
(p10-p90) and the latency ratios to Bi-RealNet and to QuickNetSmall at the same thread count: of the means,
and paired (median over rounds of the ratio within a round, which cancels the host's drift). The load average
is recorded before and after each timing loop.

With ``--profile`` (default) the searched M3 (fused and unfused), QuickNetSmall and Bi-RealNet also get a per-op
time breakdown at 1 thread (`larq_mobisearch.deploy.profile.op_profile`: each op cut out as a single-op model
and timed against an empty twin, round-robin).

Host numbers are x86 runs of LCE's portable kernels, not its ARM kernels: compare ratios, do not read them as
phone latencies.

larq-zoo's dependency pins conflict with this stack (TF 2.16, tensorflow-datasets 4.9); install it without
its dependencies:

    .venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt

    python benchmarks/peers.py --quick                                  # smoke run: 64x64, M3 only, few rounds
    python benchmarks/peers.py --json benchmarks/results/peers.json     # the full benchmark (BENCHMARKS.md)

Converted models and latency tables are cached under --out-dir (default runs/benchmarks/peers), so a re-run
only searches and times.
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
from larq_mobisearch.config import IMAGENET_FLOPS_BUDGETS, PAPER_FLOPS_BUDGETS, SearchConfig  # noqa: E402
from larq_mobisearch.search.costs import FlopsCostModel, count_costs  # noqa: E402
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.space import SearchSpace, encode  # noqa: E402
from larq_mobisearch.nn.specs import architecture  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)

INSTALL_HINT = ".venv/bin/pip install --no-deps -r benchmarks/requirements-peers.txt"
BASELINE = "Bi-RealNet"
QNS = "QuickNetSmall"
#: Issue 16's targets for the searched M3, paired median per-round ratio at 1 thread.
TARGETS = {BASELINE: 0.70, QNS: 1.2}
UNFUSED = " (unfused)"
PEERS = (  # (label, larq_zoo attribute path)
    ("QuickNetSmall", "sota.QuickNetSmall"),
    ("QuickNet", "sota.QuickNet"),
    ("Bi-RealNet", "literature.BiRealNet"),
)
FLOAT_TFLITE = "MobileNetV1 float (TFLite)"
FLOAT_LCE = "MobileNetV1 float (LCE interp.)"
SEARCHED_WHAT = "searched: fastest genotype of the LCE space under the FLOPs budget (host latency table; no accuracy)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--modules", default="m1,m2,m3", help="our modules (comma-separated; default m1,m2,m3)")
    p.add_argument("--uniform", default="1,4,16", help="uniform group counts of our models (clamped per layer)")
    p.add_argument("--input-size", type=int, default=None, help="default 224 (64 with --quick)")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--threads", default="1,2", help="interpreter thread counts to time (comma-separated)")
    p.add_argument("--runs", type=int, default=None, help="round-robin rounds per thread count (default 60; 8 with --quick)")
    p.add_argument("--warmup", type=int, default=None, help="untimed runs of every model first (default 3)")
    p.add_argument("--table-runs", type=int, default=None,
                   help="round-robin rounds of the latency-table measurement (default 40; 8 with --quick)")
    p.add_argument("--no-search", action="store_true", help="skip the searched rows (no latency tables)")
    p.add_argument("--no-peers", action="store_true", help="skip larq-zoo (our models and float MobileNetV1 only)")
    p.add_argument("--seed", type=int, default=0, help="seed of the evolutionary search")
    p.add_argument("--quick", action="store_true", help="smoke run: 64x64 inputs, M3 only, uniform 1,16, few rounds")
    p.add_argument("--out-dir", default="runs/benchmarks/peers",
                   help="cache: converted models (flatbuffers/) and latency tables (tables/)")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    p.add_argument("--no-profile", dest="profile", action="store_false",
                   help="skip the per-op breakdown of the searched M3 and the larq-zoo peers")
    p.add_argument("--profile-runs", type=int, default=None, help="round-robin rounds of the per-op profile (default 10)")
    args = p.parse_args(argv)
    if args.quick:
        args.input_size = args.input_size or 64
        if args.modules == "m1,m2,m3":
            args.modules = "m3"
        if args.uniform == "1,4,16":
            args.uniform = "1,16"
        if args.threads == "1,2":
            args.threads = "1"
    args.input_size = args.input_size or 224
    args.runs = args.runs or (8 if args.quick else 60)
    args.table_runs = args.table_runs or (8 if args.quick else 40)
    args.warmup = 3 if args.warmup is None else args.warmup
    args.profile_runs = args.profile_runs or (3 if args.quick else 10)
    args.module_list = [m.strip().lower() for m in args.modules.split(",") if m.strip()]
    args.uniform_list = [int(g) for g in args.uniform.split(",") if g.strip()]
    args.thread_list = [int(t) for t in args.threads.split(",") if t.strip()]
    return args


def import_zoo():
    try:
        import larq_zoo  # noqa: F401
    except ImportError as exc:
        raise SystemExit(
            f"peers.py needs larq-zoo, which is not installed ({exc}).\n"
            f"Its pins conflict with this stack, so install it without dependencies:\n    {INSTALL_HINT}\n"
            "or run with --no-peers (our models and float MobileNetV1 only)."
        ) from None
    return larq_zoo


def zoo_model(zoo, path: str, input_size: int, num_classes: int):
    fn = zoo
    for part in path.split("."):
        fn = getattr(fn, part)
    return fn(weights=None, input_shape=(input_size, input_size, 3), num_classes=num_classes)


def convert_binary(model) -> bytes:
    """The package's export path: LCE conversion + the check that every binary conv became LceBconv2d.

    Fusion of M3's pointwise pairs is decided when the network is built (`FlatbufferCache.network`), so that
    the unfused row stays unfused."""
    from larq_mobisearch.deploy.export import export_tflite

    return export_tflite(model, fuse_pointwise=False)  # our networks come fused (or not) from the cache's builder


def convert_float(model) -> bytes:
    """Plain TensorFlow Lite conversion of a float Keras model, with a static batch of 1 (XNNPACK needs it)."""
    import tensorflow as tf

    spec = tf.TensorSpec([1, *model.inputs[0].shape[1:]], model.inputs[0].dtype)
    fn = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    return tf.lite.TFLiteConverter.from_concrete_functions([fn], model).convert()


def float_mobilenet(input_size: int, num_classes: int):
    import tensorflow as tf

    return tf.keras.applications.MobileNet(
        weights=None, input_shape=(input_size, input_size, 3), classes=num_classes, alpha=1.0
    )


def budget_of(module: str) -> float:
    return float(IMAGENET_FLOPS_BUDGETS[module])


def host_table(arch, space, args, cache, out_dir: Path):
    """The 1-thread host latency table of `arch` (cached as JSON under out_dir/tables)."""
    tag = f"{arch.module}_{arch.input_shape[0]}_c{arch.num_classes}_t1_r{args.table_runs}"
    path = out_dir / "tables" / f"host_{tag}.json"
    if path.is_file():
        try:
            table = L.load_latency_table(path)
            model = L.LatencyCostModel(table, arch, space.candidates, threads=1)
            print(f"  latency table {path} (cached): {len(table.entries)} entries, fixed_ms {table.fixed_ms:.3f}")
            return table, model, True
        except (L.LatencyTableError, ValueError) as exc:
            print(f"  cached table {path} unusable ({exc}); measuring again")
    t0 = time.time()
    result = L.measure_host_table(
        arch, allowed=space.candidates, threads=1, warmup=args.warmup, runs=args.table_runs,
        cache=cache,
    )
    L.save_latency_table(result.table, path)
    model = L.LatencyCostModel(result.table, arch, space.candidates, threads=1)
    print(f"  latency table {path}: {len(result.table.entries)} layer entries, fixed_ms "
          f"{result.table.fixed_ms:.3f} ({time.time() - t0:.0f} s)")
    return result.table, model, False


def search_fastest(arch, space, lat_model, budget: float, seed: int):
    """Evolutionary search (paper settings) for the fastest genotype within the FLOPs budget, + exact optimum."""
    from larq_mobisearch.search import FunctionEvaluator, evolutionary_search

    flops_model = FlopsCostModel(arch, space.candidates)
    cfg = SearchConfig(seed=seed, flops_budget=budget)  # population 50, top-k 10, 25 + 25, 20 iterations
    t0 = time.time()
    res = evolutionary_search(
        space, FunctionEvaluator(lambda g: -lat_model.cost(g)), [(flops_model, budget), (lat_model, None)], cfg,
        progress=True,
    )
    exact = common.pareto_fastest_under_budget(
        flops_model.fixed, flops_model.table, lat_model.fixed, lat_model.table, space.candidates, budget
    )
    g = res.best_genotype
    return {
        "genotype": g,
        "predicted_ms": lat_model.cost(g),
        "flops": flops_model.cost(g),
        "evaluations": res.num_evaluations,
        "seconds": round(time.time() - t0, 2),
        "exact_genotype": None if exact is None else exact[2],
        "exact_predicted_ms": None if exact is None else exact[1],
        "exact_flops": None if exact is None else exact[0],
        "min_flops": flops_model.min_cost(space.candidates),
        # the non-searchable part of the network (stem, pointwise convs, classifier, per-call costs) and the
        # fastest genotype of the whole space with no budget: how far group counts alone can go
        "table_fixed_ms": lat_model.fixed,
        "unconstrained_fastest_ms": lat_model.min_cost(space.candidates),
    }


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    zoo = None if args.no_peers else import_zoo()
    import tensorflow as tf  # after larq_mobisearch (Keras 2)

    tf.get_logger().setLevel("ERROR")
    machine = L.machine_info(args.thread_list[0])
    machine.pop("threads", None)
    common.print_machine(machine, [f"{'interpreters':<20} LCE (use_indirect_bgemm=True); float reference also in tf.lite.Interpreter"])
    out_dir = Path(args.out_dir)
    size, classes = args.input_size, args.num_classes
    binary_cache = L.FlatbufferCache(out_dir / "flatbuffers", convert_binary)
    float_cache = L.FlatbufferCache(out_dir / "flatbuffers", convert_float)
    print(f"=== {size}x{size}x3, {classes} classes; threads {args.thread_list}; {args.runs} round-robin rounds\n")

    rows = []  # dicts: label, family, what, flatbuffer (bytes), costs, ...
    searches = {}
    for module in args.module_list:
        arch = architecture(module, (size, size, 3), classes, 1.0)
        space = SearchSpace(arch, "lce")
        uniform = []
        for g in args.uniform_list:
            genes = space.uniform(g)
            clamped = any(x != g for x in genes)
            label = f"{module.upper()} uniform {g}" + (" (clamped)" if clamped else "")
            if genes not in [u[1] for u in uniform]:
                uniform.append((label, genes, g))
        print(f"--- {module.upper()} ({space.size:.3g} genotypes in the LCE space)")
        for label, genes, g in uniform:
            rows.append({"label": label, "family": "ours", "module": module, "what": f"uniform groups {g}",
                         "genotype": encode(genes), "arch": arch, "genes": genes})
        if not args.no_search:
            budget = budget_of(module)
            _, lat_model, cached = host_table(arch, space, args, binary_cache, out_dir)
            s = search_fastest(arch, space, lat_model, budget, args.seed)
            s.update(budget=budget, paper_budget=PAPER_FLOPS_BUDGETS[module], table_cached=cached)
            same = s["exact_predicted_ms"] is not None and abs(s["predicted_ms"] - s["exact_predicted_ms"]) < 1e-9
            print(f"  search (evolution, {s['evaluations']} evaluations, {s['seconds']} s): {encode(s['genotype'])} "
                  f"predicted {s['predicted_ms']:.3f} ms at {s['flops']:.4g} FLOPs (budget {budget:.4g}); exact "
                  f"optimum of the table {s['exact_predicted_ms']:.3f} ms "
                  f"({'found' if same else 'NOT found: ' + encode(s['exact_genotype'])}); fastest genotype of the "
                  f"whole space (no budget) {s['unconstrained_fastest_ms']:.3f} ms, of which {s['table_fixed_ms']:.3f} "
                  "ms is the non-searchable part")
            searches[module] = {k: (encode(v) if k in ("genotype", "exact_genotype") and v is not None else v)
                                for k, v in s.items()}
            searches[module]["found_exact_optimum"] = same
            searches[module]["predictions"] = {label: lat_model.cost(genes) for label, genes, _ in uniform}
            label = f"{module.upper()} searched <= {budget / 1e8:.2f}e8"
            rows.append({"label": label, "family": "ours", "module": module, "what": SEARCHED_WHAT,
                         "genotype": encode(s["genotype"]), "arch": arch, "genes": tuple(s["genotype"]),
                         "predicted_ms": s["predicted_ms"], "fused": True})
            if module == "m3":  # the same network with the pointwise pairs exported as two convs + concat
                rows.append({"label": label + UNFUSED, "family": "ours", "module": module,
                             "what": SEARCHED_WHAT + "; pointwise pairs not fused", "genotype": encode(s["genotype"]),
                             "arch": arch, "genes": tuple(s["genotype"]), "fused": False})
        print()

    print("Building and converting (cached under %s) ..." % (out_dir / "flatbuffers"))
    from tqdm import tqdm

    zoo_version = None
    if zoo is not None:
        from importlib import metadata

        zoo_version = metadata.version("larq-zoo")
        for label, path in PEERS:
            rows.append({"label": label, "family": "larq-zoo", "what": f"larq_zoo.{path}(weights=None)", "zoo": path})
    rows.append({"label": FLOAT_TFLITE, "family": "float", "what": "tf.keras.applications.MobileNet, tf.lite.Interpreter",
                 "runtime": "tflite"})
    rows.append({"label": FLOAT_LCE, "family": "float", "what": "same flatbuffer, LCE interpreter", "runtime": "lce"})

    fbs = {}
    for r in tqdm(rows, desc="models", unit="model", file=sys.stderr):
        if r["family"] == "ours":
            arch, genes = r.pop("arch"), r.pop("genes")
            # fused as exported (shared with the latency table's reference networks), or not
            fb = binary_cache.network(arch, genes, fuse_pointwise=r.get("fused", True))
            r["costs"] = count_costs(arch, genes).as_dict()
            r["cost_counter"] = "larq_mobisearch.search.costs.count_costs"
        elif r["family"] == "larq-zoo":
            what = {"larq_zoo": r["zoo"], "version": zoo_version, "input": size, "classes": classes}
            built = {}

            def build(path=r["zoo"]):
                built["model"] = zoo_model(zoo, path, size, classes)
                return built["model"]

            fb = binary_cache.get(what, build)
            model = built.get("model") or build()
            r["costs"] = common.profile_costs(model)
            r["cost_counter"] = "larq.models.ModelProfile (MACs: 1-bit = BOPs, 32-bit = FLOPs)"
            del model, built
        else:
            what = {"float_mobilenet_v1": 1.0, "input": size, "classes": classes, "batch": 1}
            model = float_mobilenet(size, classes)
            fb = float_cache.get(what, lambda: model)
            r["costs"] = common.profile_costs(model)
            r["cost_counter"] = "larq.models.ModelProfile"
            del model
        tf.keras.backend.clear_session()
        from larq_mobisearch.deploy.export import op_census

        census = op_census(fb)
        r["tflite_bytes"] = len(fb)
        r["lce_bconv2d_ops"] = census.get("LceBconv2d", 0)
        r["float_conv_ops"] = census.get("CONV_2D", 0) + census.get("DEPTHWISE_CONV_2D", 0)
        fbs[r["label"]] = fb
    print(f"  {binary_cache.converted + float_cache.converted} models converted in this run (tables included), "
          "the rest came from the cache\n")

    runtimes = {r["label"]: r.get("runtime", "lce") for r in rows}
    timings = {}
    per_round = {}
    for threads in args.thread_list:
        print(f"Timing {len(fbs)} models round-robin, {threads} thread(s), {args.runs} rounds ...", flush=True)
        load_before = common.load_average()
        t0 = time.time()
        times = {}
        stats = L.measure_latencies(fbs, num_threads=threads, warmup=args.warmup, runs=args.runs,
                                    runtimes=runtimes, progress=True, seed=args.seed, times_out=times)
        timings[threads] = {"seconds": round(time.time() - t0, 1), "load_average": common.load_average(),
                            "load_average_before": load_before}
        per_round[str(threads)] = times
        for r in rows:
            t = str(threads)
            r.setdefault("latency", {})[t] = stats[r["label"]].as_dict()
            for peer, key in ((BASELINE, "birealnet"), (QNS, "quicknetsmall")):
                r.setdefault(f"ratio_to_{key}", {})[t] = None
                r.setdefault(f"paired_to_{key}", {})[t] = None
                if peer in times:
                    r[f"ratio_to_{key}"][t] = stats[r["label"]].mean_ms / stats[peer].mean_ms
                    r[f"paired_to_{key}"][t] = common.paired_ratio(times[r["label"]], times[peer])

    profiles = {}
    if args.profile:
        profiles = profile_rows(rows, fbs, args)
    print_table(rows, args.thread_list)
    verdict = verdicts(rows, args.thread_list, per_round)
    for line in verdict["lines"]:
        print(line)
    total = time.time() - t_start
    print(f"\nTotal time: {total:.0f} s")

    if args.json:
        out = {
            "benchmark": "peers",
            "command": common.command_line(),
            "machine": machine,
            "load_average_end": common.load_average(),
            "settings": {"input_size": size, "num_classes": classes, "threads": args.thread_list, "runs": args.runs,
                         "warmup": args.warmup, "table_runs": args.table_runs, "statistic": "mean",
                         "use_indirect_bgemm": True, "seed": args.seed, "larq_zoo_version": zoo_version,
                         "uniform": args.uniform_list, "modules": args.module_list},
            "rows": rows,
            "searches": searches,
            "profiles": profiles,
            "timings": timings,
            "verdict": {k: v for k, v in verdict.items() if k != "lines"},
            "verdict_lines": verdict["lines"],
            "seconds": round(total, 1),
            # a re-run converts nothing and reuses the latency tables: its wall time is only search + timing
            "converted_in_run": binary_cache.converted + float_cache.converted,
            "tables_from_cache": all(v.get("table_cached") for v in searches.values()) if searches else None,
        }
        atomic_write_json(args.json, out, indent=1)
        print(f"Wrote {args.json}")
    return 0


def stage_of(op) -> str:
    """Where an op sits in the network, by its output's spatial size (``112x112``; ``1x1`` for the head)."""
    shape = op["output_shape"]
    return f"{shape[1]}x{shape[2]}" if len(shape) == 4 else "head"


def profile_rows(rows, fbs, args) -> dict:
    """Per-op breakdown (1 thread) of the searched M3 (fused and unfused) and the larq-zoo peers."""
    from larq_mobisearch.deploy.profile import op_profile

    wanted = [r["label"] for r in rows if r.get("module") == "m3" and r["what"].startswith(SEARCHED_WHAT)]
    wanted += [r["label"] for r in rows if r["label"] in (QNS, BASELINE)]
    out = {}
    for label in wanted:
        print(f"Per-op profile of {label} ({args.profile_runs} rounds) ...", flush=True)
        load_before = common.load_average()
        p = op_profile(fbs[label], num_threads=1, runs=args.profile_runs, warmup=2, seed=args.seed).to_json()
        by_stage = {}
        for op in p["ops"]:
            st = by_stage.setdefault(stage_of(op), {"ms": 0.0, "count": 0, "by_type": {}})
            st["ms"] += op["ms"]
            st["count"] += 1
            st["by_type"][op["name"]] = st["by_type"].get(op["name"], 0.0) + op["ms"]
        p["by_stage"] = by_stage
        p["top"] = sorted(p["ops"], key=lambda o: -o["ms"])[:12]
        p["load_average"] = [load_before, common.load_average()]
        out[label] = p
        print(f"  network {p['network_ms']:.2f} ms, sum of ops {p['sum_ops_ms']:.2f} ms: " + ", ".join(
            f"{k} {v['ms']:.2f}" for k, v in p["by_type"].items()))
    return out


def print_table(rows, threads) -> None:
    head = f"  {'model':<42} {'FLOPs':>9} {'BOPs':>9} {'.tflite':>10} {'bconv':>5}"
    for t in threads:
        head += f" {f'{t} thr mean (p10-p90) ms':>26} {'/BiReal':>7} {'paired':>6} {'/QNS pr':>7}"
    print("\nLatency on this host (x86, LCE interpreter unless noted; mean of round-robin rounds; /BiReal = mean "
          "ratio to Bi-RealNet; paired = median over rounds of the ratio to Bi-RealNet in the same round):")
    print(head)
    for r in rows:
        c = r["costs"]
        line = (f"  {r['label']:<42} {c['flops'] / 1e8:7.3f}e8 {c['bops'] / 1e9:7.3f}e9 "
                f"{r['tflite_bytes'] / 1e6:8.2f}MB {r['lce_bconv2d_ops']:5d}")
        for t in map(str, threads):
            st = r["latency"][t]
            ratio = r["ratio_to_birealnet"][t]
            paired = r["paired_to_birealnet"][t]
            qns = (r.get("paired_to_quicknetsmall") or {}).get(t)
            rtxt = f"{ratio:.2f}x" if ratio is not None else "-"
            ptxt = f"{paired['median']:.2f}x" if paired is not None else "-"
            qtxt = f"{qns['median']:.2f}x" if qns is not None else "-"
            line += f" {st['mean_ms']:9.2f} ({st['p10_ms']:6.2f}-{st['p90_ms']:6.2f}) {rtxt:>7} {ptxt:>6} {qtxt:>7}"
        print(line)
    for r in rows:
        if r["family"] == "ours":
            print(f"  {r['label']}: {r['genotype']}" + (f"  [{r['what']}]" if r["what"] == SEARCHED_WHAT else ""))


def verdicts(rows, threads, times=None):
    """Goal: searched M3 faster than Bi-RealNet; moonshot: at least as fast as QuickNetSmall.

    Decided on the mean latencies of the round-robin loop. `times` ({threads: {label: per-round ms}}, optional)
    adds the paired statistics: the median over rounds of the per-round ratio and the share of rounds in which
    the searched M3 was faster; a result is flagged "within noise" when that share is between 25% and 75%.
    """
    by = {r["label"]: r for r in rows}
    m3 = next((r for r in rows if r.get("module") == "m3" and r["what"] == SEARCHED_WHAT), None)
    out = {"lines": [], "goal": {}, "moonshot": {}, "targets": {}, "fusion": {}}
    if m3 is None:
        out["lines"].append("Verdict: no searched M3 row (run without --no-search, with m3 in --modules).")
        return out
    for t in map(str, threads):
        me = m3["latency"][t]["mean_ms"]
        for key, peer, rel in (("goal", "Bi-RealNet", "faster than"), ("moonshot", "QuickNetSmall", "at least as fast as")):
            if peer not in by:
                continue
            other = by[peer]["latency"][t]["mean_ms"]
            met = me < other if key == "goal" else me <= other
            entry = {"met": met, "searched_m3_ms": me, "peer": peer, "peer_ms": other, "ratio": me / other}
            extra = ""
            per_round = (times or {}).get(t) or (times or {}).get(int(t))
            if per_round and m3["label"] in per_round and peer in per_round:
                paired = common.paired_ratio(per_round[m3["label"]], per_round[peer])
                entry["paired"] = paired
                noisy = 0.25 < paired["share_faster"] < 0.75
                entry["within_noise"] = noisy
                extra = (f"; paired: median per-round ratio {paired['median']:.2f}x, faster in "
                         f"{100 * paired['share_faster']:.0f}% of {paired['rounds']} rounds"
                         + (" -- within the noise of this host" if noisy else ""))
            out[key][t] = entry
            out["lines"].append(
                f"{'Goal' if key == 'goal' else 'Moonshot'} ({t} thread{'s' if t != '1' else ''}): searched M3 "
                f"({m3['costs']['flops'] / 1e8:.3f}e8 FLOPs) {rel} {peer}? {'MET' if met else 'NOT MET'}: "
                f"{me:.2f} ms vs {other:.2f} ms ({me / other:.2f}x){extra}"
            )
        # issue 16's targets, on the paired median (fused and unfused searched M3, same rounds)
        per_round = (times or {}).get(t) or (times or {}).get(int(t)) or {}
        unfused = m3["label"] + UNFUSED
        if m3["label"] in per_round and unfused in per_round:
            paired = common.paired_ratio(per_round[m3["label"]], per_round[unfused])
            out["fusion"][t] = paired
            out["lines"].append(
                f"Fusion ({t} thread{'s' if t != '1' else ''}): searched M3 with its pointwise pairs fused / unfused, "
                f"paired median {paired['median']:.3f}x (p10 {paired['p10']:.3f}, p90 {paired['p90']:.3f}), fused "
                f"faster in {100 * paired['share_faster']:.0f}% of {paired['rounds']} rounds")
        for label in (m3["label"], m3["label"] + UNFUSED):
            for peer, target in TARGETS.items():
                if label not in per_round or peer not in per_round:
                    continue
                paired = common.paired_ratio(per_round[label], per_round[peer])
                met = paired["median"] <= target
                out["targets"].setdefault(t, {}).setdefault(label, {})[peer] = {
                    "target": target, "paired_median": paired["median"], "met": met, "paired": paired}
                out["lines"].append(
                    f"Target ({t} thread{'s' if t != '1' else ''}): {label} <= {target:.2f}x {peer} (paired median)? "
                    f"{'MET' if met else 'NOT MET'}: {paired['median']:.3f}x (p10 {paired['p10']:.3f}, "
                    f"p90 {paired['p90']:.3f}, {paired['rounds']} rounds)")
    return out


if __name__ == "__main__":
    sys.exit(main())
