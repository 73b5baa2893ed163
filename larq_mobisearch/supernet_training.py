"""Train where you search: the supernet's training step with several subnets, in-place distillation and
masked updates (issue 22).

`SupernetTrainer` wraps a supernet for the normal Keras `fit` API (as `distillation.Distiller` does; save the
supernet's weights, not the trainer's). Every step it trains the genotypes in the rows of its int32 variable
``genotypes`` (shape ``(subnets, genes)``), which `SubnetSampler` fills before each batch from
`nn.supernet.step_rng` (seed, optimizer step), so the genotypes of a step are a pure function of (seed, step)
and a resumed run trains exactly the subnets an uninterrupted one would:

- one row: a random subnet per step (Algorithm 2), within the search's FLOPs budget with budget sampling;
- the **sandwich rule** (BigNAS): row 0 the largest subnet, row 1 the smallest, then ``random`` sampled
  ones; their gradients are summed into one update;
- **in-place distillation** (OFA, BigNAS): row 0 learns from the labels (or the teacher's distribution),
  every other row from row 0's soft labels (`distillation.distributional_loss`, no gradient into row 0);
- **masked updates**: kernel entries that no subnet of the step uses (`nn.supernet.inactive_masks`), and
  their optimizer slots (Adam's moments, Bop's momentum), are put back after the update, bit for bit, so the
  weights of other genotypes no longer drift with the optimizer's state. Needs optimizers with
  `get_slot` (Keras's legacy optimizers, larq's `CaseOptimizer` of them).

# References
    - [BigNAS: Scaling Up Neural Architecture Search with Big Single-Stage Models](
      https://arxiv.org/abs/2003.11142) (sandwich rule, in-place distillation)
    - [Once-for-All: Train One Network and Specialize it for Efficient Deployment](
      https://arxiv.org/abs/1908.09791)
"""

from __future__ import annotations

import logging
from typing import List, Optional, Sequence

import numpy as np
import tensorflow as tf

from .distillation import check_teacher, distributional_loss
from .nn.space import Genotype, SearchSpace
from .nn.supernet import (RandomGenotype, assign_genotype, genotype_length, inactive_masks, optimizer_step,
                          sample_genotype, step_rng)

log = logging.getLogger(__name__)


def subnet_count(sandwich: bool, random: int = 2) -> int:
    """Subnets trained per step: ``2 + random`` with the sandwich rule, else one."""
    return 2 + int(random) if sandwich else 1


def step_genotypes(space: SearchSpace, seed: int, step: int, *, sandwich: bool = False, random: int = 2,
                   cost_model=None, budget: Optional[float] = None, max_tries: int = 1000) -> List[Genotype]:
    """The genotypes trained at optimizer step `step`: a pure function of (seed, step).

    # Arguments
        space: the search space.
        seed: the supernet's training seed.
        step: the optimizer step.
        sandwich: largest and smallest subnet first, then `random` sampled ones; else one sampled subnet (the
            genotype `RandomGenotype` would set).
        cost_model, budget: sampled subnets have cost <= budget (both given) or are uniform.

    # Returns
        A list of `subnet_count(sandwich, random)` genotypes.
    """
    rng = step_rng(seed, step)
    count = int(random) if sandwich else 1
    sampled = [sample_genotype(space, rng, cost_model, budget, max_tries) for _ in range(count)]
    return [space.largest(), space.smallest(), *sampled] if sandwich else sampled


class SubnetSampler(tf.keras.callbacks.Callback):
    """Fills a `SupernetTrainer`'s ``genotypes`` with `step_genotypes` of the optimizer step before every
    training batch (arguments as `step_genotypes`)."""

    def __init__(self, space: SearchSpace, seed: int = 0, *, sandwich: bool = False, random: int = 2,
                 cost_model=None, budget: Optional[float] = None, max_tries: int = 1000):
        super().__init__()
        self.space, self.seed, self.sandwich, self.random = space, int(seed), bool(sandwich), int(random)
        self.cost_model, self.budget, self.max_tries = cost_model, budget, max_tries
        self.last_genotypes: Optional[List[Genotype]] = None

    def on_train_batch_begin(self, batch, logs=None):
        step = optimizer_step(self.model.optimizer)
        rows = step_genotypes(self.space, self.seed, step, sandwich=self.sandwich, random=self.random,
                              cost_model=self.cost_model, budget=self.budget, max_tries=self.max_tries)
        self.model.genotypes.assign(np.asarray(rows, dtype=np.int32))
        self.last_genotypes = rows


