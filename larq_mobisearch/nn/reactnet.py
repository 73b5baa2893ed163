"""ReActNet's learnable activations (Liu et al., ECCV 2020), as Keras layers the model builder can insert.

- RSign: ``sign(x - alpha_c)`` with a learnable threshold per channel. `LearnableThreshold` computes
  ``x - alpha_c``; the binary conv that follows binarizes it with its own ApproxSign input quantizer, so the
  pair is RSign with ApproxSign's backward pass (Bi-Real Net's polynomial STE) and every binary conv stays a
  plain `BinaryGroupConv2D` that LCE lowers to `LceBconv2d` (the threshold becomes one float SUB before
  `LceQuantize`).
- RPReLU: ``PReLU_c(x - gamma_c) + zeta_c`` with learnable per-channel shifts and slope (`RPReLU`), placed
  after each block's residual add(s) as in ReActNet's code. It converts to TFLite's builtin PRELU between
  two float element-wise ops.

Both are plain serializable layers (`custom_objects()` lists them).

# References
    - [ReActNet: Towards Precise Binary Neural Network with Generalized Activation Functions](
      https://arxiv.org/abs/2003.03488), code: https://github.com/liuzechun/ReActNet
"""

from __future__ import annotations

import tensorflow as tf

from .layers import PACKAGE


def _channels(layer: tf.keras.layers.Layer, input_shape) -> int:
    channels = tf.TensorShape(input_shape)[-1]
    if channels is None:
        raise ValueError(f"Layer {layer.name!r}: the channel dimension of the input must be known")
    return int(channels)


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class LearnableThreshold(tf.keras.layers.Layer):
    """RSign's learnable per-channel threshold: ``y = x - alpha_c`` (channels last).

    Followed by a binary conv (whose ApproxSign input quantizer takes the sign) this is ReActNet's RSign,
    ``sign(x - alpha_c)``, with the gradient ``approx_sign'(x - alpha_c)`` to `x` and its negative, summed
    over batch and positions, to `alpha_c`. ReActNet's code writes it as ``x + b`` (`LearnableBias`), b = -alpha.

    # Arguments
        threshold_initializer: initializer of alpha (default zeros: starts as plain sign).
    """

    def __init__(self, threshold_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.threshold_initializer = tf.keras.initializers.get(threshold_initializer)

    def build(self, input_shape):
        self.threshold = self.add_weight("threshold", shape=(_channels(self, input_shape),),
                                         initializer=self.threshold_initializer, trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        return inputs - self.threshold

    def get_config(self):
        return {**super().get_config(),
                "threshold_initializer": tf.keras.initializers.serialize(self.threshold_initializer)}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class RPReLU(tf.keras.layers.Layer):
    """ReActNet's RPReLU: ``y = PReLU_c(x - gamma_c) + zeta_c`` per channel (channels last).

    PReLU_c(t) = t for t >= 0 and beta_c * t for t < 0, computed as Keras's `PReLU` does
    (``relu(t) + (-beta_c) * relu(-t)``, the form TFLite's converter turns into its builtin PRELU op).

    # Arguments
        gamma_initializer: initializer of the shift before the PReLU (default zeros).
        alpha_initializer: initializer of the negative slope beta (default 0.25, PyTorch's `nn.PReLU`,
            which ReActNet uses).
        zeta_initializer: initializer of the shift after the PReLU (default zeros).
    """

    def __init__(self, gamma_initializer="zeros", alpha_initializer=None, zeta_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.gamma_initializer = tf.keras.initializers.get(gamma_initializer)
        self.alpha_initializer = tf.keras.initializers.get(
            alpha_initializer if alpha_initializer is not None else tf.keras.initializers.Constant(0.25))
        self.zeta_initializer = tf.keras.initializers.get(zeta_initializer)

    def build(self, input_shape):
        c = _channels(self, input_shape)
        self.gamma = self.add_weight("gamma", shape=(c,), initializer=self.gamma_initializer, trainable=True)
        self.alpha = self.add_weight("alpha", shape=(c,), initializer=self.alpha_initializer, trainable=True)
        self.zeta = self.add_weight("zeta", shape=(c,), initializer=self.zeta_initializer, trainable=True)
        super().build(input_shape)

    def call(self, inputs):
        x = inputs - self.gamma
        # Keras's PReLU form with the slope at the input's rank: TFLite's converter matches it to PRELU (with a
        # rank-1 or batch-ranked slope it keeps RELU, NEG, RELU, MUL, ADD; measured).
        alpha = tf.reshape(self.alpha, [1] * (inputs.shape.rank - 2) + [-1])  # no batch axis, as Keras PReLU
        x = tf.nn.relu(x) + (-alpha) * tf.nn.relu(-x)
        return x + self.zeta

    def get_config(self):
        ser = tf.keras.initializers.serialize
        return {**super().get_config(), "gamma_initializer": ser(self.gamma_initializer),
                "alpha_initializer": ser(self.alpha_initializer), "zeta_initializer": ser(self.zeta_initializer)}
