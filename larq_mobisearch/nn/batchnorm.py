"""Exact BatchNorm recalibration (SPOS / Once-for-All style), for any Keras model.

A weight-sharing supernet trained with a different genotype every step has BatchNorm moving statistics
that match no single genotype. Before scoring a candidate, its statistics are reset and recomputed
*exactly* (the pooled mean and variance over all recalibration samples, not an exponential average)
while every BatchNorm normalizes with its batch statistics, as during training.
"""

from __future__ import annotations

from typing import Iterable, List

import numpy as np
import tensorflow as tf


def batchnorm_layers(model: tf.keras.Model) -> List[tf.keras.layers.BatchNormalization]:
    return [l for l in model.layers if isinstance(l, tf.keras.layers.BatchNormalization)]


def _stats_fn(model: tf.keras.Model):
    fn = getattr(model, "_lm_bn_stats_fn", None)
    if fn is not None:
        return fn
    bns = batchnorm_layers(model)
    if not bns:
        raise ValueError(f"Model {model.name!r} has no BatchNormalization layers to recalibrate")
    probe = tf.keras.Model(model.inputs, [bn.input for bn in bns], name=f"{model.name}_bn_probe")

    @tf.function(reduce_retracing=True, autograph=False)
    def fn(images):
        outs = probe(images, training=True)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        axes = lambda t: list(range(len(t.shape) - 1))  # noqa: E731
        moments = [tf.nn.moments(t, axes(t)) for t in outs]
        return [m for m, _ in moments], [v for _, v in moments]

    model._lm_bn_stats_fn = fn
    return fn


def _assign_prefix(variable: tf.Variable, value: np.ndarray) -> None:
    """Assign `value` to the first len(value) entries (an elastic BatchNorm at a narrower width keeps the rest)."""
    value = value.astype(np.float32)
    n = value.shape[0]
    if n == variable.shape[0]:
        variable.assign(value)
    else:
        variable.assign(np.concatenate([value, variable.numpy()[n:]]))


def recalibrate_batchnorm(model: tf.keras.Model, batches: Iterable) -> int:
    """Reset and recompute every BatchNorm's moving mean/variance of `model` over `batches`.

    Each BatchNorm's statistics become the exact mean and (biased) variance of its input over all samples
    of `batches` (images, or (images, labels) tuples), computed in training mode (an elastic BatchNorm: the
    statistics of the channels its input has).

    # Returns
        The number of samples used.
    """
    fn = _stats_fn(model)
    bns = batchnorm_layers(model)
    counts, means, variances = [], [], []
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        batch_means, batch_vars = fn(images)
        counts.append(int(images.shape[0]))
        means.append([m.numpy().astype(np.float64) for m in batch_means])
        variances.append([v.numpy().astype(np.float64) for v in batch_vars])
    total = sum(counts)
    if total == 0:
        raise ValueError("BatchNorm recalibration needs at least one batch; received none")
    w = np.asarray(counts, np.float64) / total
    for i, bn in enumerate(bns):
        # Pooled statistics from per-batch moments (parallel-variance formula, no E[x^2] - E[x]^2 cancellation).
        m_b = np.stack([m[i] for m in means])
        v_b = np.stack([v[i] for v in variances])
        mean = np.tensordot(w, m_b, axes=1)
        var = np.tensordot(w, v_b + (m_b - mean) ** 2, axes=1)
        _assign_prefix(bn.moving_mean, mean)
        _assign_prefix(bn.moving_variance, var)
    return total
