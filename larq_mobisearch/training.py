"""Training loops (supernet and retraining from scratch) on the normal Keras `fit` API, and the supernet
evaluator the search scores genotypes with.

Every training run owns a directory:

- ``backup/``: `tf.keras.callbacks.BackupAndRestore` state (weights, optimizer, epoch) written every epoch,
  so an interrupted run resumes where it stopped, with the training stream at the epoch it resumes from
  (`fit` reads that epoch from the backup before Keras creates its data iterator);
- ``history.csv``: one row per finished epoch (appended, survives resumption);
- ``weights.h5``: final weights, written atomically (temp file + rename) once training finishes;
- ``done.json``: marker with the final metrics; a finished stage is skipped by the pipeline.

Options of every training run (`config.TrainConfig`): ``optimizer="bop"`` trains the binary kernels with
larq's Bop and every other weight with Adam (`make_optimizer`); ``loss="distributional"`` distills from a
teacher model (`fit(..., teacher=...)`, `distillation.Distiller`).
"""

from __future__ import annotations

import csv
import logging
import os
import sys
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Union

import numpy as np
import tensorflow as tf

from . import _onednn
from .nn.batchnorm import batchnorm_layers, recalibrate_batchnorm
from .nn.elastic import ElasticConv
from .config import TrainConfig
from .fileio import atomic_write
from .nn.space import Genotype
from .nn.supernet import set_genotype
from .choices import OPTIMIZERS, SCHEDULES, not_allowed
from .distillation import Distiller, distillation_loss
from .supernet_training import SupernetTrainer

log = logging.getLogger(__name__)


class LinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """Linear decay from `initial` to 0 over `steps` (the paper's schedule)."""

    def __init__(self, initial: float, steps: int):
        self.initial, self.steps = float(initial), int(steps)

    def __call__(self, step):
        frac = tf.minimum(tf.cast(step, tf.float32) / float(max(self.steps, 1)), 1.0)
        return self.initial * (1.0 - frac)

    def get_config(self):
        return {"initial": self.initial, "steps": self.steps}


def decayed(initial: float, cfg: TrainConfig, steps_per_epoch: int):
    """`initial` decayed over the run's steps by ``cfg.schedule`` (cosine / linear to 0, or constant)."""
    total = max(1, int(cfg.epochs) * int(steps_per_epoch))
    if cfg.schedule == "cosine":
        return tf.keras.optimizers.schedules.CosineDecay(initial, total)
    if cfg.schedule == "linear":
        return LinearDecay(initial, total)
    if cfg.schedule == "constant":
        return float(initial)
    raise not_allowed(f"Unknown learning-rate schedule {cfg.schedule!r}", SCHEDULES)


def learning_rate(cfg: TrainConfig, steps_per_epoch: int):
    return decayed(cfg.learning_rate, cfg, steps_per_epoch)


def is_binary_kernel(variable) -> bool:
    """larq's test for a binary variable (``precision == 1``): the kernels of `BinaryGroupConv2D` (XNOR
    weight quantizer) and the supernet's shared binary kernels; not real-valued-weight convs (two-step
    training's step 1), BatchNorm, thresholds, RPReLU, the stem or the classifier."""
    import larq as lq

    return lq.optimizers.Bop.is_binary_variable(variable)


