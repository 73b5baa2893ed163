"""Quantizers of the paper (§3.1, §3.2.4), registered with Larq so layers can name them.

- Activations: ApproxSign (Bi-Real Net's polynomial straight-through estimator, paper eq. 3-4). Larq's own
  `approx_sign` is exactly eq. 3-4 (forward `larq.math.sign` with sign(0) = +1, backward 2 + 2x on
  [-1, 0), 2 - 2x on [0, 1), 0 elsewhere), so it is reused, not rewritten: `"approx_sign"` /
  `larq.quantizers.ApproxSign`. `tests/test_quantizers.py` proves the equality against NumPy.
- Weights: `XnorWeight` ("xnor_weight"), sign with XNOR-Net scaling (eq. 6): per output channel,
  alpha = mean |W| over that channel's kernel. Larq lacks this with XNOR-Net's backward pass (its
  `MagnitudeAwareSign` stops the gradient through alpha); here the gradient flows through alpha, and the
  sign uses a clipped straight-through estimator. `xnor_weight_sign` also takes a block-diagonal mask so
  the weight-sharing supernet computes alpha over the active group's inputs only.
"""

from __future__ import annotations

from typing import Optional

import larq as lq
import tensorflow as tf
from larq import utils as lq_utils
from larq.quantizers import ApproxSign, approx_sign  # noqa: F401  (re-exported: paper eq. 3-4)

from .. import _keras

_keras.skip_autograph_for_keras2()  # before any Keras 2 / Larq code is traced

__all__ = ["approx_sign", "ApproxSign", "xnor_weight_sign", "XnorWeight"]


def xnor_weight_sign(x: tf.Tensor, clip_value: Optional[float] = 1.0, mask: Optional[tf.Tensor] = None) -> tf.Tensor:
    r"""Binarize a kernel with XNOR-Net scaling: alpha * sign(x), one alpha per output channel (last axis).

    \[ \alpha_c = \frac{1}{n_c}\sum_{i \in c} |W_i|, \qquad q(W_i) = \alpha_c\,\mathrm{sign}(W_i) \]

    The backward pass is XNOR-Net's: the exact derivative through alpha plus a straight-through estimator
    for the sign, zero where |x| > clip_value.

    # Arguments
        x: kernel, output channels on the last axis.
        clip_value: straight-through estimator clip threshold; `None` disables clipping.
        mask: optional 0/1 tensor broadcastable to `x`. Entries outside the mask are excluded from alpha
            and zeroed in the output (a block-diagonal mask makes a full kernel act as a grouped one).

    # Returns
        The binarized, scaled kernel (same shape as `x`).
    """
    x = tf.convert_to_tensor(x)
    axes = list(range(len(x.shape) - 1))
    binary = lq.quantizers.ste_sign(x, clip_value=clip_value)
    magnitude = tf.abs(x)
    if mask is None:
        alpha = tf.reduce_mean(magnitude, axis=axes)
        return alpha * binary
    mask = tf.cast(mask, x.dtype)
    count = tf.reduce_sum(tf.broadcast_to(mask, tf.shape(x)), axis=axes)
    alpha = tf.reduce_sum(magnitude * mask, axis=axes) / count
    return alpha * binary * mask


@lq_utils.register_alias("xnor_weight")
@lq_utils.register_keras_custom_object
class XnorWeight(lq.quantizers._BaseQuantizer):
    """Serializable XNOR-Net weight quantizer (sign with per-output-channel mean-|W| scaling, eq. 6).

    # Arguments
        clip_value: threshold for clipping the straight-through gradient; `None` disables clipping.
        metrics: larq quantizer metrics (e.g. `["flip_ratio"]`).
    """

    precision = 1

    def __init__(self, clip_value: Optional[float] = 1.0, **kwargs):
        self.clip_value = clip_value
        super().__init__(**kwargs)

    def call(self, inputs):
        return super().call(xnor_weight_sign(inputs, clip_value=self.clip_value))

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}
