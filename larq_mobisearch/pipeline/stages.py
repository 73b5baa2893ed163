"""The four stages of the method over a run directory (paper Algorithm 2, Figure 2).

    supernet  ->  search (one per name)  ->  retrain  ->  export
    (random       (Algorithm 1 on the        (winner       (LCE flatbuffer,
     genotype      supernet, with random      from          verified against
     per step)     and uniform baselines)     scratch)      Keras)

Each stage reads the files of the stages before it and writes its own (`rundir.Run` has the layout), so any
stage runs alone, a finished stage is skipped and an interrupted one resumes. Training and the search run
on the `tf.distribute` strategy of ``cfg.distribute``: the supernet and the retraining are data parallel,
the search shards candidate evaluation across workers. In a multi-worker cluster every worker runs the
same stages; only the chief writes the run directory, and workers wait for each other at the end of every
stage. Export is the chief's.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any, Dict, Optional, Sequence

from .. import plots
from ..fileio import atomic_write_json
from ..nn.space import Genotype, decode, encode
from ..search.state import STATE_FILENAME
from .rundir import Run, RunDirError, read_json
from .files import sha256_file

log = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------------------
# Stage 1: supernet


def check_budgets(run: Run):
    """Refuse impossible budgets before anything trains, and size the feasible space of the search.

    # Returns
        The `search.FeasibleCount` under the search's budgets (exact when it can be counted).

    # Raises
        RunDirError: a budget below the cheapest genotype, or no genotype within all budgets together.
    """
    from ..search import check_reachable, constraints_from_config, count_feasible

    scfg = run.search_config()
    constraints = constraints_from_config(run.space, scfg, latency_model=run.latency_model())
    try:
        check_reachable(run.space, constraints)
    except ValueError as exc:
        raise RunDirError(f"Search {run.search!r}: {exc}") from None
    feasible = count_feasible(run.space, constraints, seed=scfg.seed)
    if feasible.exact and feasible.count == 0:
        raise RunDirError(f"Search {run.search!r}: no genotype of the search space is within all budgets together "
                          f"({feasible.describe()}); raise the budgets")
    return feasible


def feasible_summary(feasible) -> Dict[str, Any]:
    return {"count": feasible.count, "space_size": feasible.space_size, "fraction": feasible.fraction,
            "exact": feasible.exact, "method": feasible.method, "standard_error": feasible.standard_error}


def train_supernet(run: Run, callbacks: Sequence = ()):
    from ..distribute import check_global_batch
    from ..nn.supernet import RandomGenotype, build_supernet
    from ..training import fit

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
    from ..nn.supernet import build_supernet

    if not run.done("supernet"):
        raise RunDirError(f"No trained supernet in {run.run_dir}; run `mobisearch supernet --run-dir {run.run_dir}` "
                          f"first")
    supernet = build_supernet(run.space)
    supernet.load_weights(run.path("supernet", "weights.h5"))
    return supernet


# ----------------------------------------------------------------------------------------------------------
# Stage 2: search


def search(run: Run) -> Dict[str, Any]:
    from ..distribute import ShardedEvaluator
    from ..search import (RANDOM_STATE_FILENAME, constraints_from_config, evaluation_budget_note,
                          evolutionary_search, random_search, uniform_baselines)
    from ..training import SupernetEvaluator

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
    feasible = check_budgets(run)
    note = evaluation_budget_note(feasible, scfg)
    if worker.is_chief and run.verbose:
        print(f"[search] {feasible.describe()}" + (f"\n[search] {note}" if note else ""), flush=True)
    context = "|".join([
        sha256_file(run.path("supernet", "weights.h5"), 16), cfg.data.name, str(cfg.data.image_size),
        str(cfg.data.holdout_fraction), str(cfg.data.split_seed), str(cfg.model.width_multiplier),
    ])
    start = time.time()
    evo = evolutionary_search(space, evaluator, constraints, scfg, state_path=run.search_path(STATE_FILENAME),
                              context=context, progress=run.verbose > 0 and worker.is_chief,
                              write_state=worker.is_chief)
    samples = evo.num_evaluations if scfg.random_baseline_samples is None else scfg.random_baseline_samples
    rnd = None
    if samples > 0:  # 0: no random baseline
        rnd = random_search(space, evaluator, constraints, scfg, num_samples=samples,
                            state_path=run.search_path(RANDOM_STATE_FILENAME), context=context,
                            progress=run.verbose > 0 and worker.is_chief, write_state=worker.is_chief)
    uni = uniform_baselines(space, evaluator, constraints)
    local.restore()
    if evo.best is None:
        raise RunDirError("The search evaluated no genotype within the budget")
    result = {
        "genotype": encode(evo.best_genotype),
        "fitness": evo.best_fitness,
        "costs": evo.best_costs,
        "evaluations": evo.num_evaluations,
        "feasible": feasible_summary(feasible),
        "feasible_note": note,
        "seconds": round(time.time() - start, 1),
        "search": run.search,
        "random_best": _candidate_summary(rnd.best) if rnd else None,
        "random_evaluations": rnd.num_evaluations if rnd else 0,
        "uniform": [_candidate_summary(c) for c in uni.evaluated],
        "budgets": {"flops": scfg.flops_budget, "latency_ms": scfg.latency_budget_ms},
        "workers": worker.count,
    }
    if not worker.is_chief:
        run.barrier()  # the chief writes the results
        return result
    os.makedirs(run.search_path("search"), exist_ok=True)
    for name, res in (("evolution", evo), ("random", rnd), ("uniform", uni)):
        if res is not None:
            res.save(run.search_path("search", f"{name}.json"))
    plots.plot_search_history(evo, run.search_path("plots", "search_progress.png"))
    plots.plot_pareto(evo.points("flops"), evo.front_points("flops"), run.search_path("plots", "pareto.png"), "FLOPs",
                      {**uni.markers("flops", prefix="uniform "), **(rnd.markers("flops") if rnd else {}),
                       **evo.markers("flops")},
                      budget=scfg.flops_budget)
    atomic_write_json(run.search_path("search", "result.json"), result)
    run.barrier()
    return result


def _candidate_summary(c) -> Optional[Dict[str, Any]]:
    if c is None:
        return None
    return {"genotype": encode(c.genotype), "fitness": c.fitness, "costs": dict(c.costs), "label": c.label}


def searched_genotype(run: Run) -> Genotype:
    result = read_json(run.search_path("search", "result.json"), "Search result")
    try:
        return run.space.validate(decode(result["genotype"]))
    except (KeyError, ValueError) as exc:
        raise RunDirError(f"Search result {run.search_path('search', 'result.json')} is invalid: {exc}") from None


# ----------------------------------------------------------------------------------------------------------
# Stage 3: retrain from scratch


def build_final(run: Run, genotype: Genotype, *, sync_batchnorm: bool = False):
    from ..nn.models import build_network, fixed_conv_factory

    arch = run.arch
    return build_network(arch, fixed_conv_factory(genotype, lce_compatible=run.cfg.model.space == "lce"),
                         name=f"binary_mobilenet_{arch.module}", sync_batchnorm=sync_batchnorm)


def retrain(run: Run, genotype: Optional[Sequence[int]] = None, *, init_from_supernet: Optional[bool] = None,
            callbacks: Sequence = ()):
    from ..distribute import check_global_batch
    from ..training import accuracy, fit

    run.begin_stage(run.cfg.retrain.seed)
    strategy, worker = run.strategy, run.worker
    cfg, data = run.cfg, run.data
    check_global_batch(cfg.data.batch_size, strategy)
    genotype = run.space.validate(tuple(genotype)) if genotype is not None else searched_genotype(run)
    init = cfg.retrain.init_from_supernet if init_from_supernet is None else init_from_supernet
    out = run.search_path("final")
    marker = os.path.join(out, "genotype.json")
    if os.path.exists(marker):
        previous = read_json(marker, "Retraining genotype").get("genotype")
        if previous != encode(genotype):
            raise RunDirError(
                f"{out} holds a retraining of genotype {previous}, not {encode(genotype)}; `--restart-from retrain` "
                f"(or another --search name) retrains"
            )
    elif worker.is_chief:
        atomic_write_json(marker, {"genotype": encode(genotype), "init_from_supernet": bool(init)})
    with strategy.scope():
        if init and not os.path.exists(os.path.join(out, "backup")):
            from ..nn.supernet import extract_subnet

            model = extract_subnet(load_supernet(run), genotype, space=run.space, sync_batchnorm=run.sync_batchnorm)
        else:
            model = build_final(run, genotype, sync_batchnorm=run.sync_batchnorm)
    start = time.time()
    history = fit(model, data.train_from, cfg.retrain, out, steps_per_epoch=data.steps_per_epoch,
                  validation=data.eval_batches("holdout"), callbacks=callbacks, verbose=run.verbose)
    test_acc = accuracy(lambda x: model(x, training=False), data.eval_batches("test"))
    if worker.is_chief:
        plots.plot_training_history(history, run.search_path("plots", "final_training.png"),
                                    title=f"Retraining {encode(genotype)} from scratch")
        atomic_write_json(os.path.join(out, "done.json"),
                          {"genotype": encode(genotype), "test_accuracy": test_acc, "epochs": cfg.retrain.epochs,
                           "seconds": round(time.time() - start, 1), "init_from_supernet": bool(init),
                           "replicas": strategy.num_replicas_in_sync, "workers": worker.count})
    run.barrier()
    return model, test_acc


def load_final(run: Run):
    if not run.done("retrain"):
        raise RunDirError(f"No retrained model for search {run.search!r} in {run.run_dir}; run "
                          f"`mobisearch train --run-dir {run.run_dir} --search {run.search}` first")
    done = read_json(run.search_path("final", "done.json"), "Retraining result")
    genotype = run.space.validate(decode(done["genotype"]))
    model = build_final(run, genotype)
    model.load_weights(run.search_path("final", "weights.h5"))
    return model, genotype


# ----------------------------------------------------------------------------------------------------------
# Stage 4: export


def export(run: Run, *, allow_float_fallback: Optional[bool] = None, allow_mismatch: Optional[bool] = None,
           output: Optional[str] = None) -> Dict[str, Any]:
    """Stage 4: convert the retrained model with LCE (M3 pointwise pairs fused), verify it against Keras, and
    write ``model.tflite`` and ``export.json`` -- or refuse.

    The numerics gate (`deploy.verify.check_numerics`, tolerance ``export.max_abs_diff`` x logit scale) must
    pass on the verification samples that are not near ties; otherwise nothing is written but
    ``export_refused.json`` (the figures) and `NumericsError` is raised, unless `allow_mismatch` (default
    ``export.allow_mismatch``): then the file is written and ``export.json`` says ``allowed_mismatch``.
    """
    from ..deploy.export import export_report, write_tflite
    from ..deploy.verify import NumericsError, check_numerics

    cfg = run.cfg
    model, genotype = load_final(run)
    images, labels = run.data.numpy_samples("test", n=cfg.export.verify_samples)
    allow = cfg.export.allow_float_fallback if allow_float_fallback is None else allow_float_fallback
    allow_mismatch = cfg.export.allow_mismatch if allow_mismatch is None else allow_mismatch
    report = export_report(model, target=cfg.export.target, allow_float_fallback=allow,
                           fuse_pointwise=cfg.export.fuse_pointwise, images=images if len(images) else None,
                           labels=labels if len(images) else None, max_abs_diff=cfg.export.max_abs_diff)
    path = output or run.search_path("model.tflite")
    refused = run.search_path("export_refused.json")
    out = {"tflite": os.path.abspath(path), "genotype": encode(genotype), **report.to_json()}
    if report.verify is not None:
        try:
            check_numerics(report.verify, cfg.export.max_abs_diff, what=f"export of {model.name!r}")
        except NumericsError as exc:
            if not allow_mismatch:
                atomic_write_json(refused, {**out, "tflite": None, "refused": str(exc)})
                raise NumericsError(f"{exc}\nThe figures are in {refused}; nothing else was written.",
                                    exc.failures) from None
            log.warning("export.allow_mismatch: writing %s although %s", path, "; ".join(exc.failures))
            report.allowed_mismatch = True
            out = {"tflite": os.path.abspath(path), "genotype": encode(genotype), **report.to_json()}
    write_tflite(report.flatbuffer, path)
    atomic_write_json(run.search_path("export.json"), out)
    if os.path.exists(refused):
        os.remove(refused)
    return out
