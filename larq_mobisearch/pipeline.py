"""The whole method as stages over one run directory (paper Algorithm 2, Figure 2).

    supernet  -> search -> retrain -> export -> report
    (random     (Algorithm 1 (winner    (LCE flatbuffer,
     genotype    on the       from       verified vs
     per step)   supernet)    scratch)   Keras)

Everything between stages is a file in the run directory, so any stage can run alone, a finished stage is
skipped and an interrupted one resumes:

- ``config.json``: the resolved `RunConfig` (a run directory belongs to one config);
- ``supernet/``: BackupAndRestore state, ``history.csv``, ``weights.h5``, ``done.json``;
- ``search_state.json`` (resumable evolutionary search), ``search/result.json`` (winner, baselines);
- ``final/``: the retrained winner (same layout as ``supernet/``);
- ``model.tflite`` and ``export.json``; ``report.json``, ``report.md`` and ``plots/*.png``.

Training and the search run on the `tf.distribute` strategy of ``cfg.distribute`` (`distribute.py`): the
supernet and the retraining are data parallel, the search shards candidate evaluation across workers.
In a multi-worker cluster every worker runs the same stages; only the chief writes the run directory
(other workers keep their copies under ``worker-<index>/``), and workers wait for each other at the end of
every stage. Export and the report are the chief's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Sequence

from . import plots
from .config import RunConfig, config_from_dict, config_to_dict, save_config
from .search.costs import FlopsCostModel, count_costs
from .fileio import atomic_write_json, atomic_write_text
from .nn.space import Genotype, SearchSpace, decode, encode
from .nn.specs import Architecture, architecture

log = logging.getLogger(__name__)

STAGES = ("supernet", "search", "retrain", "export")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (other config, missing earlier stage, corrupt file)."""