def optimizer_slots(optimizer, variable) -> List[tf.Variable]:
    """The slot variables (moments, momentum) `optimizer` keeps for `variable` (none before its first step).

    # Raises
        TypeError: an optimizer without `get_slot` (Keras's new optimizers): masked updates need a legacy
            one or larq's `CaseOptimizer`.
    """
    pairs = getattr(optimizer, "pred_opt_pairs", None)
    if pairs is not None:  # larq's CaseOptimizer: the first optimizer whose predicate claims the variable
        owner = next((opt for predicate, opt in pairs if predicate(variable)), optimizer.default)
        return [] if owner is None else optimizer_slots(owner, variable)
    if not isinstance(optimizer, tf.keras.optimizers.legacy.Optimizer):
        raise TypeError(f"Masked updates need an optimizer with slots per variable (a tf.keras.optimizers.legacy "
                        f"optimizer or larq's CaseOptimizer); received {type(optimizer).__name__}")
    slots = []
    for name in optimizer.get_slot_names():
        try:
            slots.append(optimizer.get_slot(variable, name))
        except KeyError:
            pass
    return [s for s in slots if s.shape == variable.shape]


def sampling_setup(space: SearchSpace, cfg, *, cost_model=None, budget: Optional[float] = None,
                   max_tries: int = 1000):
    """The genotype callback and the `training.fit` trainer of the settings `cfg` (a `config.SupernetConfig`).

    # Arguments
        space: the search space; cost_model, budget: the FLOPs bound of sampled subnets (None: uniform).

    # Returns
        ``(callback, trainer)``: `RandomGenotype` and None (plain `fit`) without ``sandwich`` and
        ``masked_updates``; else `SubnetSampler` and ``trainer(supernet, teacher) -> SupernetTrainer``.
    """
    if cfg.sampling == "budget" and budget is None:
        log.info("supernet.sampling=budget: no FLOPs budget is known, so subnets are sampled uniformly")
    if not (cfg.sandwich or cfg.masked_updates):
        return RandomGenotype(space, seed=cfg.seed, cost_model=cost_model, budget=budget, max_tries=max_tries), None
    sampler = SubnetSampler(space, cfg.seed, sandwich=cfg.sandwich, random=cfg.sandwich_random,
                            cost_model=cost_model, budget=budget, max_tries=max_tries)
    subnets = subnet_count(cfg.sandwich, cfg.sandwich_random)

    def trainer(supernet: tf.keras.Model, teacher: Optional[tf.keras.Model] = None) -> "SupernetTrainer":
        return SupernetTrainer(supernet, subnets, inplace_distillation=cfg.inplace_distillation,
                               masked_updates=cfg.masked_updates, teacher=teacher)

    return sampler, trainer


