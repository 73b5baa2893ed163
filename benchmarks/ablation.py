"""Ablation (the paper's Table 1) on real data: uniform groups vs random-group search vs our evolutionary search.

For every seed, with the package's own pipeline stages (`larq_mobisearch.pipeline`) on the ``digits`` preset
(scikit-learn's 1,797 real handwritten digits at 32x32x1; M1 at width 0.25; or any prepared TFDS dataset with
``--dataset``):

1. train the weight-sharing supernet (`pipeline.train_supernet`);
2. `pipeline.search`: the evolutionary search (Algorithm 1), the random-group search with the same number of
   evaluations, and the uniform-group baselines, all at the same FLOPs budget (0.85 x the uniform groups=1
   model) and scored on the supernet (held-out top-1 after BatchNorm recalibration);
3. **retrain from scratch** each of the three winners -- the best uniform genotype within the budget (by its
   supernet score), the random search's best, the evolutionary search's best -- with the same settings
   (`pipeline.retrain`), export each through LCE (`pipeline.export`, verified against Keras);
4. time all retrained ``.tflite`` models together, round-robin, with LCE's interpreter on this host (1 thread,
   indirect BGEMM; `larq_mobisearch.deploy.timing.measure_latencies`).

A fourth row is the MoBiNet-style baseline (``mobinet``): the same M1 with every binary 3x3 conv depthwise
(groups = channels, the paper space; not scored by the supernet, which only holds the LCE space), retrained
and exported the same way, except that its export keeps the depthwise binary convs as float ops (LCE cannot
lower them: ``allow_float_fallback``), which its latency includes.

The seed sets the data shuffling (``data.seed``), the supernet's and the retraining's initialization and
order (``supernet.seed``, ``retrain.seed``) and the search (``search.seed``); the train/holdout/test split
(``data.split_seed``) stays fixed so every seed is tested on the same images. Reported: mean +- sample std
over seeds of test top-1 (the retrained Keras model on the whole test split), FLOPs (BOPs/64 + float FLOPs)
and host latency. Host latency is x86 LCE, not a phone: compare ratios.

With ``--shared-supernet RUN_DIR`` (the Fashion-MNIST setting, shared with efficiency.py and ranking.py) there
is ONE supernet and ONE search (named ``table1`` in RUN_DIR: evolution, random search with the same number of
evaluations, uniform baselines, at the preset's FLOPs budget); each of the three winners is then retrained from
scratch once per seed (named searches ``t1-<method>-s<seed>``), exported and timed. The seed there sets only
the retraining (``retrain.seed``, ``data.seed``).

Each seed's work lives in its own run directories under --out-dir (``seed<k>/search``, ``seed<k>/<method>``);
a killed run resumes where it stopped (finished stages are skipped).

    python benchmarks/ablation.py --quick                                 # smoke run (2 seeds, tiny epochs)
    python benchmarks/ablation.py --json benchmarks/results/ablation.json # the full ablation (BENCHMARKS.md)
    python benchmarks/ablation.py --dataset cifar10 --data-dir DIR --preset cifar10   # a prepared TFDS dataset
    python benchmarks/ablation.py --preset fashion --shared-supernet runs/benchmarks/fashion --seeds 0,1 \
        --retrain-epochs 8 --json benchmarks/results/ablation_fashion.json                  # Fashion-MNIST
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch import deploy as L  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.space import decode, encode  # noqa: E402
from larq_mobisearch.nn.specs import baseline_genotype  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)

METHODS = ("uniform", "random", "evolution", "mobinet")
#: Rows that are named baselines (`pipeline.retrain(baseline=...)`), not winners of the supernet's search.
BASELINE_METHODS = ("mobinet",)
METHOD_LABELS = {
    "uniform": "uniform groups (best within budget)",
    "random": "random-group search",
    "evolution": "evolutionary search (ours)",
    "mobinet": "MoBiNet-style (depthwise, float fallback)",
}
#: Retraining epochs: the digits preset retrains 40 epochs (~3.5-5 min per model on 2 cores), too slow for
#: 9 retrainings; 15 epochs keeps the whole default ablation (3 seeds) within ~25 minutes on this machine.
DEFAULT_RETRAIN_EPOCHS = 15


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--preset", default="digits", help="config preset (digits, cifar10, imagenet)")
    p.add_argument("--dataset", default=None, help="data.name: a prepared TFDS dataset (default: the preset's)")
    p.add_argument("--data-dir", default=None, help="data.data_dir for --dataset")
    p.add_argument("--retrain-epochs", type=int, default=None,
                   help=f"epochs of each retraining from scratch (default {DEFAULT_RETRAIN_EPOCHS}; 2 with --quick)")
    p.add_argument("--supernet-epochs", type=int, default=None, help="default: the preset's (2 with --quick)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config overrides, as for `mobisearch run --set`")
    p.add_argument("--runs", type=int, default=200, help="round-robin timing rounds of the retrained models")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: seeds 0,1, 2 supernet / 2 retraining epochs, population 6, 2 generations")
    p.add_argument("--out-dir", default="runs/benchmarks/ablation", help="run directories (one per seed and method)")
    p.add_argument("--shared-supernet", default=None, metavar="RUN_DIR",
                   help="one supernet and one search in RUN_DIR; the seeds retrain the winners (see above)")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        if args.seeds == "0,1,2":
            args.seeds = "0,1"
        args.retrain_epochs = args.retrain_epochs or 2
        args.supernet_epochs = args.supernet_epochs or 2
        args.overrides = ["search.population=6", "search.top_k=2", "search.iterations=2",
                          "search.recalibration_batches=2"] + args.overrides
        args.runs = min(args.runs, 30)
    args.retrain_epochs = args.retrain_epochs or DEFAULT_RETRAIN_EPOCHS
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if len(set(args.seed_list)) != len(args.seed_list) or not args.seed_list:
        p.error(f"--seeds must be distinct integers, received {args.seeds!r}")
    return args


def seed_config(args, seed: int):
    from larq_mobisearch.config import load_config

    overrides = [
        f"data.seed={seed}", f"supernet.seed={seed}", f"search.seed={seed}", f"retrain.seed={seed}",
        f"retrain.epochs={args.retrain_epochs}",
    ]
    if args.supernet_epochs:
        overrides.append(f"supernet.epochs={args.supernet_epochs}")
    if args.dataset:
        overrides.append(f"data.name={args.dataset}")
    if args.data_dir:
        overrides.append(f"data.data_dir={args.data_dir}")
    return load_config(preset=args.preset, overrides=overrides + list(args.overrides))


class EpochBar:
    """A Keras callback advancing a tqdm bar by one per finished epoch (Keras itself runs silently)."""

    def __new__(cls, bar):
        import tensorflow as tf

        class _Cb(tf.keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs = logs or {}
                bar.set_postfix({k: f"{v:.3f}" for k, v in logs.items() if k in ("accuracy", "val_accuracy")})
                bar.update(1)

        return _Cb()


def winners(result: dict) -> dict:
    """The three genotypes to retrain from a `search/result.json`: best uniform, random best, evolution best."""
    uniform = [u for u in result.get("uniform") or [] if u]
    if not uniform:
        raise SystemExit("No uniform genotype fits the FLOPs budget: raise search.flops_budget_fraction")
    best_uniform = max(uniform, key=lambda u: (u["fitness"], -u["costs"]["flops"]))
    if not result.get("random_best"):
        raise SystemExit("The random search evaluated no genotype within the budget")
    return {
        "uniform": {"genotype": best_uniform["genotype"], "supernet_fitness": best_uniform["fitness"],
                    "label": best_uniform.get("label")},
        "random": {"genotype": result["random_best"]["genotype"], "supernet_fitness": result["random_best"]["fitness"]},
        "evolution": {"genotype": result["genotype"], "supernet_fitness": result["fitness"]},
    }


def with_baselines(chosen: dict, arch) -> dict:
    """`chosen` plus the named baselines' genotypes (no supernet score: outside the searched space)."""
    return {**chosen, **{b: {"genotype": encode(baseline_genotype(arch, b)), "supernet_fitness": None,
                             "baseline": b} for b in BASELINE_METHODS}}


