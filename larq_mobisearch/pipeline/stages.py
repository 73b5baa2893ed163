"""The four stages of the method over a run directory (paper Algorithm 2, Figure 2).

    supernet  ->  search (one per name)  ->  retrain  ->  export
    (random       (Algorithm 1 on the        (winner       (LCE flatbuffer,
     genotype      supernet, with random      from          verified against
     per step)     and uniform baselines)     scratch)      Keras)

plus a `train_teacher` stage (``<run>/teacher/``) where ReActNet's distributional loss uses the float twin as
teacher, and named baselines retrained instead of a winner (``retrain(run, baseline="mobinet")``).

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
import sys
import time
from typing import Any, Dict, Optional, Sequence

from .. import plots
from ..fileio import atomic_write_json
from ..nn.space import Genotype, SearchSpace, decode, encode
from ..search.state import STATE_FILENAME
from .clock import timed
from .rundir import Run, RunDirError, read_json, uses_teacher
from .files import sha256_file
from .methods import load_teacher, model_options as _options, retrain_step1, train_teacher

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
    key = run.cfg.model_dump_json(include={"data", "model", "search"}) + "|" + scfg.model_dump_json()
    if key not in run.feasible_counts:  # seeded: the same settings give the same count
        run.feasible_counts[key] = count_feasible(run.space, constraints, seed=scfg.seed)
    feasible = run.feasible_counts[key]
    if feasible.exact and feasible.count == 0:
        raise RunDirError(f"Search {run.search!r}: no genotype of the search space is within all budgets together "
                          f"({feasible.describe()}); raise the budgets")
    return feasible


def progress_bars(run: Run, stream=None) -> bool:
    """Whether the search draws tqdm bars: verbose, the chief, and `stream` (default stderr) is a terminal (a
    log file gets the search's own lines, not thousands of bar redraws)."""
    stream = sys.stderr if stream is None else stream
    return bool(run.verbose > 0 and run.worker.is_chief and getattr(stream, "isatty", lambda: False)())


def feasible_summary(feasible) -> Dict[str, Any]:
    return {"count": feasible.count, "space_size": feasible.space_size, "fraction": feasible.fraction,
            "exact": feasible.exact, "method": feasible.method, "standard_error": feasible.standard_error}


@timed("supernet")
def train_supernet(run: Run, callbacks: Sequence = ()):
    from ..distribute import check_global_batch
    from ..nn.supernet import build_supernet
    from ..supernet_training import sampling_setup
    from ..training import fit

    run.begin_stage(run.cfg.supernet.seed)
    strategy = run.strategy
    cfg, data, space = run.cfg, run.data, run.space
    check_global_batch(cfg.data.batch_size, strategy)
    out = run.path("supernet")
    teacher = None
    if uses_teacher(cfg, "supernet"):
        if cfg.teacher.source == "twin" and not run.done("teacher"):
            train_teacher(run)
            run.begin_stage(cfg.supernet.seed)
            data = run.data
        with strategy.scope():
            teacher = load_teacher(run)
    with strategy.scope():
        supernet = build_supernet(space, sync_batchnorm=run.sync_batchnorm, **_options(run))
    budget = run.flops_budget() if cfg.supernet.sampling == "budget" else None  # None: uniform sampling
    sampler, trainer = sampling_setup(space, cfg.supernet, cost_model=run.flops_model() if budget else None,
                                      budget=budget, max_tries=cfg.search.max_tries)
    start = time.time()
    history = fit(supernet, data.train_from, cfg.supernet, out, steps_per_epoch=data.steps_per_epoch,
                  callbacks=[sampler, *callbacks], verbose=run.verbose, teacher=teacher, trainer=trainer)
    if run.worker.is_chief:
        plots.plot_training_history(history, run.path("plots", "supernet_training.png"), title="Supernet training")
        atomic_write_json(os.path.join(out, "done.json"),
                          {"epochs": cfg.supernet.epochs, "seconds": round(time.time() - start, 1),
                           "final_train_accuracy": (history.get("accuracy") or [None])[-1],
                           "loss": cfg.supernet.loss, "optimizer": cfg.supernet.optimizer, **_options(run),
                           **cfg.supernet.model_dump(include={"sampling", "sandwich", "sandwich_random",
                                                              "inplace_distillation", "masked_updates"}),
                           "replicas": strategy.num_replicas_in_sync, "workers": run.worker.count})
    run.barrier()  # the other workers go on once the chief's weights and marker are written
    return supernet


def load_supernet(run: Run):
    from ..nn.supernet import build_supernet

    if not run.done("supernet"):
        raise RunDirError(f"No trained supernet in {run.run_dir}; run `mobisearch supernet --run-dir {run.run_dir}` "
                          f"first")
    supernet = build_supernet(run.space, **_options(run))
    supernet.load_weights(run.path("supernet", "weights.h5"))
    return supernet


# ----------------------------------------------------------------------------------------------------------
# Stage 2: search


@timed("search")
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
                              context=context, progress=progress_bars(run),
                              write_state=worker.is_chief)
    samples = evo.num_evaluations if scfg.random_baseline_samples is None else scfg.random_baseline_samples
    rnd = None
    if samples > 0:  # 0: no random baseline
        rnd = random_search(space, evaluator, constraints, scfg, num_samples=samples,
                            state_path=run.search_path(RANDOM_STATE_FILENAME), context=context,
                            progress=progress_bars(run), write_state=worker.is_chief)
    uni = uniform_baselines(space, evaluator, constraints)
    local.restore()
    if evo.best is None:
        raise RunDirError("The search evaluated no genotype within the budget")
    result = {
        "genotype": run.space.encode(evo.best_genotype),
        "fitness": evo.best_fitness,
        "costs": evo.best_costs,
        "evaluations": evo.num_evaluations,
        "feasible": feasible_summary(feasible),
        "feasible_note": note,
        "seconds": round(time.time() - start, 1),
        "search": run.search,
        "random_best": _candidate_summary(rnd.best, run.space) if rnd else None,
        "random_evaluations": rnd.num_evaluations if rnd else 0,
        "uniform": [_candidate_summary(c, run.space) for c in uni.evaluated],
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


def _candidate_summary(c, space=None) -> Optional[Dict[str, Any]]:
    if c is None:
        return None
    return {"genotype": space.encode(c.genotype) if space is not None else encode(c.genotype), "fitness": c.fitness, "costs": dict(c.costs), "label": c.label}


def searched_genotype(run: Run) -> Genotype:
    result = read_json(run.search_path("search", "result.json"), "Search result")
    try:
        return run.space.validate(decode(result["genotype"]))
    except (KeyError, ValueError) as exc:
        raise RunDirError(f"Search result {run.search_path('search', 'result.json')} is invalid: {exc}") from None


# ----------------------------------------------------------------------------------------------------------
# Stage 3: retrain from scratch


def build_final(run: Run, genotype: Genotype, *, sync_batchnorm: bool = False, binary_weights: bool = True,
                lce_compatible: Optional[bool] = None):
    """The fixed model of `genotype` with the run's options. `binary_weights=False`: two-step training's
    step 1 (binary activations, real-valued weights). `lce_compatible` defaults to the run's space being
    "lce" (a baseline outside it, e.g. MoBiNet's depthwise convs, passes False)."""
    from ..nn.models import build_network, fixed_conv_factory

    arch, space = run.arch, run.space
    if space.has_widths and len(genotype) == space.num_groups + len(space.widths):
        arch, genotype = space.resolve(genotype)  # block widths from the genotype's width genes
    lce = run.cfg.model.space == "lce" if lce_compatible is None else lce_compatible
    return build_network(arch, fixed_conv_factory(genotype, lce_compatible=lce, binary_weights=binary_weights),
                         name=f"binary_mobilenet_{arch.module}", sync_batchnorm=sync_batchnorm, **_options(run))


def baseline_space(run: Run, baseline: Optional[str]) -> SearchSpace:
    """The space a retrained genotype belongs to: the run's, or the paper space for a named baseline."""
    return SearchSpace(run.arch, "paper") if baseline else run.space


@timed("retrain")
def retrain(run: Run, genotype: Optional[Sequence[int]] = None, *, init_from_supernet: Optional[bool] = None,
            callbacks: Sequence = (), baseline: Optional[str] = None):
    """Train `genotype` (default: the search's winner; with `baseline`, that named baseline's genotype, e.g.
    "mobinet") from scratch in ``searches/<name>/final/``, with the run's options, optimizer and loss
    (distributional: against `load_teacher`); ``retrain.two_step`` first trains step 1 in ``final/step1/``."""
    from ..distribute import check_global_batch
    from ..nn.specs import baseline_genotype
    from ..training import accuracy, fit

    run.begin_stage(run.cfg.retrain.seed)
    strategy, worker = run.strategy, run.worker
    cfg, data = run.cfg, run.data
    check_global_batch(cfg.data.batch_size, strategy)
    init = cfg.retrain.init_from_supernet if init_from_supernet is None else init_from_supernet
    if baseline is not None:
        if genotype is not None:
            raise ValueError(f"retrain: give a genotype or a baseline, not both (received baseline {baseline!r})")
        if init:
            raise RunDirError(f"Baseline {baseline!r} is outside the supernet's search space: it trains from "
                              f"scratch (init_from_supernet must be false)")
        genotype = baseline_genotype(run.arch, baseline)
    space = baseline_space(run, baseline)
    lce = space.mode == "lce"
    genotype = space.validate(tuple(genotype)) if genotype is not None else searched_genotype(run)
    out = run.search_path("final")
    marker = os.path.join(out, "genotype.json")
    if os.path.exists(marker):
        previous = read_json(marker, "Retraining genotype")
        if previous.get("genotype") != run.space.encode(genotype) or previous.get("baseline") != baseline:
            raise RunDirError(
                f"{out} holds a retraining of genotype {previous.get('genotype')} (baseline "
                f"{previous.get('baseline')}), not {run.space.encode(genotype)} (baseline {baseline}); `--restart-from "
                f"retrain` (or another --search name) retrains"
            )
    elif worker.is_chief:
        atomic_write_json(marker, {"genotype": run.space.encode(genotype), "init_from_supernet": bool(init),
                                   "baseline": baseline})
    teacher = None
    if uses_teacher(cfg, "retrain"):
        if cfg.teacher.source == "twin" and not run.done("teacher"):
            train_teacher(run)
            run.begin_stage(cfg.retrain.seed)
            data = run.data
        with strategy.scope():
            teacher = load_teacher(run)
    resuming = os.path.exists(os.path.join(out, "backup"))
    init_weights = None
    if init and not resuming:
        from ..nn.supernet import extract_subnet

        with strategy.scope():
            extracted = extract_subnet(load_supernet(run), genotype, space=run.space,
                                       sync_batchnorm=run.sync_batchnorm)
        init_weights = extracted.get_weights()
    step1 = None
    if cfg.retrain.two_step:
        step1 = retrain_step1(run, genotype, out, build_final, lce=lce, init_weights=init_weights, teacher=teacher,
                              callbacks=callbacks)
    with strategy.scope():
        model = build_final(run, genotype, sync_batchnorm=run.sync_batchnorm, lce_compatible=lce)
        if step1 is not None and not resuming:
            model.load_weights(step1)  # step 2 starts from step 1 (same layers; the kernels become binary)
        elif init_weights is not None:
            model.set_weights(init_weights)
    start = time.time()
    history = fit(model, data.train_from, cfg.retrain, out, steps_per_epoch=data.steps_per_epoch,
                  validation=data.eval_batches("holdout"), callbacks=callbacks, verbose=run.verbose, teacher=teacher)
    test_acc = accuracy(lambda x: model(x, training=False), data.eval_batches("test"))
    if worker.is_chief:
        title = f"Retraining {run.space.encode(genotype)} from scratch" + (" (step 2)" if step1 else "")
        plots.plot_training_history(history, run.search_path("plots", "final_training.png"), title=title)
        step1_done = read_json(os.path.join(out, "step1", "done.json"), "Step 1 result") if step1 else None
        atomic_write_json(os.path.join(out, "done.json"),
                          {"genotype": run.space.encode(genotype), "test_accuracy": test_acc, "epochs": cfg.retrain.epochs,
                           "seconds": round(time.time() - start, 1), "init_from_supernet": bool(init),
                           "baseline": baseline, "loss": cfg.retrain.loss, "optimizer": cfg.retrain.optimizer,
                           **_options(run), "two_step": bool(cfg.retrain.two_step), "step1": step1_done,
                           "replicas": strategy.num_replicas_in_sync, "workers": worker.count})
    run.barrier()
    return model, test_acc


def final_baseline(run: Run) -> Optional[str]:
    """The named baseline retrained in this search (None: a searched or given genotype)."""
    path = run.search_path("final", "genotype.json")
    return read_json(path, "Retraining genotype").get("baseline") if os.path.exists(path) else None


def load_final(run: Run):
    if not run.done("retrain"):
        raise RunDirError(f"No retrained model for search {run.search!r} in {run.run_dir}; run "
                          f"`mobisearch train --run-dir {run.run_dir} --search {run.search}` first")
    done = read_json(run.search_path("final", "done.json"), "Retraining result")
    space = baseline_space(run, done.get("baseline"))
    genotype = space.validate(decode(done["genotype"]))
    model = build_final(run, genotype, lce_compatible=space.mode == "lce")
    model.load_weights(run.search_path("final", "weights.h5"))
    return model, genotype


# ----------------------------------------------------------------------------------------------------------
# Stage 4: export


@timed("export")
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
    allow = cfg.export.allow_float_fallback if allow_float_fallback is None else allow_float_fallback
    baseline = final_baseline(run)
    if baseline == "mobinet" and not allow:
        raise RunDirError(f"Search {run.search!r} holds the MoBiNet-style baseline: LCE cannot lower its binary "
                          f"depthwise convs (1 input channel per group) to LceBconv2d; export it with "
                          f"--allow-float-fallback (export.allow_float_fallback=true), keeping them as float ops")
    model, genotype = load_final(run)
    images, labels = run.data.numpy_samples("test", n=cfg.export.verify_samples)
    allow_mismatch = cfg.export.allow_mismatch if allow_mismatch is None else allow_mismatch
    report = export_report(model, target=cfg.export.target, allow_float_fallback=allow,
                           fuse_pointwise=cfg.export.fuse_pointwise, images=images if len(images) else None,
                           labels=labels if len(images) else None, max_abs_diff=cfg.export.max_abs_diff,
                           include_float_size=cfg.export.float_size)
    path = output or run.search_path("model.tflite")
    refused = run.search_path("export_refused.json")
    out = {"tflite": os.path.abspath(path), "genotype": run.space.encode(genotype), "baseline": baseline,
           **report.to_json()}
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
            out = {"tflite": os.path.abspath(path), "genotype": run.space.encode(genotype), "baseline": baseline,
           **report.to_json()}
    write_tflite(report.flatbuffer, path)
    atomic_write_json(run.search_path("export.json"), out)
    if os.path.exists(refused):
        os.remove(refused)
    return out
