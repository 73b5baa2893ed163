"""Keras layers: binary group convolution (LCE-lowerable) and a validated real-valued group convolution.

Both are plain `tf.keras` layers (Keras 2 / tf-keras), serializable with `nn.registry.custom_objects()` and usable in any
functional or sequential model.
"""

from __future__ import annotations

import numbers

import larq as lq
import tensorflow as tf

from . import quantizers  # noqa: F401  (registers "xnor_weight")
from .specs import LCE_CHANNELS_PER_GROUP, allowed_group_counts

PACKAGE = "larq_mobisearch"  # Keras serialization package of every registered class


# No Python control flow depends on tensors in larq's conv call; skipping AutoGraph's source conversion of
# it (which fails on larq's QuantizedVariable anyway, with a warning) makes tracing much faster.
_quant_conv_call = tf.autograph.experimental.do_not_convert(lambda layer, inputs: lq.layers.QuantConv2D.call(layer, inputs))


class _PlainGroupedConvolution:
    """Grouped convs as TensorFlow's own op. tf-keras wraps every grouped conv in an XLA-compiled function (a
    workaround from before TensorFlow ran grouped `Conv2D` on CPU); TensorFlow 2.16 runs them forward and backward
    on CPU, and XLA made training several times slower there (BENCHMARKS.md "Measured")."""

    def _jit_compiled_convolution_op(self, inputs, kernel):  # tf-keras's hook for groups > 1
        return self.convolution_op(inputs, kernel)


def _check_groups_arg(layer_name: str, groups, filters) -> int:
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{layer_name}: groups must be a positive integer, received groups={groups!r}")
    groups = int(groups)
    if filters is not None and int(filters) % groups:
        raise ValueError(
            f"{layer_name}: groups={groups} must divide filters={filters}; "
            f"allowed group counts for {filters} filters: {list(allowed_group_counts(filters, filters, binary=False))}"
        )
    return groups