def make_optimizer(cfg: TrainConfig, steps_per_epoch: int, model: Optional[tf.keras.Model] = None, *,
                   legacy: bool = False):
    """The optimizer of ``cfg.optimizer``: "adam", "sgd", or "bop".

    ``legacy=True``: Adam and SGD are Keras's legacy optimizers (the same updates, with per-variable slots,
    as masked updates need); "bop" always is.

    "bop": larq's `CaseOptimizer` with `Bop` (threshold ``cfg.bop_threshold``, adaptivity rate
    ``cfg.bop_gamma`` decayed by ``cfg.schedule`` like the learning rate) for the binary kernels of `model`
    (`is_binary_kernel`) and Adam (``cfg.learning_rate``) for every other variable; larq needs Keras's legacy
    optimizers inside `CaseOptimizer` on TF >= 2.11. A model without binary kernels (two-step training's
    step 1) gets Adam alone.

    # References
        - [Latent Weights Do Not Exist: Rethinking Binarized Neural Network Optimization](
          https://arxiv.org/abs/1906.02107) (Bop)
    """
    lr = learning_rate(cfg, steps_per_epoch)
    optimizers = tf.keras.optimizers.legacy if legacy else tf.keras.optimizers
    if cfg.optimizer == "adam":
        return optimizers.Adam(lr, beta_1=0.9)
    if cfg.optimizer == "sgd":
        return optimizers.SGD(lr, momentum=0.9, nesterov=True)
    if cfg.optimizer == "bop":
        import larq as lq

        if model is None:
            raise ValueError("optimizer 'bop' needs the model, to find its binary kernels (make_optimizer(..., model))")
        adam = tf.keras.optimizers.legacy.Adam(lr, beta_1=0.9)
        if not any(is_binary_kernel(v) for v in model.trainable_variables):
            log.info("Model %r has no binary kernels: Adam trains every variable", model.name)
            return adam
        bop = lq.optimizers.Bop(threshold=cfg.bop_threshold, gamma=decayed(cfg.bop_gamma, cfg, steps_per_epoch))
        return lq.optimizers.CaseOptimizer((is_binary_kernel, bop), default_optimizer=adam)
    raise not_allowed(f"Unknown optimizer {cfg.optimizer!r}", OPTIMIZERS)


def has_grouped_convs(model: tf.keras.Model) -> bool:
    """Whether `model` has a grouped convolution (a conv layer with ``groups > 1``, or an elastic conv, which
    gathers grouped kernels)."""
    return any(isinstance(m, ElasticConv) or (isinstance(m, tf.keras.layers.Conv2D) and getattr(m, "groups", 1) > 1)
               for m in model.submodules)


def compile_model(model: tf.keras.Model, cfg: TrainConfig, steps_per_epoch: int) -> tf.keras.Model:
    """Compile with the optimizer of `cfg` and cross-entropy on the labels (a `Distiller`: the
    distributional loss against its teacher; a `SupernetTrainer` computes its own training loss); metric:
    top-1 accuracy against the labels.

    # Raises
        RuntimeError: `model` has grouped convolutions and this process cannot train them (CPU without
            TensorFlow's oneDNN kernels: `_onednn.grouped_training_problem`), before any step runs.
    """
    problem = _onednn.grouped_training_problem() if has_grouped_convs(model) else ""
    if problem:
        raise RuntimeError(f"Model {model.name!r}: {problem}")
    loss = distillation_loss() if isinstance(model, Distiller) else \
        tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    legacy = isinstance(model, SupernetTrainer) and model.masked_updates
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch, model, legacy=legacy), loss=loss,
                  metrics=["accuracy"])
    return model


def create_training_variables(trained: tf.keras.Model, model: tf.keras.Model, labels: tf.TensorSpec) -> None:
    """Create the variables that `trained`'s first train step would create (the optimizer's slots and counters,
    the compiled metrics), before Keras traces that step.

    A variable created while `tf.function` traces a function for the first time makes it trace the function
    again (its rule for variable creation), and the train step of a 13-block binary MobileNet takes seconds to
    trace: without this every `fit` traced it twice. The same variables with the same initial values, created
    earlier (inside the strategy's scope, as compiling). `model` gives the logits' shape the metrics see,
    `labels` the labels' spec (the training stream's)."""
    opt = trained.optimizer
    variables = trained.trainable_variables
    import larq as lq

    if isinstance(opt, lq.optimizers.CaseOptimizer):
        if opt.var_opt_mapping is None:
            opt._compute_var_opt_mapping([(None, v) for v in variables])
        _ = opt.iterations
        claimed: List[List[tf.Variable]] = [[] for _ in opt.optimizers]
        for v in variables:
            index = opt.var_opt_mapping.get(lq.optimizers._var_key(v))
            if index is not None:
                claimed[index].append(v)
        for sub, sub_vars in zip(opt.optimizers, claimed):
            sub._create_all_weights(sub_vars)
    elif isinstance(opt, tf.keras.optimizers.legacy.Optimizer):
        opt._create_all_weights(variables)
    else:
        opt.build(variables)
    logits = tf.zeros([1] + list(model.output_shape[1:]), tf.float32)
    if not trained.compiled_loss.built:
        trained.compiled_loss.build(logits)
    if trained.compiled_metrics is not None and not trained.compiled_metrics.built:
        trained.compiled_metrics.build(logits, tf.zeros([1] + list(labels.shape[1:]), labels.dtype))