def run_seed(args, seed: int, bar) -> dict:
    import tensorflow as tf

    from larq_mobisearch import pipeline as P

    cfg = seed_config(args, seed)
    base = Path(args.out_dir) / f"seed{seed}"
    t0 = time.time()
    search_run = P.Run.open(str(base / "search"), cfg, verbose=0)
    stage_seconds = {}
    if not search_run.done("supernet"):
        bar.set_description(f"seed {seed}: supernet")
        t = time.time()
        tf.keras.utils.set_random_seed(cfg.supernet.seed)
        P.train_supernet(search_run, callbacks=[EpochBar(bar)])
        stage_seconds["supernet"] = round(time.time() - t, 1)
        tf.keras.backend.clear_session()
    else:
        bar.update(cfg.supernet.epochs)
    if not search_run.done("search"):
        bar.set_description(f"seed {seed}: search")
        t = time.time()
        search_run.verbose = 1  # the search's own progress bar
        P.search(search_run)
        search_run.verbose = 0
        stage_seconds["search"] = round(time.time() - t, 1)
        tf.keras.backend.clear_session()
    bar.update(1)
    with open(search_run.search_path("search", "result.json")) as f:
        result = json.load(f)
    arch = search_run.arch
    chosen = with_baselines(winners(result), arch)
    budget = (result.get("budgets") or {}).get("flops")
    out = {"seed": seed, "run_dir": str(base), "flops_budget": budget, "search_evaluations": result["evaluations"],
           "test_size": search_run.data.test_size, "methods": {}}
    done_by_genotype = {}
    for method in METHODS:
        genotype = chosen[method]["genotype"]
        info = dict(chosen[method])
        genes = decode(genotype)
        info["costs"] = count_costs(arch, genes).as_dict()
        if genotype in done_by_genotype:  # same genotype, same seed: the same retraining; not repeated
            info.update({k: v for k, v in out["methods"][done_by_genotype[genotype]].items()
                         if k in ("test_accuracy", "tflite", "tflite_bytes", "tflite_accuracy", "retrain_dir",
                                  "retrain_seconds")})
            info["same_as"] = done_by_genotype[genotype]
            out["methods"][method] = info
            bar.update(args.retrain_epochs + 1)
            continue
        run = P.Run.open(str(base / method), cfg, verbose=0)
        baseline = info.get("baseline")
        if not run.done("retrain"):
            bar.set_description(f"seed {seed}: retrain {method}")
            t = time.time()
            tf.keras.utils.set_random_seed(cfg.retrain.seed)
            P.retrain(run, None if baseline else genes, init_from_supernet=False, callbacks=[EpochBar(bar)],
                      baseline=baseline)
            stage_seconds[f"retrain_{method}"] = round(time.time() - t, 1)
            tf.keras.backend.clear_session()
        else:
            bar.update(args.retrain_epochs)
        if not run.done("export"):
            bar.set_description(f"seed {seed}: export {method}")
            P.export(run, allow_float_fallback=True if baseline else None)
            tf.keras.backend.clear_session()
        bar.update(1)
        with open(run.search_path("final", "done.json")) as f:
            final = json.load(f)
        with open(run.search_path("export.json")) as f:
            exported = json.load(f)
        if final["genotype"] != genotype:
            raise SystemExit(f"{run.run_dir} holds genotype {final['genotype']}, expected {genotype}; delete it")
        info.update(
            test_accuracy=final["test_accuracy"],
            retrain_seconds=final.get("seconds"),
            retrain_dir=run.run_dir,
            tflite=run.search_path("model.tflite"),
            tflite_bytes=exported.get("tflite_bytes"),
            tflite_accuracy=(exported.get("verify") or {}).get("tflite_accuracy"),
        )
        out["methods"][method] = info
        done_by_genotype[genotype] = method
    out["stage_seconds"] = stage_seconds
    out["seconds"] = round(time.time() - t0, 1)
    return out