def _read_json(path: str, what: str) -> Dict[str, Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise RunDirError(f"{what} not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{what} at {path} is corrupt ({exc}); delete it to redo that stage") from None


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {a!r} in the run directory, {b!r} now"]


def sha256_file(path: str, limit: Optional[int] = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:limit]


@dataclass
class Run:
    """A run directory with its config; loads the dataset lazily and once."""

    cfg: RunConfig
    run_dir: str
    verbose: int = 1
    _data: Any = field(default=None, repr=False)
    _strategy: Any = field(default=None, repr=False)

    @classmethod
    def open(cls, run_dir: str, cfg: Optional[RunConfig] = None, verbose: int = 1) -> "Run":
        """Open (or create) `run_dir`. With `cfg`, it must match the saved config, if there is one."""
        path = os.path.join(run_dir, "config.json")
        if os.path.exists(path):
            saved = _read_json(path, "Run config")
            if cfg is not None:
                try:  # compare what the run computes; `distribute` (how it runs) may change on resumption
                    saved_tree = config_to_dict(config_from_dict(saved))
                except ValueError:
                    saved_tree = dict(saved)
                saved_tree.pop("distribute", None)
                new_tree = config_to_dict(cfg)
                new_tree.pop("distribute", None)
                diff = _diff_keys(saved_tree, new_tree)
                if diff:
                    raise RunDirError(
                        f"Run directory {run_dir} was made with a different config:\n  " + "\n  ".join(diff[:8])
                        + "\nUse another --run-dir, or delete this one to start over."
                    )
            else:
                try:
                    cfg = config_from_dict(saved)
                except ValueError as exc:
                    raise RunDirError(f"Run config {path} is invalid: {exc}") from None
        elif cfg is None:
            raise RunDirError(f"{run_dir} is not a run directory (no config.json); start one with `mobisearch run`")
        else:
            os.makedirs(run_dir, exist_ok=True)
            save_config(cfg, path)
        return cls(cfg, run_dir, verbose)

    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    @property
    def strategy(self):
        """The `tf.distribute` strategy of ``cfg.distribute`` (created before any data is loaded)."""
        if self._strategy is None:
            from .distribute import get_strategy

            self._strategy = get_strategy(self.cfg.distribute)
        return self._strategy

    @property
    def worker(self):
        from .distribute import worker_info

        return worker_info(self.strategy)

    @property
    def sync_batchnorm(self) -> bool:
        return bool(self.cfg.distribute.sync_batchnorm) and self.strategy.num_replicas_in_sync > 1

    def begin_stage(self, seed: int) -> None:
        """Seed TensorFlow, NumPy and Python from the config and rebuild the data pipelines.

        tf.data resolves op seeds against the global seed when a pipeline is built, so without this a stage
        would compute something else when it runs after another stage in the same process (or on another
        worker) than when it runs alone.
        """
        import tensorflow as tf

        tf.keras.utils.set_random_seed(int(seed))
        self._data = None  # rebuilt on next use; `data` creates the strategy first

    def barrier(self) -> None:
        """Wait for every worker (multi-worker runs; no-op otherwise)."""
        from .distribute import barrier

        barrier(self.strategy)

    @property
    def data(self):
        if self._data is None:
            from .data import load_dataset

            if self.cfg.distribute.strategy != "default":
                self.strategy  # a multi-worker strategy must exist before TensorFlow runs any op

            self._data = load_dataset(self.cfg.data)
        return self._data

    @property
    def arch(self) -> Architecture:
        d = self.data
        return architecture(self.cfg.model.module, d.input_shape, d.num_classes, self.cfg.model.width_multiplier)

    @property
    def space(self) -> SearchSpace:
        return SearchSpace(self.arch, self.cfg.model.space)

    def flops_budget(self) -> Optional[float]:
        """`search.flops_budget`, else `search.flops_budget_fraction` x FLOPs of the uniform g=1 model."""
        s = self.cfg.search
        if s.flops_budget is not None or s.flops_budget_fraction is None:
            return s.flops_budget
        return float(s.flops_budget_fraction * count_costs(self.arch, 1).flops)

    def search_config(self):
        """The search settings with the FLOPs budget resolved to an absolute number."""
        import dataclasses

        return dataclasses.replace(self.cfg.search, flops_budget=self.flops_budget())

    def flops_model(self) -> FlopsCostModel:
        space = self.space
        return FlopsCostModel(space.arch, space.candidates)

    def latency_model(self):
        if not self.cfg.search.latency_table:
            return None
        from .deploy.latency import LatencyCostModel, load_latency_table

        table = load_latency_table(self.cfg.search.latency_table)
        return LatencyCostModel(table, self.arch, self.space.candidates, threads=self.cfg.search.latency_threads)

    def done(self, stage: str) -> bool:
        return os.path.exists(self._marker(stage))

    def _marker(self, stage: str) -> str:
        return {
            "supernet": self.path("supernet", "done.json"),
            "search": self.path("search", "result.json"),
            "retrain": self.path("final", "done.json"),
            "export": self.path("export.json"),
        }[stage]


# ----------------------------------------------------------------------------------------------------------
# Stage 1: supernet


def train_supernet(run: Run, callbacks: Sequence = ()):
    from .distribute import check_global_batch
    from .nn.supernet import RandomGenotype, build_supernet
    from .training import fit

    run.begin_stage(run.cfg.supernet.seed)
    strategy = run.strategy
    cfg, data, space = run.cfg, run.data, run.space
    check_global_batch(cfg.data.batch_size, strategy)
    out = run.path("supernet")
    with strategy.scope():
        supernet = build_supernet(space, sync_batchnorm=run.sync_batchnorm)
    budget = run.flops_budget() if cfg.supernet.flops_bounded_sampling else None
    sampler = RandomGenotype(space, seed=cfg.supernet.seed, cost_model=run.flops_model() if budget else None,
                             budget=budget, max_tries=cfg.search.max_tries)
    start = time.time()
    history = fit(supernet, data.train_from, cfg.supernet, out, steps_per_epoch=data.steps_per_epoch,
                  callbacks=[sampler, *callbacks], verbose=run.verbose)
    if run.worker.is_chief:
        plots.plot_training_history(history, run.path("plots", "supernet_training.png"), title="Supernet training")
        atomic_write_json(os.path.join(out, "done.json"),
                          {"epochs": cfg.supernet.epochs, "seconds": round(time.time() - start, 1),
                           "final_train_accuracy": (history.get("accuracy") or [None])[-1],
                           "replicas": strategy.num_replicas_in_sync, "workers": run.worker.count})
    run.barrier()  # the other workers go on once the chief's weights and marker are written
    return supernet


def load_supernet(run: Run):
    from .nn.supernet import build_supernet

    if not run.done("supernet"):
        raise RunDirError(f"No trained supernet in {run.run_dir}; run `mobisearch supernet` first")
    supernet = build_supernet(run.space)
    supernet.load_weights(run.path("supernet", "weights.h5"))
    return supernet


# ----------------------------------------------------------------------------------------------------------
# Stage 2: search


def search(run: Run) -> Dict[str, Any]:
    from .distribute import ShardedEvaluator
    from .search import constraints_from_config, evolutionary_search, random_search, uniform_baselines
    from .training import SupernetEvaluator

    run.begin_stage(run.cfg.search.seed)
    worker = run.worker
    cfg, data, space = run.cfg, run.data, run.space
    supernet = load_supernet(run)
    local = SupernetEvaluator(
        supernet, data.recalibration_batches(cfg.search.recalibration_batches), data.eval_batches("holdout")
    )
    # Each worker scores its share of every generation; the scores are gathered with one all-reduce.
    evaluator = ShardedEvaluator(local, run.strategy) if worker.count > 1 else local
    scfg = run.search_config()
    constraints = constraints_from_config(space, scfg, latency_model=run.latency_model())
    context = "|".join([
        sha256_file(run.path("supernet", "weights.h5"), 16), cfg.data.name, str(cfg.data.image_size),
        str(cfg.data.holdout_fraction), str(cfg.data.split_seed), str(cfg.model.width_multiplier),
    ])
    start = time.time()
    evo = evolutionary_search(space, evaluator, constraints, scfg, state_path=run.path("search_state.json"),
                              context=context, progress=run.verbose > 0 and worker.is_chief,
                              write_state=worker.is_chief)
    rnd = random_search(space, evaluator, constraints, scfg,
                        num_samples=scfg.random_baseline_samples or evo.num_evaluations,
                        progress=run.verbose > 0 and worker.is_chief)
    uni = uniform_baselines(space, evaluator, constraints)
    local.restore()
    if evo.best is None:
        raise RunDirError("The search evaluated no genotype within the budget")
    result = {
        "genotype": encode(evo.best_genotype),
        "fitness": evo.best_fitness,
        "costs": evo.best_costs,
        "evaluations": evo.num_evaluations,
        "seconds": round(time.time() - start, 1),
        "random_best": _candidate_summary(rnd.best),
        "uniform": [_candidate_summary(c) for c in uni.evaluated],
        "budgets": {"flops": scfg.flops_budget, "latency_ms": scfg.latency_budget_ms},
        "workers": worker.count,
    }
    if not worker.is_chief:
        run.barrier()  # the chief writes the results
        return result
    os.makedirs(run.path("search"), exist_ok=True)
    for name, res in (("evolution", evo), ("random", rnd), ("uniform", uni)):
        res.save(run.path("search", f"{name}.json"))
    plots.plot_search_history(evo, run.path("plots", "search_progress.png"))
    plots.plot_pareto(evo.points("flops"), evo.front_points("flops"), run.path("plots", "pareto.png"), "FLOPs",
                      {**uni.markers("flops", prefix="uniform "), **rnd.markers("flops"), **evo.markers("flops")},
                      budget=scfg.flops_budget)
    atomic_write_json(run.path("search", "result.json"), result)
    run.barrier()
    return result


def _candidate_summary(c) -> Optional[Dict[str, Any]]:
    if c is None:
        return None
    return {"genotype": encode(c.genotype), "fitness": c.fitness, "costs": dict(c.costs), "label": c.label}


def searched_genotype(run: Run) -> Genotype:
    result = _read_json(run.path("search", "result.json"), "Search result")
    try:
        return run.space.validate(decode(result["genotype"]))
    except (KeyError, ValueError) as exc:
        raise RunDirError(f"Search result {run.path('search', 'result.json')} is invalid: {exc}") from None


# ----------------------------------------------------------------------------------------------------------
# Stage 3: retrain from scratch


def build_final(run: Run, genotype: Genotype, *, sync_batchnorm: bool = False):
    from .nn.models import build_network, fixed_conv_factory

    arch = run.arch
    return build_network(arch, fixed_conv_factory(genotype, lce_compatible=run.cfg.model.space == "lce"),
                         name=f"binary_mobilenet_{arch.module}", sync_batchnorm=sync_batchnorm)


def retrain(run: Run, genotype: Optional[Sequence[int]] = None, *, init_from_supernet: Optional[bool] = None,
            callbacks: Sequence = ()):
    from .distribute import check_global_batch
    from .training import accuracy, fit

    run.begin_stage(run.cfg.retrain.seed)
    strategy, worker = run.strategy, run.worker
    cfg, data = run.cfg, run.data
    check_global_batch(cfg.data.batch_size, strategy)
    genotype = run.space.validate(tuple(genotype)) if genotype is not None else searched_genotype(run)
    init = cfg.retrain.init_from_supernet if init_from_supernet is None else init_from_supernet
    out = run.path("final")
    marker = os.path.join(out, "genotype.json")
    if os.path.exists(marker):
        previous = _read_json(marker, "Retraining genotype").get("genotype")
        if previous != encode(genotype):
            raise RunDirError(
                f"{out} holds a retraining of genotype {previous}, not {encode(genotype)}; delete {out} to retrain"
            )
    elif worker.is_chief:
        atomic_write_json(marker, {"genotype": encode(genotype), "init_from_supernet": bool(init)})
    with strategy.scope():
        if init and not os.path.exists(os.path.join(out, "backup")):
            from .nn.supernet import extract_subnet

            model = extract_subnet(load_supernet(run), genotype, space=run.space, sync_batchnorm=run.sync_batchnorm)
        else:
            model = build_final(run, genotype, sync_batchnorm=run.sync_batchnorm)
    start = time.time()
    history = fit(model, data.train_from, cfg.retrain, out, steps_per_epoch=data.steps_per_epoch,
                  validation=data.eval_batches("holdout"), callbacks=callbacks, verbose=run.verbose)
    test_acc = accuracy(lambda x: model(x, training=False), data.eval_batches("test"))
    if worker.is_chief:
        plots.plot_training_history(history, run.path("plots", "final_training.png"),
                                    title=f"Retraining {encode(genotype)} from scratch")
        atomic_write_json(os.path.join(out, "done.json"),
                          {"genotype": encode(genotype), "test_accuracy": test_acc, "epochs": cfg.retrain.epochs,
                           "seconds": round(time.time() - start, 1), "init_from_supernet": bool(init),
                           "replicas": strategy.num_replicas_in_sync, "workers": worker.count})
    run.barrier()
    return model, test_acc


def load_final(run: Run):
    if not run.done("retrain"):
        raise RunDirError(f"No retrained model in {run.run_dir}; run `mobisearch train` first")
    done = _read_json(run.path("final", "done.json"), "Retraining result")
    genotype = run.space.validate(decode(done["genotype"]))
    model = build_final(run, genotype)
    model.load_weights(run.path("final", "weights.h5"))
    return model, genotype


# ----------------------------------------------------------------------------------------------------------
# Stage 4: export


def export(run: Run, *, allow_float_fallback: Optional[bool] = None, output: Optional[str] = None) -> Dict[str, Any]:
    from .deploy.export import export_report, write_tflite

    cfg = run.cfg
    model, genotype = load_final(run)
    images, labels = run.data.numpy_samples("test", n=cfg.export.verify_samples)
    allow = cfg.export.allow_float_fallback if allow_float_fallback is None else allow_float_fallback
    report = export_report(model, target=cfg.export.target, allow_float_fallback=allow, images=images, labels=labels)
    path = output or run.path("model.tflite")
    write_tflite(report.flatbuffer, path)
    out = {"tflite": os.path.abspath(path), "genotype": encode(genotype), **report.to_json()}
    atomic_write_json(run.path("export.json"), out)
    return out


# ----------------------------------------------------------------------------------------------------------
# Report


def parameter_memory(model) -> Dict[str, int]:
    """Bytes of trainable parameters: 1 bit per binary-conv weight, 32 bits per real-valued one."""
    from .deploy.export import binary_convs

    binary_names = {c.name for c in binary_convs(model)}
    binary = real = 0
    for layer in model.layers:
        for w in layer.trainable_weights:
            n = int(w.shape.num_elements())
            if layer.name in binary_names and "kernel" in w.name:
                binary += n
            else:
                real += n
    return {"binary_params": binary, "real_params": real, "bytes": binary // 8 + real * 4,
            "float32_bytes": (binary + real) * 4}


def write_report(run: Run) -> Dict[str, Any]:
    cfg, arch = run.cfg, run.arch
    search_result = _read_json(run.path("search", "result.json"), "Search result")
    final = _read_json(run.path("final", "done.json"), "Retraining result")
    exported = _read_json(run.path("export.json"), "Export result")
    genotype = decode(final["genotype"])
    costs = count_costs(arch, genotype)
    model, _ = load_final(run)
    report = {
        "module": arch.module,
        "dataset": cfg.data.name,
        "input_shape": list(arch.input_shape),
        "genotype": final["genotype"],
        "test_accuracy": final["test_accuracy"],
        "tflite_accuracy": (exported.get("verify") or {}).get("tflite_accuracy"),
        "max_abs_logit_diff": (exported.get("verify") or {}).get("max_abs_diff"),
        "costs": costs.as_dict(),
        "flops_budget": search_result.get("budgets", {}).get("flops"),
        "parameter_memory": parameter_memory(model),
        "tflite": exported.get("tflite"),
        "tflite_bytes": exported.get("tflite_bytes"),
        "float_tflite_bytes": exported.get("float_tflite_bytes"),
        "op_census": exported.get("op_census"),
        "search": {
            "fitness": search_result["fitness"],
            "evaluations": search_result["evaluations"],
            "random_best": search_result["random_best"],
            "uniform": search_result["uniform"],
        },
        "plots": sorted(os.path.join("plots", p) for p in os.listdir(run.path("plots"))
                        if p.endswith(".png")) if os.path.isdir(run.path("plots")) else [],
    }
    atomic_write_json(run.path("report.json"), report)
    atomic_write_text(run.path("report.md"), _report_markdown(report))
    return report


def _fmt_flops(x) -> str:
    return "-" if x is None else f"{x:.4g}"


def _report_markdown(r: Dict[str, Any]) -> str:
    s = r["search"]
    lines = [
        f"# larq_mobisearch run: {r['module'].upper()} on {r['dataset']}",
        "",
        f"- searched genotype: `{r['genotype']}`",
        f"- test top-1 (Keras): {r['test_accuracy']:.4f}; test top-1 of the .tflite (verify samples): "
        f"{r['tflite_accuracy'] if r['tflite_accuracy'] is not None else '-'}",
        f"- FLOPs: {_fmt_flops(r['costs']['flops'])} (BOPs {r['costs']['bops']:,}, float FLOPs "
        f"{r['costs']['float_flops']:,}); budget {_fmt_flops(r['flops_budget'])}",
        f"- parameter memory: {r['parameter_memory']['bytes']:,} bytes "
        f"(float32 equivalent {r['parameter_memory']['float32_bytes']:,})",
        f"- .tflite: {r['tflite']} ({r['tflite_bytes']:,} bytes; float TFLite {r['float_tflite_bytes'] or '-'} bytes)",
        "",
        "## Search vs baselines at the same budget (supernet held-out top-1 after BatchNorm recalibration)",
        "",
        "| method | genotype | held-out top-1 | FLOPs |",
        "|---|---|---|---|",
        f"| evolutionary search | `{r['genotype']}` | {s['fitness']:.4f} | {_fmt_flops(r['costs']['flops'])} |",
    ]
    if s["random_best"]:
        rb = s["random_best"]
        lines.append(f"| random search (best of {s['evaluations']}) | `{rb['genotype']}` | {rb['fitness']:.4f} | "
                     f"{_fmt_flops(rb['costs'].get('flops'))} |")
    for u in s["uniform"]:
        lines.append(f"| {u.get('label') or 'uniform'} | `{u['genotype']}` | {u['fitness']:.4f} | "
                     f"{_fmt_flops(u['costs'].get('flops'))} |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in r["plots"]]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------


def run_all(run: Run, *, echo: Callable[[str], None] = print) -> Dict[str, Any]:
    """Run every unfinished stage in order (a finished stage is skipped; an interrupted one resumes).

    In a multi-worker cluster, workers other than the chief stop after retraining and return
    ``{"worker": index, "workers": count}``; the chief exports and writes the report.
    """
    stages = (("supernet", train_supernet), ("search", search), ("retrain", retrain), ("export", export))
    worker = run.worker if run.cfg.distribute.strategy != "default" else None
    for name, fn in stages:
        if name == "export" and worker is not None and not worker.is_chief:
            echo(f"[worker {worker.index}/{worker.count}] training and search done; the chief exports")
            return {"worker": worker.index, "workers": worker.count}
        if run.done(name):
            echo(f"[{name}] done already, skipping ({run._marker(name)})")
            continue
        echo(f"[{name}] running ...")
        start = time.time()
        fn(run)
        echo(f"[{name}] finished in {time.time() - start:.0f} s")
    return write_report(run)