def atomic_save_weights(model: tf.keras.Model, path: str) -> None:
    """Save `model`'s weights to an HDF5 file atomically (temp file + rename)."""
    atomic_write(path, model.save_weights, suffix=".h5")


def read_history(path: str) -> Dict[str, List[float]]:
    """Epoch history from a CSVLogger file (last row per epoch wins, in epoch order)."""
    if not os.path.exists(path):
        return {}
    rows: Dict[int, Dict[str, float]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            try:
                epoch = int(row["epoch"])
            except (KeyError, TypeError, ValueError):
                continue
            values = {}
            for k, v in row.items():
                try:
                    values[k] = float(v)
                except (TypeError, ValueError):  # "NA" for metrics an epoch did not compute
                    pass
            values.pop("epoch", None)
            rows[epoch] = values
    history: Dict[str, List[float]] = {}
    for epoch in sorted(rows):
        for k, v in rows[epoch].items():
            history.setdefault(k, []).append(v)
    return history


#: Name of BackupAndRestore's saved-epoch variable in its checkpoints (tf_keras WorkerTrainingState).
_SAVED_EPOCH_KEY = "ckpt_saved_epoch/.ATTRIBUTES/VARIABLE_VALUE"


def resume_epoch(backup_dir: str) -> int:
    """The epoch a `BackupAndRestore` backup in `backup_dir` resumes training at (0 without a backup).

    Keras's `BackupAndRestore` (``save_freq="epoch"``) keeps its latest checkpoint in ``backup_dir/chief/``
    (every worker of a cluster restores from there) with the last finished epoch in a variable
    ``ckpt_saved_epoch``; training resumes at the next epoch.
    """
    checkpoint = tf.train.latest_checkpoint(os.path.join(backup_dir, "chief"))
    if checkpoint is None:
        return 0
    saved = int(tf.train.load_checkpoint(checkpoint).get_tensor(_SAVED_EPOCH_KEY))
    return saved + 1 if saved >= 0 else 0


def keras_verbose(verbose: int, stream=None) -> int:
    """Keras's ``fit(verbose=...)`` for `verbose`: its progress bar only on a terminal, one line per epoch otherwise.

    Keras redraws its bar with ``\\r`` after every batch, even when the output goes to a file or a pipe (thousands
    of updates per epoch in a log); ``verbose=2`` prints one line per epoch instead.

    # Arguments
        verbose: 0 (silent), 1 (progress) or 2 (one line per epoch).
        stream: where Keras prints (default: ``sys.stdout``).

    # Returns
        `verbose`, with 1 turned into 2 when `stream` is not a terminal.
    """
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    if verbose == 1 and not (isatty is not None and isatty()):
        return 2
    return verbose


def fit(
    model: tf.keras.Model,
    train: Union[tf.data.Dataset, Callable[[int], tf.data.Dataset]],
    cfg: TrainConfig,
    out_dir: str,
    *,
    steps_per_epoch: int,
    validation: Optional[tf.data.Dataset] = None,
    callbacks: Sequence[tf.keras.callbacks.Callback] = (),
    verbose: int = 1,
    teacher: Optional[tf.keras.Model] = None,
    trainer: Optional[Callable[[tf.keras.Model, Optional[tf.keras.Model]], tf.keras.Model]] = None,
) -> Dict[str, List[float]]:
    """Compile and train `model` for `cfg.epochs` epochs in `out_dir`, resuming an interrupted run.

    `train` is either the training stream from a given epoch on, ``train(epoch) -> tf.data.Dataset`` (e.g.
    `Dataset.train_from`; a resumed run gets the stream at the epoch it resumes from, so it ends with the
    weights of an uninterrupted run), or a `tf.data.Dataset` read from its start whatever the epoch.
    `steps_per_epoch` batches make one epoch.

    `verbose` is Keras's; its progress bar is drawn only on a terminal (`keras_verbose`: one line per epoch when
    the output goes to a file or a pipe).

    With a `teacher`, `model` learns with the distributional loss against it (`distillation.Distiller`;
    the backup holds both, ``weights.h5`` the student's weights only). With a `trainer`, the model that
    `fit` trains is ``trainer(model, teacher)`` built in the strategy's scope (e.g. a
    `supernet_training.SupernetTrainer`; its callbacks come in `callbacks`); ``weights.h5`` is `model`'s.

    Distributed training: build `model` inside ``strategy.scope()``; it is compiled in the same scope and
    `train` (global batches) is split across the replicas by Keras. In a multi-worker cluster only the chief
    writes ``out_dir``; other workers write their history and weights to ``out_dir/worker-<index>/``
    (BackupAndRestore handles its own per-worker files).

    # Returns
        The epoch history (also in ``out_dir/history.csv``).
    """
    from .distribute import worker_info

    strategy = model.distribute_strategy
    private = worker_info(strategy).private_dir(out_dir)
    os.makedirs(private, exist_ok=True)
    tf.keras.utils.set_random_seed(int(cfg.seed))
    trained = model
    with strategy.scope():
        if trainer is not None:
            trained = trainer(model, teacher)
        elif teacher is not None:
            trained = Distiller(model, teacher)
        compile_model(trained, cfg, steps_per_epoch)
    history_path = os.path.join(private, "history.csv")
    backup_dir = os.path.join(out_dir, "backup")
    start = resume_epoch(backup_dir)  # Keras restores the backup only after creating the data iterator
    if isinstance(train, tf.data.Dataset):
        if start > 0:
            log.warning("Resuming %s at epoch %d with a fixed tf.data.Dataset: its data starts from the beginning "
                        "again (pass Dataset.train_from to resume the data stream as well)", out_dir, start)
    elif callable(train):
        train = train(start)
    else:
        raise TypeError(f"train: expected a tf.data.Dataset or a callable epoch -> tf.data.Dataset, received "
                        f"{type(train).__name__}")
    if isinstance(train, tf.data.Dataset) and isinstance(train.element_spec, tuple):
        with strategy.scope():
            create_training_variables(trained, model, train.element_spec[1])
    cbs = [  # backup and history first, so an epoch that finished is recorded before user callbacks run
        tf.keras.callbacks.BackupAndRestore(backup_dir, save_freq="epoch", delete_checkpoint=False),
        tf.keras.callbacks.CSVLogger(history_path, append=True),
        *callbacks,
    ]
    trained.fit(
        train,
        epochs=int(cfg.epochs),
        steps_per_epoch=steps_per_epoch,
        validation_data=validation,
        callbacks=cbs,
        verbose=keras_verbose(verbose) if private == out_dir else 0,
    )
    atomic_save_weights(model, os.path.join(private, "weights.h5"))
    return read_history(history_path)


def accuracy(model_fn, batches: Iterable) -> float:
    correct = total = 0
    for images, labels in batches:
        logits = model_fn(images)
        correct += int(np.sum(np.argmax(np.asarray(logits), axis=-1) == np.asarray(labels)))
        total += int(np.asarray(labels).shape[0])
    if total == 0:
        raise ValueError("cannot compute accuracy on an empty split")
    return correct / total


class SupernetEvaluator:
    """Fitness of a genotype: held-out top-1 of the supernet under it, after exact BatchNorm recalibration.

    Deterministic: the recalibration batches and held-out batches are fixed, so the same genotype always
    gets the same score. The supernet's own BatchNorm state is restored by `restore()`.

    # Arguments
        supernet: the trained weight-sharing model.
        recalibration: iterable of (images, labels) batches from the training split (re-iterable).
        holdout: iterable of (images, labels) batches of the held-out split (never the test split).
    """

    def __init__(self, supernet: tf.keras.Model, recalibration: Iterable, holdout: Iterable):
        self.supernet = supernet
        self.recalibration = [(np.asarray(x), np.asarray(y)) for x, y in recalibration]
        self.holdout = holdout
        self._predict = tf.function(lambda x: supernet(x, training=False), reduce_retracing=True)
        self._saved_bn = [(bn.moving_mean.numpy(), bn.moving_variance.numpy()) for bn in batchnorm_layers(supernet)]
        self.evaluations = 0

    def accuracy_of(self, genotype: Genotype, recalibrate: bool = True) -> float:
        set_genotype(self.supernet, genotype)
        if recalibrate:
            recalibrate_batchnorm(self.supernet, self.recalibration)
        self.evaluations += 1
        return accuracy(self._predict, self.holdout)

    def score(self, genotypes: Sequence[Genotype]) -> List[float]:
        return [self.accuracy_of(tuple(g)) for g in genotypes]

    def restore(self) -> None:
        for bn, (mean, var) in zip(batchnorm_layers(self.supernet), self._saved_bn):
            bn.moving_mean.assign(mean)
            bn.moving_variance.assign(var)