def run_shared(args, bar) -> list:
    """One supernet, one search, the three winners retrained once per seed (see the module docstring)."""
    import tensorflow as tf

    from larq_mobisearch import pipeline as P

    overrides = list(args.overrides) + ([f"supernet.epochs={args.supernet_epochs}"] if args.supernet_epochs else [])
    if args.dataset:
        overrides.append(f"data.name={args.dataset}")
    run = common.shared_run(args.shared_supernet, args.preset, overrides, search="table1")
    t0 = time.time()
    stage_seconds = {}
    if not run.done("supernet"):
        bar.set_description("supernet")
        t = time.time()
        P.train_supernet(run, callbacks=[EpochBar(bar)])
        stage_seconds["supernet"] = round(time.time() - t, 1)
        tf.keras.backend.clear_session()
    else:
        bar.update(run.cfg.supernet.epochs)
    if not run.done("search"):
        bar.set_description("search")
        t = time.time()
        P.search(run)
        stage_seconds["search"] = round(time.time() - t, 1)
        tf.keras.backend.clear_session()
    bar.update(1)
    with open(run.search_path("search", "result.json")) as f:
        result = json.load(f)
    arch = run.arch
    chosen = with_baselines(winners(result), arch)
    per_seed = []
    for seed in args.seed_list:
        out = {"seed": seed, "run_dir": run.run_dir, "flops_budget": (result.get("budgets") or {}).get("flops"),
               "search_evaluations": result["evaluations"], "random_evaluations": result.get("random_evaluations"),
               "feasible": result.get("feasible"), "test_size": run.data.test_size, "methods": {}}
        for method in METHODS:
            genotype = chosen[method]["genotype"]
            info = dict(chosen[method], costs=count_costs(arch, decode(genotype)).as_dict())
            cfg = run.cfg.model_copy(update={
                "retrain": run.cfg.retrain.model_copy(update={"epochs": args.retrain_epochs, "seed": seed}),
                "data": run.cfg.data})
            r = P.Run.open(run.run_dir, cfg, verbose=0, search=f"t1-{method}-s{seed}")
            baseline = info.get("baseline")
            if not r.done("retrain"):
                bar.set_description(f"seed {seed}: retrain {method}")
                t = time.time()
                tf.keras.utils.set_random_seed(seed)
                P.retrain(r, None if baseline else decode(genotype), init_from_supernet=False,
                          callbacks=[EpochBar(bar)], baseline=baseline)
                stage_seconds[f"retrain_{method}_s{seed}"] = round(time.time() - t, 1)
                tf.keras.backend.clear_session()
            else:
                bar.update(args.retrain_epochs)
            if not r.done("export"):
                P.export(r, allow_float_fallback=True if baseline else None)
                tf.keras.backend.clear_session()
            bar.update(1)
            with open(r.search_path("final", "done.json")) as f:
                final = json.load(f)
            with open(r.search_path("export.json")) as f:
                exported = json.load(f)
            info.update(test_accuracy=final["test_accuracy"], retrain_seconds=final.get("seconds"),
                        retrain_dir=r.search_path(), tflite=r.search_path("model.tflite"),
                        tflite_bytes=exported.get("tflite_bytes"),
                        tflite_accuracy=(exported.get("verify") or {}).get("tflite_accuracy"))
            out["methods"][method] = info
        out["stage_seconds"] = stage_seconds
        out["seconds"] = round(time.time() - t0, 1)
        per_seed.append(out)
        tqdm_write(f"seed {seed}: " + "; ".join(f"{m} {v['genotype']} test {v['test_accuracy']:.4f}"
                                                for m, v in out["methods"].items()))
    return per_seed