class SupernetTrainer(tf.keras.Model):
    """Trains `supernet` on several subnets per step (the rows of ``genotypes``, filled by `SubnetSampler`).

    Calling it runs the supernet under its current genotype. Each step sums the gradients of every row's
    loss and applies one update; the reported ``loss`` is that sum, ``accuracy`` (and the other compiled
    metrics) compare row 0's logits with the labels.

    # Arguments
        supernet: the weight-sharing model (`nn.supernet.build_supernet`).
        subnets: rows per step (`subnet_count`).
        inplace_distillation: rows 1.. learn from row 0's soft labels instead of the labels.
        masked_updates: entries of searchable kernels that no row uses keep their value and optimizer slots.
        teacher: optional frozen model: row 0 (every row, without in-place distillation) learns with the
            distributional loss against it instead of the labels.
    """

    def __init__(self, supernet: tf.keras.Model, subnets: int = 1, *, inplace_distillation: bool = False,
                 masked_updates: bool = False, teacher: Optional[tf.keras.Model] = None, **kwargs):
        kwargs.setdefault("name", f"{supernet.name}_trainer")
        super().__init__(**kwargs)
        if int(subnets) < 1:
            raise ValueError(f"subnets: received {subnets}; must be >= 1")
        if inplace_distillation and int(subnets) < 2:
            raise ValueError(f"inplace_distillation needs at least 2 subnets per step (row 0 teaches the others); "
                             f"received subnets={subnets}")
        self.supernet = supernet
        self.subnets = int(subnets)
        self.inplace_distillation = bool(inplace_distillation)
        self.masked_updates = bool(masked_updates)
        if teacher is not None:
            check_teacher(teacher, supernet)
            teacher.trainable = False
        self.teacher = teacher
        genes = genotype_length(supernet)
        self.genotypes = tf.Variable(tf.ones((self.subnets, genes), tf.int32), trainable=False,
                                     name="subnet_genotypes")
        self.loss_tracker = tf.keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        metrics, seen = [], set()
        for metric in [self.loss_tracker, *super().metrics]:
            if id(metric) not in seen and not (metric is not self.loss_tracker and metric.name == "loss"):
                seen.add(id(metric))
                metrics.append(metric)
        return metrics

    def call(self, inputs, training=None):
        return self.supernet(inputs, training=training)

    def _loss(self, row: int, labels, logits, reference, teacher_logits):
        if row > 0 and self.inplace_distillation:
            return distributional_loss(reference, logits)  # stop-gradient soft labels of row 0
        if teacher_logits is not None:
            return distributional_loss(teacher_logits, logits)
        return tf.reduce_mean(tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))

    def train_step(self, data):
        x, y, _ = tf.keras.utils.unpack_x_y_sample_weight(data)
        variables = self.supernet.trainable_variables
        teacher_logits = None if self.teacher is None else tf.stop_gradient(self.teacher(x, training=False))
        total = None
        grads: List[Optional[tf.Tensor]] = [None] * len(variables)
        used = None
        first_logits = None
        for row in range(self.subnets):  # static count: one traced forward/backward per subnet
            assign_genotype(self.supernet, self.genotypes[row])
            with tf.GradientTape() as tape:
                logits = self.supernet(x, training=True)
                loss = self._loss(row, y, logits, first_logits, teacher_logits)
                if self.supernet.losses:
                    loss += tf.add_n(self.supernet.losses)
            row_grads = tape.gradient(loss, variables)
            grads = [g if a is None else (a if g is None else a + g) for a, g in zip(grads, row_grads)]
            total = loss if total is None else total + loss
            if row == 0:
                first_logits = logits
            if self.masked_updates:
                masks = [m for _, m in inactive_masks(self.supernet)]
                used = masks if used is None else [tf.maximum(u, m) for u, m in zip(used, masks)]
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if self.masked_updates:
            self._masked_apply(pairs, [v for v, _ in inactive_masks(self.supernet)], used)
        else:
            self.optimizer.apply_gradients(pairs)
        self.loss_tracker.update_state(total)
        self.compiled_metrics.update_state(y, first_logits)
        return {m.name: m.result() for m in self.metrics}

    def _masked_apply(self, pairs, kernels: Sequence[tf.Variable], used: Sequence[tf.Tensor]) -> None:
        """Apply `pairs`, then put back every kernel entry outside `used` and its optimizer slots."""
        kept = []
        for kernel, mask in zip(kernels, used):
            for var in [kernel, *optimizer_slots(self.optimizer, kernel)]:
                target = getattr(var, "latent_variable", var)  # larq's QuantizedVariable: its latent weights
                kept.append((target, mask, tf.identity(target.read_value())))
        self.optimizer.apply_gradients(pairs)
        for target, mask, old in kept:
            target.assign(tf.where(mask > 0, target.read_value(), old))