def _check_groups_in_build(layer, in_channels: int, *, binary: bool, lce_compatible: bool) -> None:
    g, filters = layer.groups, layer.filters
    allowed = allowed_group_counts(in_channels, filters, binary=binary, lce_compatible=lce_compatible)
    if g in allowed:
        return
    if in_channels % g:
        why = f"groups must divide the input channels ({in_channels})"
    else:
        why = (
            f"input channels per group is {in_channels // g}, must be a multiple of {LCE_CHANNELS_PER_GROUP} "
            f"for Larq Compute Engine to lower a grouped binary conv (pass lce_compatible=False to allow it "
            f"for training only; it will not export to LceBconv2d)"
        )
    raise ValueError(
        f"Layer {layer.name!r}: invalid groups={g} for {in_channels} input channels and {filters} filters: "
        f"{why}. Allowed group counts: {list(allowed)}"
    )


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class BinaryGroupConv2D(_PlainGroupedConvolution, lq.layers.QuantConv2D):
    """Binary (1-bit weights and activations) 2D group convolution that LCE lowers to `LceBconv2d`.

    Same signature as `tf.keras.layers.Conv2D` plus Larq's quantizer arguments, with the paper's defaults:
    ApproxSign activations (eq. 3-4), XNOR-scaled binary weights (eq. 6), `padding="same"` padded with
    +1 (`pad_values=1.0`, what LCE's binary kernels pad with, so LCE matches Keras), no bias.

    # Arguments
        filters: output channels.
        kernel_size: int or (h, w).
        groups: number of groups; must divide the input channels and `filters`.
        lce_compatible: if True (default), a grouped conv (groups > 1) must have a multiple of 32 input
            channels per group, the condition under which LCE lowers it; otherwise LCE silently keeps
            float ops. Set False only for research models that will not be exported.
        input_quantizer, kernel_quantizer, kernel_constraint, pad_values: as in `larq.layers.QuantConv2D`.
        **kwargs: any other `tf.keras.layers.Conv2D` argument.
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="same",
        groups: int = 1,
        input_quantizer="approx_sign",
        kernel_quantizer="xnor_weight",
        kernel_constraint="weight_clip",
        pad_values: float = 1.0,
        use_bias: bool = False,
        lce_compatible: bool = True,
        **kwargs,
    ):
        groups = _check_groups_arg(kwargs.get("name") or type(self).__name__, groups, filters)
        self.lce_compatible = bool(lce_compatible)
        super().__init__(
            filters,
            kernel_size,
            strides=strides,
            padding=padding,
            groups=groups,
            input_quantizer=input_quantizer,
            kernel_quantizer=kernel_quantizer,
            kernel_constraint=kernel_constraint,
            pad_values=pad_values,
            use_bias=use_bias,
            **kwargs,
        )

    def build(self, input_shape):
        in_channels = tf.TensorShape(input_shape)[-1]
        if in_channels is None:
            raise ValueError(f"Layer {self.name!r}: the channel dimension of the input must be known")
        _check_groups_in_build(self, int(in_channels), binary=True, lce_compatible=self.lce_compatible)
        super().build(input_shape)

    def call(self, inputs):
        return _quant_conv_call(self, inputs)

    def get_config(self):
        return {**super().get_config(), "lce_compatible": self.lce_compatible}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class GroupConv2D(_PlainGroupedConvolution, tf.keras.layers.Conv2D):
    """Real-valued `Conv2D` whose `groups` are validated with messages listing the allowed counts.

    TFLite's builtin CONV_2D runs grouped filters (measured with LCE's interpreter), so this converts as
    one op; it exists for the clear errors and for symmetry with `BinaryGroupConv2D`.
    """

    def __init__(self, filters, kernel_size, groups: int = 1, **kwargs):
        groups = _check_groups_arg(kwargs.get("name") or type(self).__name__, groups, filters)
        super().__init__(filters, kernel_size, groups=groups, **kwargs)

    def build(self, input_shape):
        in_channels = tf.TensorShape(input_shape)[-1]
        if in_channels is None:
            raise ValueError(f"Layer {self.name!r}: the channel dimension of the input must be known")
        _check_groups_in_build(self, int(in_channels), binary=False, lce_compatible=False)
        super().build(input_shape)


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ChannelFit(tf.keras.layers.Layer):
    """Part `part` of `parts` equal channel slices of the input, cropped or zero-padded to `channels`: a shortcut
    between tensors of different widths (width genes). TFLite runs it as a slice and a pad.

    # Arguments
        channels: output channels.
        part, parts: which of `parts` equal slices of the input channels to take (M3's "split" shortcut).
    """

    def __init__(self, channels: int, part: int = 0, parts: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.part, self.parts = int(channels), int(part), int(parts)
        if self.channels < 1 or self.parts < 1 or not 0 <= self.part < self.parts:
            raise ValueError(f"ChannelFit: received channels={channels}, part={part}, parts={parts}; need channels "
                             f">= 1 and 0 <= part < parts")

    def call(self, inputs):
        c = inputs.shape[-1] // self.parts
        x = inputs[..., self.part * c:(self.part + 1) * c] if self.parts > 1 else inputs
        if self.channels < c:
            return x[..., : self.channels]
        if self.channels > c:
            return tf.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[0, self.channels - c]])
        return x

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.channels])

    def get_config(self):
        return {**super().get_config(), "channels": self.channels, "part": self.part, "parts": self.parts}

    @staticmethod
    def fit(x, channels: int, *, name: str, part: int = 0, parts: int = 1):
        """`x` fitted to `channels`: `x` itself or its plain slice where no crop or pad is needed (the graph
        without width genes is unchanged), else a `ChannelFit` layer."""
        c = x.shape[-1]
        if parts == 1 and c == channels:
            return x
        if c == parts * channels:
            return x[..., part * channels:(part + 1) * channels]
        return ChannelFit(channels, part, parts, name=name)(x)
