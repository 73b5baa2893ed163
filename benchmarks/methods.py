"""Related methods as options of the same builder (issue 15): ReActNet's RSign, RPReLU, distributional loss and
two-step training, larq's Bop, and the MoBiNet-style depthwise baseline, on one genotype at the same epochs.

Rows (cumulative where it says "+"), each retrained from scratch with `larq_mobisearch.pipeline.retrain` for
every seed, exported through LCE (`pipeline.export`, verified against Keras) and tested on the whole test
split (Fashion-MNIST: the official 10,000 test images):

- ``baseline``: ApproxSign, Adam, cross-entropy (the paper);
- ``rsign``: + RSign (``model.activation=rsign``);
- ``rsign_rprelu``: + RPReLU (``model.nonlinearity=rprelu``);
- ``distill``: + distributional loss (``retrain.loss=distributional``) from the float twin teacher;
- ``two_step``: + ReActNet's two steps (``retrain.two_step=true``): by default the same total epochs split
  in half (step 1 real-valued weights, step 2 binary), ``--two-step-full`` gives each step all the epochs
  as ReActNet does;
- ``bop``: the baseline with Bop for the binary kernels in place of Adam (``retrain.optimizer=bop``);
- ``mobinet``: the MoBiNet-style baseline (every binary 3x3 conv depthwise; the paper space), ApproxSign and
  Adam; LCE cannot lower its depthwise binary convs, so its export keeps them as float ops.

Then every exported ``.tflite`` is timed together, round-robin (`larq_mobisearch.deploy.
measure_latencies`, LCE interpreter, 1 thread), so the latency cost of the float ops each method adds (the
SUB before each `LceQuantize` of RSign; SUB, PRELU, ADD of each RPReLU) is measured under the same
conditions; each row's op census is compared with the baseline's. FLOPs (BOPs/64 + float FLOPs) count conv
and dense MACs only, so the element-wise ops these methods add do not change them.

Run directories: ``<out-dir>/<method>/s<seed>/`` (one run directory per method and seed; the seed sets
``data.seed`` and ``retrain.seed``), and ``<out-dir>/teacher/`` for the one float-twin teacher both
distillation rows read (``teacher.source=path``). A killed run resumes where it stopped (finished
retrainings and exports are skipped, an interrupted one resumes from its backup).

    python benchmarks/methods.py --preset fashion --json benchmarks/results/methods.json   # the full benchmark
    python benchmarks/methods.py --preset digits --quick --json /tmp/methods.json         # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import larq_mobisearch  # noqa: E402,F401  (selects Keras 2 before TensorFlow is imported)
from larq_mobisearch import deploy as L  # noqa: E402
from larq_mobisearch.fileio import atomic_write_json  # noqa: E402
from larq_mobisearch.nn.space import decode, encode  # noqa: E402
from larq_mobisearch.nn.specs import baseline_genotype  # noqa: E402
from larq_mobisearch.search.costs import count_costs  # noqa: E402

import common  # noqa: E402  (benchmarks/common.py)

#: (key, label, config overrides, baseline name or None). Overrides of "+" rows include the rows before.
_REACT = ["model.activation=rsign", "model.nonlinearity=rprelu"]
METHODS = (
    ("baseline", "baseline (ApproxSign, Adam)", [], None),
    ("rsign", "+ RSign", ["model.activation=rsign"], None),
    ("rsign_rprelu", "+ RSign + RPReLU", _REACT, None),
    ("distill", "+ distributional loss", _REACT + ["retrain.loss=distributional"], None),
    ("two_step", "+ two-step", _REACT + ["retrain.loss=distributional", "retrain.two_step=true"], None),
    ("bop", "Bop in place of Adam", ["retrain.optimizer=bop"], None),
    ("mobinet", "MoBiNet-style (depthwise)", [], "mobinet"),
)
METHOD_KEYS = tuple(m[0] for m in METHODS)
DISTILLING = ("distill", "two_step")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="fashion", help="config preset (default fashion; digits for a smoke run)")
    p.add_argument("--seeds", default="0,1", help="comma-separated seeds (default 0,1)")
    p.add_argument("--epochs", type=int, default=None,
                   help="retraining epochs of every row (default: the preset's retrain.epochs; 2 with --quick)")
    p.add_argument("--teacher-epochs", type=int, default=None, help="epochs of the float teacher (default: --epochs)")
    p.add_argument("--groups", type=int, default=1, help="uniform genotype groups=G of the run's space (default 1)")
    p.add_argument("--genotype", default=None, help="genotype of every row but mobinet (default: --groups)")
    p.add_argument("--methods", default=",".join(METHOD_KEYS), help=f"rows to run (default all: {','.join(METHOD_KEYS)})")
    p.add_argument("--two-step-full", action="store_true",
                   help="two-step: each step trains --epochs epochs (ReActNet), instead of splitting them in half")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config overrides for every row, as for `mobisearch run --set`")
    p.add_argument("--runs", type=int, default=200, help="round-robin timing rounds")
    p.add_argument("--quick", action="store_true", help="smoke run: 2 epochs (teacher 3), 30 timing rounds")
    p.add_argument("--out-dir", default="runs/benchmarks/methods", help="run directories (one per method and seed)")
    p.add_argument("--json", default=None, help="also write all results to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.epochs = args.epochs or 2
        args.teacher_epochs = args.teacher_epochs or 3  # a 1-epoch teacher's BatchNorm statistics are not ready
        args.runs = min(args.runs, 30)
        args.overrides = ["export.verify_samples=64"] + args.overrides
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.seed_list or len(set(args.seed_list)) != len(args.seed_list):
        p.error(f"--seeds must be distinct integers, received {args.seeds!r}")
    args.method_list = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.method_list if m not in METHOD_KEYS]
    if bad or not args.method_list:
        p.error(f"--methods: unknown {bad}; allowed: {list(METHOD_KEYS)}")
    return args


def base_overrides(args, cfg0) -> list:
    epochs = args.epochs or cfg0.retrain.epochs
    return [f"retrain.epochs={epochs}", f"teacher.epochs={args.teacher_epochs or epochs}",
            "retrain.init_from_supernet=false"] + list(args.overrides)


def method_config(args, key: str, seed: int, teacher_path: str):
    from larq_mobisearch.config import load_config

    cfg0 = load_config(preset=args.preset, overrides=args.overrides)
    _, _, extra, _ = next(m for m in METHODS if m[0] == key)
    overrides = base_overrides(args, cfg0) + list(extra) + [f"data.seed={seed}", f"retrain.seed={seed}"]
    if key in DISTILLING:
        overrides += ["teacher.source=path", f"teacher.path={teacher_path}"]
    if key == "two_step":
        epochs = args.epochs or cfg0.retrain.epochs
        if args.two_step_full:
            overrides += [f"retrain.step1_epochs={epochs}"]
        else:  # the same total epochs as every other row
            step1 = max(1, epochs // 2)
            overrides += [f"retrain.step1_epochs={step1}", f"retrain.epochs={max(1, epochs - step1)}"]
    return load_config(preset=args.preset, overrides=overrides)


def ensure_teacher(args, bar) -> dict:
    """The float twin (with RSign + RPReLU, the distilling rows' options) trained once in <out>/teacher/."""
    import tensorflow as tf

    from larq_mobisearch import pipeline as P
    from larq_mobisearch.config import load_config

    from ablation import EpochBar

    cfg0 = load_config(preset=args.preset, overrides=args.overrides)
    cfg = load_config(preset=args.preset, overrides=base_overrides(args, cfg0) + _REACT +
                      ["retrain.loss=distributional"])
    run = P.Run.open(str(Path(args.out_dir) / "teacher"), cfg, verbose=0, search=None)
    if not run.done("teacher"):
        bar.set_description("teacher (float twin)")
        P.train_teacher(run, callbacks=[EpochBar(bar)])
        tf.keras.backend.clear_session()
    else:
        bar.update(cfg.teacher.epochs)
    with open(run.path("teacher", "done.json")) as f:
        done = json.load(f)
    return {**done, "path": os.path.abspath(run.path("teacher", "model.h5")), "run_dir": run.run_dir}


def run_one(args, key: str, seed: int, teacher_path: str, bar) -> dict:
    import tensorflow as tf

    from larq_mobisearch import pipeline as P

    from ablation import EpochBar

    cfg = method_config(args, key, seed, teacher_path)
    _, label, _, baseline = next(m for m in METHODS if m[0] == key)
    run = P.Run.open(str(Path(args.out_dir) / key / f"s{seed}"), cfg, verbose=0)
    arch = run.arch
    if baseline:
        genes = baseline_genotype(arch, baseline)
    elif args.genotype:
        genes = run.space.validate(decode(args.genotype))
    else:
        genes = run.space.uniform(args.groups)
    epochs = cfg.retrain.epochs + ((cfg.retrain.step1_epochs or cfg.retrain.epochs) if cfg.retrain.two_step else 0)
    if not run.done("retrain"):
        bar.set_description(f"{key} seed {seed}: retrain")
        tf.keras.utils.set_random_seed(cfg.retrain.seed)
        P.retrain(run, None if baseline else genes, baseline=baseline, callbacks=[EpochBar(bar)])
        tf.keras.backend.clear_session()
    else:
        bar.update(epochs)
    if not run.done("export"):
        bar.set_description(f"{key} seed {seed}: export")
        P.export(run, allow_float_fallback=True if baseline else None)
        tf.keras.backend.clear_session()
    bar.update(1)
    with open(run.search_path("final", "done.json")) as f:
        final = json.load(f)
    with open(run.search_path("export.json")) as f:
        exported = json.load(f)
    if final["genotype"] != encode(genes):
        raise SystemExit(f"{run.run_dir} holds genotype {final['genotype']}, expected {encode(genes)}; delete it")
    verify = exported.get("verify") or {}
    return {"seed": seed, "genotype": final["genotype"], "test_accuracy": final["test_accuracy"],
            "step1_test_accuracy": (final.get("step1") or {}).get("test_accuracy"), "epochs": epochs,
            "retrain_seconds": final.get("seconds"), "tflite": run.search_path("model.tflite"),
            "tflite_bytes": exported.get("tflite_bytes"), "tflite_accuracy": verify.get("tflite_accuracy"),
            "max_abs_logit_diff_clear": verify.get("max_abs_diff_clear"),
            "num_lce_bconv": exported.get("num_lce_bconv"), "num_binary_convs": exported.get("num_binary_convs"),
            "float_fallback_layers": sorted(exported.get("float_fallback_layers") or {}),
            "op_census": exported.get("op_census"), "costs": count_costs(arch, genes).as_dict(),
            "run_dir": run.run_dir, "label": label}


def census_delta(census: dict, reference: dict) -> dict:
    """Ops of `census` beyond `reference` (positive counts only; what a method adds)."""
    keys = set(census) | set(reference)
    return {k: census.get(k, 0) - reference.get(k, 0) for k in sorted(keys) if census.get(k, 0) != reference.get(k, 0)}


def summarize(rows_by_method: dict) -> list:
    """One entry per method: per-seed rows and mean +- std of test top-1 and latency."""
    out = []
    base = rows_by_method.get("baseline")
    for key, label, overrides, baseline in METHODS:
        rows = rows_by_method.get(key)
        if not rows:
            continue
        entry = {"method": key, "label": label, "overrides": overrides, "baseline": baseline,
                 "genotype": rows[0]["genotype"], "costs": rows[0]["costs"], "epochs": rows[0]["epochs"],
                 "per_seed": rows}
        for name in ("test_accuracy", "latency_ms", "tflite_accuracy"):
            xs = [r[name] for r in rows if r.get(name) is not None]
            if xs:
                m, s = common.mean_std(xs)
                entry[name] = {"mean": m, "std": s, "values": xs}
        ratios = [r["paired_to_baseline"]["median"] for r in rows if r.get("paired_to_baseline")]
        if ratios:
            entry["latency_ratio_to_baseline"] = sum(ratios) / len(ratios)
        if base:
            entry["ops_added"] = census_delta(rows[0]["op_census"] or {}, base[0]["op_census"] or {})
        out.append(entry)
    return out


def print_table(summary: list, teacher: dict) -> None:
    print("\nPer seed (test top-1 of the retrained Keras model on the whole test split; tflite: top-1 of the .tflite "
          "on the verify samples; latency: median, LCE interpreter, 1 thread; vs base: median of the per-round "
          "ratios to the baseline of the same seed):")
    print(f"  {'method':<28} {'seed':>4} {'test':>7} {'tflite':>7} {'median':>9} {'vs base':>8}  genotype")
    for e in summary:
        for r in e["per_seed"]:
            ratio = r.get("paired_to_baseline")
            ratio_text = f"{ratio['median']:.3f}x" if ratio else "-"
            tflite = "-" if r.get("tflite_accuracy") is None else f"{r['tflite_accuracy']:.4f}"
            print(f"  {e['label']:<28} {r['seed']:>4} {r['test_accuracy']:7.4f} {tflite:>7} {r['latency_ms']:7.3f}ms "
                  f"{ratio_text:>8}  {r['genotype']}")
    if teacher:
        print(f"\nTeacher (float twin, RSign + RPReLU options, groups 1): test top-1 {teacher['test_accuracy']:.4f} "
              f"after {teacher['epochs']} epochs")
    print("\nMean ± std over seeds:")
    print(f"  {'method':<28} {'epochs':>6} {'test top-1 (%)':>16} {'FLOPs':>10} {'latency (ms)':>16} {'vs base':>8}  "
          f"float ops added vs baseline (whole network)")
    for e in summary:
        acc, lat = e.get("test_accuracy"), e.get("latency_ms")
        ratio = e.get("latency_ratio_to_baseline")
        ratio_text = f"{ratio:.3f}x" if ratio else "-"
        added = ", ".join(f"{k} {v:+d}" for k, v in (e.get("ops_added") or {}).items()) or "-"
        print(f"  {e['label']:<28} {e['epochs']:>6} {acc['mean'] * 100:8.2f} ± {acc['std'] * 100:5.2f} "
              f"{e['costs']['flops']:10.4g} {lat['mean']:8.3f} ± {lat['std']:5.3f} {ratio_text:>8}  {added}")
    if any(e["method"] == "mobinet" for e in summary):
        print("  (MoBiNet-style: LCE cannot lower its depthwise binary convs; its .tflite keeps them as float ops "
              "(LceQuantize + LceDequantize + PADV2 + CONV_2D), exported with allow_float_fallback)")


def main(argv=None) -> int:
    args = parse_args(argv)
    t_start = time.time()
    from tqdm import tqdm

    import tensorflow as tf  # after larq_mobisearch (Keras 2)

    from larq_mobisearch.data import DatasetNotAvailableError

    tf.get_logger().setLevel("ERROR")
    machine = L.machine_info(1)
    common.print_machine(machine)
    cfg0 = method_config(args, "baseline", args.seed_list[0], "")
    epochs = cfg0.retrain.epochs
    print(f"Settings: preset {args.preset}, data {cfg0.data.name} ({cfg0.data.image_size}px), module "
          f"{cfg0.model.module} width {cfg0.model.width_multiplier:g}, space {cfg0.model.space}; genotype "
          f"{args.genotype or f'uniform groups={args.groups}'}; {epochs} retraining epochs per row (two-step: "
          f"{'each step ' + str(epochs) if args.two_step_full else 'split in half'}); teacher "
          f"{cfg0.teacher.epochs} epochs; seeds {args.seed_list}; methods {args.method_list}\n", flush=True)
    need_teacher = any(m in DISTILLING for m in args.method_list)
    total = (cfg0.teacher.epochs if need_teacher else 0) + len(args.seed_list) * len(args.method_list) * (2 * epochs + 1)
    rows_by_method, teacher = {}, None
    with tqdm(total=total, desc="methods", unit="epoch", file=sys.stderr) as bar:
        try:
            if need_teacher:
                teacher = ensure_teacher(args, bar)
            for key in args.method_list:
                for seed in args.seed_list:
                    row = run_one(args, key, seed, teacher["path"] if teacher else "", bar)
                    rows_by_method.setdefault(key, []).append(row)
                    tqdm.write(f"{key} seed {seed}: test {row['test_accuracy']:.4f}", file=sys.stderr)
        except DatasetNotAvailableError as exc:
            raise SystemExit(f"Dataset not available: {exc}") from None

    fbs = {f"{key}/s{r['seed']}": r["tflite"] for key, rows in rows_by_method.items() for r in rows}
    print(f"Timing {len(fbs)} models round-robin (LCE interpreter, 1 thread, {args.runs} rounds) ...", flush=True)
    times = {}
    stats = L.measure_latencies(fbs, num_threads=1, runs=args.runs, warmup=10, progress=True, times_out=times)
    for key, rows in rows_by_method.items():
        for r in rows:
            name = f"{key}/s{r['seed']}"
            r["latency_ms"] = stats[name].median_ms  # robust to the outliers of a shared host
            r["latency"] = stats[name].as_dict()
            ref = f"baseline/s{r['seed']}"
            r["paired_to_baseline"] = common.paired_ratio(times[name], times[ref]) if ref in times else None
    summary = summarize(rows_by_method)
    print_table(summary, teacher)
    seconds = time.time() - t_start
    print(f"\nTotal time: {seconds:.0f} s")
    if args.json:
        out = {
            "benchmark": "methods",
            "command": common.command_line(),
            "machine": machine,
            "load_average_end": common.load_average(),
            "settings": {"preset": args.preset, "dataset": cfg0.data.name, "image_size": cfg0.data.image_size,
                         "module": cfg0.model.module, "width_multiplier": cfg0.model.width_multiplier,
                         "space": cfg0.model.space, "genotype": args.genotype, "groups": args.groups,
                         "retrain_epochs": epochs, "two_step_full": args.two_step_full,
                         "teacher_epochs": cfg0.teacher.epochs, "seeds": args.seed_list, "methods": args.method_list,
                         "overrides": list(args.overrides), "latency_runs": args.runs, "latency_threads": 1,
                         "latency_statistic": "median", "learning_rate": cfg0.retrain.learning_rate,
                         "schedule": cfg0.retrain.schedule, "batch_size": cfg0.data.batch_size,
                         "bop_threshold": cfg0.retrain.bop_threshold, "bop_gamma": cfg0.retrain.bop_gamma},
            "teacher": teacher,
            "methods": summary,
            "seconds": round(seconds, 1),
        }
        atomic_write_json(args.json, out, indent=1)
        print(f"Wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
