"""The stages of the related methods (issue 15): the teacher the distributional loss (ReActNet) distills from,
trained once per run directory in ``<run>/teacher/`` (before the supernet when it distills, else before the
first retraining that does) or a saved Keras model named by ``teacher.path``; step 1 of two-step retraining
(``final/step1/``); and the run's model options (RSign, RPReLU) every stage builds its networks with."""

from __future__ import annotations

import os
import time
from typing import Any, Dict, Sequence

from .. import plots
from ..fileio import atomic_write_json
from ..nn.space import Genotype, encode
from .rundir import Run, uses_teacher


def model_options(run: Run) -> Dict[str, Any]:
    """The model options of the run (`models.build_network`): activation, nonlinearity, RPReLU's initial slope."""
    m = run.cfg.model
    return {"activation": m.activation, "nonlinearity": m.nonlinearity, "rprelu_init_slope": m.rprelu_init_slope}


def needs_teacher_stage(run: Run) -> bool:
    """Whether this run trains the float twin as teacher: some stage distills, from ``teacher.source=twin``."""
    cfg = run.cfg
    return cfg.teacher.source == "twin" and (uses_teacher(cfg, "supernet") or uses_teacher(cfg, "retrain"))


def build_teacher(run: Run, *, sync_batchnorm: bool = False):
    """The float twin of the run's architecture at groups 1 (`models.float_conv_factory`), with the run's
    model options: the strongest model of the family, the same teacher for the supernet and every search."""
    from ..nn.models import build_network, float_conv_factory

    arch = run.arch
    return build_network(arch, float_conv_factory((1,) * arch.num_genes), name=f"float_twin_{arch.module}",
                         sync_batchnorm=sync_batchnorm, **model_options(run))


def train_teacher(run: Run, callbacks: Sequence = ()):
    """Train the float twin in ``<run>/teacher/`` with ``cfg.teacher`` (resumes; skipped by `run_all` once done).

    Writes ``weights.h5`` (what this run loads) and ``model.h5`` (a whole saved model another run can name
    as ``teacher.path``), then ``done.json`` with its test top-1."""
    from ..distribute import check_global_batch
    from ..training import accuracy, fit

    cfg = run.cfg
    run.begin_stage(cfg.teacher.seed)
    strategy, worker, data = run.strategy, run.worker, run.data
    check_global_batch(cfg.data.batch_size, strategy)
    out = run.path("teacher")
    with strategy.scope():
        model = build_teacher(run, sync_batchnorm=run.sync_batchnorm)
    start = time.time()
    history = fit(model, data.train_from, cfg.teacher, out, steps_per_epoch=data.steps_per_epoch,
                  validation=data.eval_batches("holdout"), callbacks=callbacks, verbose=run.verbose)
    test_acc = accuracy(lambda x: model(x, training=False), data.eval_batches("test"))
    if worker.is_chief:
        from ..fileio import atomic_write

        # The whole model too, so other runs can distill from it (teacher.source=path, teacher.path=...).
        # HDF5: the .keras format cannot serialize M3's `x[..., a:b]` shortcut slices (an Ellipsis).
        atomic_write(run.path("teacher", "model.h5"), lambda tmp: model.save(tmp, overwrite=True), suffix=".h5")
        plots.plot_training_history(history, run.path("plots", "teacher_training.png"),
                                    title="Teacher (float twin) training")
        atomic_write_json(os.path.join(out, "done.json"),
                          {"model": model.name, "epochs": cfg.teacher.epochs, "test_accuracy": test_acc,
                           "seconds": round(time.time() - start, 1),
                           "final_holdout_accuracy": (history.get("val_accuracy") or [None])[-1]})
    run.barrier()
    return model


def load_teacher(run: Run):
    """The teacher of the distributional loss: the saved model at ``teacher.path``, or the run's float twin
    (trained first if it is not yet: `train_teacher`). Build it inside the training's strategy scope."""
    from ..distillation import load_teacher_model

    cfg = run.cfg
    if cfg.teacher.source == "path":
        return load_teacher_model(cfg.teacher.path)
    if not run.done("teacher"):
        if run.verbose:
            print(f"[teacher] training the float twin first ({cfg.teacher.epochs} epochs) ...", flush=True)
        train_teacher(run)
    model = build_teacher(run)
    model.load_weights(run.path("teacher", "weights.h5"))
    return model


def retrain_step1(run: Run, genotype: Genotype, out: str, build_final, *, lce: bool, init_weights, teacher,
                  callbacks) -> str:
    """Step 1 of ReActNet's two-step recipe in ``out/step1/``: binary activations, real-valued weights
    (``build_final(run, genotype, binary_weights=False, ...)``), ``retrain.step1_epochs`` epochs, the same
    loss and teacher; resumes from its own backup and is skipped once done. Returns the path of its weights."""
    from ..training import accuracy, fit

    cfg, strategy, data = run.cfg, run.strategy, run.data
    step_dir = os.path.join(out, "step1")
    weights = os.path.join(step_dir, "weights.h5")
    if os.path.exists(os.path.join(step_dir, "done.json")):
        return weights
    step_cfg = cfg.retrain.model_copy(update={"epochs": cfg.retrain.step1_epochs or cfg.retrain.epochs})
    with strategy.scope():
        model = build_final(run, genotype, sync_batchnorm=run.sync_batchnorm, binary_weights=False, lce_compatible=lce)
        if init_weights is not None and not os.path.exists(os.path.join(step_dir, "backup")):
            model.set_weights(init_weights)
    start = time.time()
    history = fit(model, data.train_from, step_cfg, step_dir, steps_per_epoch=data.steps_per_epoch,
                  validation=data.eval_batches("holdout"), callbacks=callbacks, verbose=run.verbose, teacher=teacher)
    test_acc = accuracy(lambda x: model(x, training=False), data.eval_batches("test"))
    if run.worker.is_chief:
        plots.plot_training_history(history, run.search_path("plots", "final_training_step1.png"),
                                    title=f"Two-step retraining of {encode(genotype)}: step 1 (real-valued weights)")
        atomic_write_json(os.path.join(step_dir, "done.json"),
                          {"genotype": encode(genotype), "test_accuracy": test_acc, "epochs": step_cfg.epochs,
                           "seconds": round(time.time() - start, 1)})
    run.barrier()
    return weights