def tqdm_write(text: str) -> None:
    from tqdm import tqdm

    tqdm.write(text, file=sys.stderr)


def aggregate(per_seed: list) -> dict:
    """Mean +- sample std over seeds of test top-1, FLOPs, latency (and supernet fitness) per method."""
    agg = {}
    for method in METHODS:
        vals = [s["methods"][method] for s in per_seed if method in s["methods"]]
        if not vals:
            continue
        entry = {"n": len(vals)}
        for key, get in (
            ("test_accuracy", lambda v: v["test_accuracy"]),
            ("supernet_fitness", lambda v: v.get("supernet_fitness")),
            ("flops", lambda v: v["costs"]["flops"]),
            ("latency_ms", lambda v: v.get("latency_ms")),
        ):
            xs = [get(v) for v in vals if get(v) is not None]
            if xs:
                m, s = common.mean_std(xs)
                entry[key] = {"mean": m, "std": s, "values": xs}
        agg[method] = entry
    return agg


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    from tqdm import tqdm

    import tensorflow as tf  # after larq_mobisearch (Keras 2)

    tf.get_logger().setLevel("ERROR")
    machine = L.machine_info(1)
    cfg0 = seed_config(args, args.seed_list[0])
    common.print_machine(machine)
    print(f"Settings: preset {args.preset}, data {cfg0.data.name} ({cfg0.data.image_size}px), module "
          f"{cfg0.model.module} width {cfg0.model.width_multiplier:g}, space {cfg0.model.space}; supernet "
          f"{cfg0.supernet.epochs} epochs; search population {cfg0.search.population} x {cfg0.search.iterations} "
          f"generations, FLOPs budget fraction {cfg0.search.flops_budget_fraction}; retraining "
          f"{cfg0.retrain.epochs} epochs (preset: more; see --retrain-epochs); seeds {args.seed_list}\n", flush=True)

    from larq_mobisearch.data import DatasetNotAvailableError

    per_seed = []
    if args.shared_supernet:
        total_steps = cfg0.supernet.epochs + 1 + len(args.seed_list) * len(METHODS) * (args.retrain_epochs + 1)
        with tqdm(total=total_steps, desc="ablation", unit="step", file=sys.stderr) as bar:
            try:
                per_seed = run_shared(args, bar)
            except DatasetNotAvailableError as exc:
                raise SystemExit(f"Dataset not available: {exc}") from None
    total_steps = len(args.seed_list) * (cfg0.supernet.epochs + 1 + len(METHODS) * (args.retrain_epochs + 1))
    with tqdm(total=0 if per_seed else total_steps, desc="ablation", unit="step", file=sys.stderr,
              disable=bool(per_seed)) as bar:
        for seed in ([] if per_seed else args.seed_list):
            try:
                per_seed.append(run_seed(args, seed, bar))
            except DatasetNotAvailableError as exc:
                raise SystemExit(f"Dataset not available: {exc}") from None
            s = per_seed[-1]
            tqdm.write(f"seed {seed}: " + "; ".join(
                f"{m} {v['genotype']} test {v['test_accuracy']:.4f}" for m, v in s["methods"].items()
            ) + f" ({s['seconds']:.0f} s)", file=sys.stderr)

    # Latency: every distinct retrained .tflite timed together, round-robin
    fbs = {}
    for s in per_seed:
        for method, v in s["methods"].items():
            if "same_as" not in v:
                fbs[f"seed{s['seed']}/{method}"] = v["tflite"]
    print(f"Timing {len(fbs)} retrained models round-robin (LCE interpreter, 1 thread, {args.runs} rounds) ...",
          flush=True)
    stats = L.measure_latencies(fbs, num_threads=1, runs=args.runs, warmup=10, progress=True)
    for s in per_seed:
        for method, v in s["methods"].items():
            src = v.get("same_as", method)
            st = stats[f"seed{s['seed']}/{src}"]
            v["latency_ms"] = st.mean_ms
            v["latency"] = st.as_dict()

    agg = aggregate(per_seed)
    print_tables(per_seed, agg)
    total = time.time() - t_start
    print(f"\nTotal time: {total:.0f} s")
    if args.json:
        out = {
            "benchmark": "ablation",
            "command": common.command_line(),
            "machine": machine,
            "load_average_end": common.load_average(),
            "settings": {
                "preset": args.preset, "dataset": cfg0.data.name, "image_size": cfg0.data.image_size,
                "module": cfg0.model.module, "width_multiplier": cfg0.model.width_multiplier,
                "space": cfg0.model.space, "supernet_epochs": cfg0.supernet.epochs,
                "retrain_epochs": cfg0.retrain.epochs, "search_population": cfg0.search.population,
                "search_iterations": cfg0.search.iterations,
                "flops_budget_fraction": cfg0.search.flops_budget_fraction, "seeds": args.seed_list,
                "overrides": list(args.overrides), "latency_runs": args.runs, "latency_threads": 1,
                "shared_supernet": args.shared_supernet,
                "latency_statistic": "mean", "split_seed": cfg0.data.split_seed,
                "test_size": per_seed[0].get("test_size") if per_seed else None,
            },
            "per_seed": per_seed,
            "aggregate": agg,
            "seconds": round(total, 1),
        }
        atomic_write_json(args.json, out, indent=1)
        print(f"Wrote {args.json}")
    return 0


