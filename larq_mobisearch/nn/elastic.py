"""Elastic layers: the supernet's one concept (OFA's dynamic layers, with group counts).

Every searchable conv holds ONE kernel at the largest width, ``(k, k, Cin_max, Cout_max)``. A genotype picks, per
layer, a slice (the first ``Cin`` input and ``Cout`` output channels, as OFA's ``DynamicConv2d``) and a group count
``g``; the layer then computes a true grouped convolution whose kernel is *gathered* from the slice's
block-diagonal blocks (the masked kernel's non-zero part), so a step computes only what the sampled subnet computes
and the weights outside the subnet get exactly zero gradient. The active sizes and group count live in int32
`tf.Variable`s, so switching genotype never retraces a compiled function. BatchNorm (`ElasticBatchNorm`), the
classifier (`ElasticDense`) and the shortcuts (`ElasticChannelFit`) follow the input's channels.

`extract_subnet` (`supernet.py`) crops the same slices and diagonal blocks into a plain model with real ``groups=g``
layers (`crop_kernel`), equal in outputs. Where every block has one width (a groups-only space) the channel
dimensions stay static, so layers with per-channel parameters (ReActNet's RSign, RPReLU) can follow.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import tensorflow as tf
from larq.quantized_variable import QuantizedVariable

from .layers import PACKAGE, ChannelFit
from .quantizers import approx_sign, xnor_weight_sign
from ..choices import not_allowed


def _same_padding(size, kernel: int, stride: int):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def gather_grouped_kernel(kernel: tf.Tensor, groups) -> tf.Tensor:
    """The kernel ``(k, k, Cin/g, Cout)`` of a ``groups=g`` conv from a full ``(k, k, Cin, Cout)`` kernel: its g
    diagonal blocks (input group j feeds output group j), for a tensor group count (no retracing per count)."""
    k1, k2 = kernel.shape[0], kernel.shape[1]
    shape = tf.shape(kernel)
    cin, cout = shape[2], shape[3]
    g = tf.cast(groups, tf.int32)
    blocks = tf.reshape(kernel, [k1, k2, g, cin // g, g, cout // g])
    blocks = tf.transpose(blocks, [2, 4, 0, 1, 3, 5])  # (g, g, k, k, Cin/g, Cout/g)
    index = tf.range(g)
    diagonal = tf.gather_nd(blocks, tf.stack([index, index], axis=1))  # (g, k, k, Cin/g, Cout/g)
    diagonal = tf.transpose(diagonal, [1, 2, 3, 0, 4])  # (k, k, Cin/g, g, Cout/g)
    return tf.reshape(diagonal, [k1, k2, cin // g, cout])


def crop_kernel(kernel: np.ndarray, in_channels: int, out_channels: int, groups: int) -> np.ndarray:
    """NumPy twin of `gather_grouped_kernel` on the first ``in_channels`` x ``out_channels`` slice: the weights
    of the real ``groups=g`` conv that `extract_subnet` builds."""
    w = np.asarray(kernel)[:, :, :in_channels, :out_channels]
    k, g = w.shape[0], int(groups)
    blocks = w.reshape(k, w.shape[1], g, in_channels // g, g, out_channels // g)
    diagonal = np.einsum("abjcjd->abcjd", blocks)  # (k, k, Cin/g, g, Cout/g)
    return np.ascontiguousarray(diagonal.reshape(k, w.shape[1], in_channels // g, out_channels))


class ElasticConv(tf.keras.layers.Layer):
    """A conv over the first ``Cin`` input channels (the input's) and the first `active_out` of its `filters`
    output channels, with `groups` groups gathered from one shared max-size kernel. Base of the binary and the
    float version.

    # Arguments
        filters: output channels at the largest width.
        kernel_size: square kernel size.
        strides: stride ("same" padding, as the fixed layers).
        in_channels: input channels at the largest width.
        candidates: the group counts this layer may take (validated by `set_active`).
        gene: index of this layer's group-count gene.
        static_channels: the layer always runs at full width (a groups-only space): shapes stay static.
    """

    binary = False

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, in_channels: Optional[int] = None,
                 candidates: Sequence[int] = (1,), gene: Optional[int] = None, static_channels: bool = False,
                 kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.max_in_channels = None if in_channels is None else int(in_channels)
        self.candidates = tuple(int(c) for c in candidates)
        if not self.candidates or any(c < 1 for c in self.candidates):
            raise ValueError(f"Layer {self.name!r}: candidate group counts must be positive, received "
                             f"{list(self.candidates)}")
        self.gene = gene
        self.static_channels = bool(static_channels)
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        cin = tf.TensorShape(input_shape)[-1]
        if self.max_in_channels is None:
            if cin is None:
                raise ValueError(f"Layer {self.name!r}: pass in_channels (the input's channels are not static)")
            self.max_in_channels = int(cin)
        self.in_channels = self.max_in_channels
        k = self.kernel_size
        self.kernel = self.add_weight("kernel", shape=(k, k, self.in_channels, self.filters),
                                      initializer=self.kernel_initializer, constraint=self._constraint(),
                                      trainable=True)
        state = dict(dtype=tf.int32, trainable=False, aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.groups = self.add_weight("groups", shape=(), initializer=tf.keras.initializers.Constant(1), **state)
        self.active_in = self.add_weight("active_in", shape=(),
                                         initializer=tf.keras.initializers.Constant(self.in_channels), **state)
        self.active_out = self.add_weight("active_out", shape=(),
                                          initializer=tf.keras.initializers.Constant(self.filters), **state)
        super().build(input_shape)

    def _constraint(self):
        return None

    def set_active(self, in_channels: int, out_channels: int, groups: int) -> None:
        """Switch to a ``groups``-group conv from ``in_channels`` to ``out_channels`` (a slice of the kernel)."""
        in_channels, out_channels, groups = int(in_channels), int(out_channels), int(groups)
        if groups not in self.candidates:
            raise not_allowed(f"Layer {self.name!r}: group count {groups} not allowed", self.candidates)
        if not (0 < in_channels <= self.in_channels and 0 < out_channels <= self.filters):
            raise ValueError(f"Layer {self.name!r}: channels {in_channels} -> {out_channels} outside the kernel's "
                             f"{self.in_channels} -> {self.filters}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"Layer {self.name!r}: {groups} groups do not divide {in_channels} -> {out_channels}")
        if self.static_channels and (in_channels, out_channels) != (self.in_channels, self.filters):
            raise ValueError(f"Layer {self.name!r} has static channels {self.in_channels} -> {self.filters}; "
                             f"received {in_channels} -> {out_channels}")
        self.groups.assign(groups)
        self.active_in.assign(in_channels)
        self.active_out.assign(out_channels)

    def active_kernel(self, in_channels) -> tf.Tensor:
        """The grouped kernel of the active subnet, ``(k, k, Cin/g, Cout)`` (before binarization)."""
        out = self.filters if self.static_channels else self.active_out
        return gather_grouped_kernel(self.kernel[:, :, :in_channels, :out], self.groups)

    def kernel_mask(self) -> tf.Tensor:
        """0/1 tensor of the kernel's shape: 1 on the entries the active subnet uses (its slice's diagonal blocks),
        what masked optimizer updates leave the rest of the kernel untouched by."""
        cin = tf.range(self.in_channels)
        cout = tf.range(self.filters)
        active_in, active_out, g = self.active_in, self.active_out, self.groups
        rows = tf.where(cin < active_in, cin // (active_in // g), -1)
        cols = tf.where(cout < active_out, cout // (active_out // g), -2)
        mask = tf.cast(tf.equal(rows[:, None], cols[None, :]), self.kernel.dtype)
        return tf.broadcast_to(mask[None, None], tf.shape(self.kernel))

    def _pad(self, inputs, value: float):
        if self.kernel_size == 1 and self.strides == 1:
            return inputs
        h, w = inputs.shape[1], inputs.shape[2]
        ph = _same_padding(h, self.kernel_size, self.strides)
        pw = _same_padding(w, self.kernel_size, self.strides)
        return tf.pad(inputs, [[0, 0], list(ph), list(pw), [0, 0]], constant_values=value)

    def crop_kernel(self, in_channels: int, out_channels: int, groups: int) -> np.ndarray:
        """The weights of the real conv of this layer in a subnet (`extract_subnet`)."""
        return crop_kernel(self.kernel.numpy(), in_channels, out_channels, groups)

    def _channels(self, inputs):
        cin = inputs.shape[-1]
        return cin if (cin is not None and self.static_channels) else tf.shape(inputs)[-1]

    def _finish(self, outputs):
        if self.static_channels:
            outputs.set_shape(outputs.shape[:-1].concatenate([self.filters]))
        return outputs

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        size = [None if s is None else -(-s // self.strides) for s in shape[1:3]]
        return tf.TensorShape([shape[0], *size, self.filters if self.static_channels else None])

    def get_config(self):
        return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
                "strides": self.strides, "in_channels": self.max_in_channels, "candidates": list(self.candidates),
                "gene": self.gene, "static_channels": self.static_channels,
                "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer)}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ElasticBinaryConv2D(ElasticConv):
    """Binary elastic conv ("same" padding with +1): ApproxSign on the input, the gathered grouped kernel
    binarized with XNOR scaling over each output channel's own group (eq. 6): equals `BinaryGroupConv2D(groups=g)`
    with the cropped weights."""

    binary = True
    #: Why LCE cannot lower this layer (read by `deploy` when checking a model before export).
    lce_problem = (
        "weight-sharing supernet conv: its kernel is a slice of a shared one chosen at run time and never lowers; "
        "materialise the model with nn.supernet.extract_subnet(supernet, genotype)"
    )

    def __init__(self, *args, clip_value: Optional[float] = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_value = clip_value

    def _constraint(self):
        return tf.keras.constraints.get("weight_clip")

    def _add_variable_with_custom_getter(self, name: str, **kwargs):
        """The shared kernel is a larq `QuantizedVariable` of precision 1 without a quantizer (it reads as the latent
        kernel), so larq's `Bop` (and `CaseOptimizer`) recognise it as binary, as the kernels of `BinaryGroupConv2D`."""
        if name != "kernel":
            return super()._add_variable_with_custom_getter(name, **kwargs)
        old_getter = kwargs.pop("getter")

        def getter(*args, **kw):
            return QuantizedVariable.from_variable(old_getter(*args, **kw), quantizer=None, precision=1)

        return super()._add_variable_with_custom_getter(name, getter=getter, **kwargs)

    def call(self, inputs):
        return _binary_call(self, inputs)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ElasticConv2D(ElasticConv):
    """Real-valued elastic conv ("same" zero padding), M2's searchable float 1x1 convs."""

    def call(self, inputs):
        return _float_call(self, inputs)


@tf.autograph.experimental.do_not_convert
def _binary_call(layer: ElasticBinaryConv2D, inputs):
    cin = layer._channels(inputs)
    kernel = xnor_weight_sign(layer.active_kernel(cin), clip_value=layer.clip_value)
    x = layer._pad(approx_sign(inputs), 1.0)
    return layer._finish(tf.nn.conv2d(x, kernel, strides=layer.strides, padding="VALID"))


@tf.autograph.experimental.do_not_convert
def _float_call(layer: ElasticConv2D, inputs):
    cin = layer._channels(inputs)
    x = layer._pad(inputs, 0.0)
    return layer._finish(tf.nn.conv2d(x, layer.active_kernel(cin), strides=layer.strides, padding="VALID"))


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ElasticBatchNorm(tf.keras.layers.BatchNormalization):
    """BatchNorm with parameters and moving statistics for `max_channels`, of which an input with C channels uses
    and updates the first C (OFA's ``DynamicBatchNorm2d``). Same weights as `BatchNormalization` (gamma, beta,
    moving mean, moving variance), so `batchnorm.recalibrate_batchnorm` and `extract_subnet` read it alike."""

    def __init__(self, max_channels: int, static_channels: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.max_channels = int(max_channels)
        self.static_channels = bool(static_channels)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        super().build(shape[:-1].concatenate([self.max_channels]))
        self.input_spec = tf.keras.layers.InputSpec(ndim=shape.rank)

    def call(self, inputs, training=None):
        if self.static_channels:  # always at full width: Keras's own BatchNorm (bit-identical to the fixed model)
            return super().call(inputs, training=training)
        c = tf.shape(inputs)[-1]
        gamma, beta = self.gamma[:c], self.beta[:c]
        axes = list(range(len(inputs.shape) - 1))

        def train():
            mean, variance = self._calculate_mean_and_var(inputs, axes, keep_dims=False)
            for var, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
                updated = var[:c] * self.momentum + tf.cast(value, var.dtype) * (1.0 - self.momentum)
                var.assign(tf.concat([updated, var[c:]], axis=0))
            return tf.nn.batch_normalization(inputs, mean, variance, beta, gamma, self.epsilon)

        def infer():  # the op Keras's BatchNormalization infers with, so a subnet's logits match bit for bit
            out, _, _ = tf.compat.v1.nn.fused_batch_norm(inputs, gamma, beta, mean=self.moving_mean[:c],
                                                         variance=self.moving_variance[:c], epsilon=self.epsilon,
                                                         is_training=False, data_format="NHWC")
            return out

        if training is None:
            training = tf.keras.backend.learning_phase()
        if isinstance(training, (bool, int)):
            outputs = train() if training else infer()
        else:
            outputs = tf.cond(tf.cast(training, tf.bool), train, infer)
        outputs.set_shape(inputs.shape)
        return outputs

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        return {**super().get_config(), "max_channels": self.max_channels, "static_channels": self.static_channels}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ElasticDense(tf.keras.layers.Dense):
    """The classifier over the first C of `max_inputs` features (C: the input's)."""

    def __init__(self, units: int, max_inputs: int, **kwargs):
        super().__init__(units, **kwargs)
        self.max_inputs = int(max_inputs)

    def build(self, input_shape):
        shape = tf.TensorShape(input_shape)
        super().build(shape[:-1].concatenate([self.max_inputs]))
        self.input_spec = tf.keras.layers.InputSpec(ndim=shape.rank)

    def call(self, inputs):
        c = tf.shape(inputs)[-1]
        return tf.nn.bias_add(tf.matmul(inputs, self.kernel[:c]), self.bias)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)[:-1].concatenate([self.units])

    def get_config(self):
        return {**super().get_config(), "max_inputs": self.max_inputs}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class ElasticChannelFit(tf.keras.layers.Layer):
    """``[x, y]`` -> part `part` of `parts` equal channel slices of ``x``, cropped or zero-padded to ``y``'s
    channels: a shortcut whose widths follow the genotype (`layers.ChannelFit` in the fixed model)."""

    def __init__(self, part: int = 0, parts: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.part, self.parts = int(part), int(parts)

    def call(self, inputs):
        x, like = inputs
        c = tf.shape(x)[-1] // self.parts
        x = x[..., self.part * c:(self.part + 1) * c]
        target = tf.shape(like)[-1]
        x = tf.pad(x, [[0, 0]] * (len(x.shape) - 1) + [[0, tf.maximum(target - c, 0)]])
        out = x[..., :target]
        out.set_shape(like.shape)
        return out

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape[1])

    def get_config(self):
        return {**super().get_config(), "part": self.part, "parts": self.parts}


class ElasticKit:
    """What `models.build_network` asks for besides the convs, in a supernet: elastic BatchNorm, classifier and
    shortcuts, sized by the widest architecture it builds (static shapes when ``static_channels``)."""

    def __init__(self, static_channels: bool):
        self.static = bool(static_channels)

    def batchnorm(self, name: str, channels: int, *, momentum: float, epsilon: float, synchronized: bool):
        return ElasticBatchNorm(channels, static_channels=self.static, momentum=momentum, epsilon=epsilon,
                                name=name, synchronized=synchronized)

    def classifier(self, units: int, inputs: int, name: str):
        if self.static:
            return tf.keras.layers.Dense(units, name=name)
        return ElasticDense(units, inputs, name=name)

    def fit(self, x, like, name: str, part: int = 0, parts: int = 1):
        if self.static:
            return ChannelFit.fit(x, like.shape[-1], name=name, part=part, parts=parts)
        return ElasticChannelFit(part, parts, name=name)([x, like])


def conv_channels(arch) -> dict:
    """Layer name -> (input channels, output channels, gene) of every block conv of `arch`."""
    return {c.name: (c.in_channels, c.out_channels, c.gene) for b in arch.blocks for c in b.convs}