def print_tables(per_seed, agg) -> None:
    print("\nPer seed (test top-1 of the retrained model; supernet = held-out top-1 on the supernet during search):")
    print(f"  {'seed':<5} {'method':<42} {'genotype':<27} {'supernet':>8} {'test':>7} {'FLOPs':>9} {'latency':>9}")
    for s in per_seed:
        for method in METHODS:
            v = s["methods"][method]
            fit = "-" if v.get("supernet_fitness") is None else f"{v['supernet_fitness']:.4f}"
            print(f"  {s['seed']:<5} {METHOD_LABELS[method]:<42} {v['genotype']:<27} {fit:>8} "
                  f"{v['test_accuracy']:7.4f} {v['costs']['flops']:9.4g} {v['latency_ms']:7.3f}ms"
                  + (f"  (= {v['same_as']})" if v.get("same_as") else ""))
    budget = per_seed[0].get("flops_budget")
    n = len(per_seed)
    print(f"\nTable 1 on this data (mean ± std over {n} seeds; FLOPs budget {budget:.4g}; host latency, x86 LCE, "
          "1 thread):")
    print(f"  {'method':<42} {'test top-1 (%)':>16} {'FLOPs':>22} {'latency (ms)':>16} {'supernet top-1 (%)':>19}")
    for method in METHODS:
        a = agg.get(method)
        if not a:
            continue
        acc, fl, lat, fit = a["test_accuracy"], a["flops"], a["latency_ms"], a.get("supernet_fitness")
        fit_text = f"{fit['mean'] * 100:10.2f} ± {fit['std'] * 100:5.2f}" if fit else f"{'-':>18}"
        print(f"  {METHOD_LABELS[method]:<42} {acc['mean'] * 100:8.2f} ± {acc['std'] * 100:5.2f} "
              f"{fl['mean']:12.4g} ± {fl['std']:8.3g} {lat['mean']:8.3f} ± {lat['std']:5.3f} {fit_text}")
    if "mobinet" in agg:
        print("  (MoBiNet-style: every binary 3x3 conv depthwise; LCE cannot lower those, so its .tflite keeps them "
              "as float ops: exported with allow_float_fallback)")


if __name__ == "__main__":
    sys.exit(main())
