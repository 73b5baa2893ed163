"""Binary MobileNet models with modules M1, M2, M3 (paper §3.2.2, Figure 3), built from `specs`.

One builder (`build_network`) walks an `Architecture` and asks a factory for each convolution, so the fixed
model (real `groups=g` layers, for retraining and export) and the weight-sharing supernet (masked shared
kernels, `supernet.py`) are the same graph with the same layer names.

Block layout (13 blocks on a float stem handing on 32 channels: MobileNet's 3x3 stride-2 conv, or QuickNet's
3x3 stride-2 conv + 3x3 stride-2 depthwise conv + 1x1 conv, `specs.stem_specs`):

- every block: binary 3x3 group conv Cin->Cin (stride s) + BatchNorm, plus a shortcut (identity, or
  2x2 average pooling when s = 2);
- M1: then a binary 1x1 conv Cin->Cout + BatchNorm with identity shortcut where Cin == Cout, and a
  real-valued 1x1 conv + BatchNorm in the five blocks whose channel count changes;
- M2: as M1 but those five real-valued 1x1 convs are grouped too (genes 13..17);
- M3: two binary 1x1 convs Cin->Cout/2 + BatchNorm, concatenated; each half has a shortcut (the whole
  input when Cout = 2 Cin, its half of the input channels when Cout = Cin);
- head: global average pooling and a float dense classifier (logits).

Options (ReActNet, `reactnet.py`), the same in fixed models, the supernet and `extract_subnet`:

- ``activation="rsign"``: a `LearnableThreshold` before every binary conv's input (one shared by M3's two
  pointwise halves, as ReActNet's ``move21``), named ``<conv>_rsign`` (``block<i>_pw_rsign`` in M3);
- ``nonlinearity="rprelu"``: an `RPReLU` after each block's 3x3 residual add (``block<i>_rprelu3x3``) and
  after its pointwise part (``block<i>_rprelu``: after the add, the concatenation, or M1/M2's float 1x1).
"""

from __future__ import annotations

import functools
from typing import Callable, Sequence

import tensorflow as tf

from ..choices import ACTIVATIONS, NONLINEARITIES, check_choice
from .layers import BinaryGroupConv2D, ChannelFit, GroupConv2D
from .reactnet import LearnableThreshold, RPReLU
from .specs import Architecture, ConvSpec, architecture

#: Makes the layer (or any callable on a tensor) of one convolution of the network.
ConvFactory = Callable[[ConvSpec], Callable]

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-3


def _bn_layer(name: str, synchronized: bool = False) -> tf.keras.layers.BatchNormalization:
    return tf.keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name,
                                              synchronized=synchronized)


def fixed_conv_factory(genes: Sequence[int], lce_compatible: bool = True, *,
                       binary_weights: bool = True) -> ConvFactory:
    """Factory making real grouped layers: `BinaryGroupConv2D` / `GroupConv2D` with `groups=genes[i]`.

    `binary_weights=False` keeps the binary convs' activations binary but their weights real-valued (no
    kernel quantizer, no clipping): step 1 of ReActNet's two-step training. Same layers, names and weight
    shapes, so step 2 (the default) loads step 1's weights.
    """

    def make(spec: ConvSpec) -> tf.keras.layers.Layer:
        groups = 1 if spec.gene is None else int(genes[spec.gene])
        if spec.binary:
            extra = {} if binary_weights else {"kernel_quantizer": None, "kernel_constraint": None}
            return BinaryGroupConv2D(
                spec.out_channels,
                spec.kernel,
                strides=spec.stride,
                groups=groups,
                lce_compatible=lce_compatible,
                name=spec.name,
                **extra,
            )
        return GroupConv2D(
            spec.out_channels,
            spec.kernel,
            strides=spec.stride,
            padding="same",
            groups=groups,
            use_bias=False,
            name=spec.name,
        )

    return make


def float_conv_factory(genes: Sequence[int]) -> ConvFactory:
    """Factory of the real-valued twin (the distillation teacher): every binary conv becomes a ReLU and a
    zero-padded float `GroupConv2D` with the same groups, channels and stride (named ``<conv>_relu`` and
    ``<conv>``); float convs stay as in `fixed_conv_factory`. The ReLU takes the place of the sign as the
    network's nonlinearity (a real-valued net without one would be linear)."""

    def make(spec: ConvSpec):
        groups = 1 if spec.gene is None else int(genes[spec.gene])
        conv = GroupConv2D(spec.out_channels, spec.kernel, strides=spec.stride, padding="same", groups=groups,
                           use_bias=False, name=spec.name)
        if not spec.binary:
            return conv
        relu = tf.keras.layers.ReLU(name=f"{spec.name}_relu")
        return lambda x: conv(relu(x))

    return make


class FixedKit:
    """What `build_network` asks for besides the convs, in a fixed model: Keras BatchNorm, Dense classifier and
    `ChannelFit` shortcuts (only where width genes make a shortcut's channels differ). The supernet passes
    `elastic.ElasticKit` instead."""

    def batchnorm(self, name: str, channels: int, *, momentum: float, epsilon: float, synchronized: bool):
        return tf.keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name,
                                                  synchronized=synchronized)

    def classifier(self, units: int, inputs: int, name: str):
        return tf.keras.layers.Dense(units, name=name)

    def fit(self, x, like, name: str, part: int = 0, parts: int = 1):
        return ChannelFit.fit(x, like.shape[-1], name=name, part=part, parts=parts)


def network_options(model: tf.keras.Model) -> dict:
    """The `build_network` options a model was built with, read from its layers:
    ``{"activation": "approx_sign" | "rsign", "nonlinearity": "none" | "rprelu"}``."""
    layers = list(model.layers)
    return {"activation": "rsign" if any(isinstance(l, LearnableThreshold) for l in layers) else "approx_sign",
            "nonlinearity": "rprelu" if any(isinstance(l, RPReLU) for l in layers) else "none"}


def build_stem(arch: Architecture, x, *, sync_batchnorm: bool = False):
    """The float stem of `arch` (`specs.stem_specs`) on the image tensor `x`: each conv then BatchNorm
    (``<conv>_bn``; the first one's is ``stem_bn``), a ReLU after QuickNet's first conv (``stem_relu``). No ReLU
    at the stem's output: block 1 binarizes it with sign(), and sign(ReLU(x)) would be +1 everywhere."""
    for k, spec in enumerate(arch.stem_convs):
        if spec.depthwise:
            conv = tf.keras.layers.DepthwiseConv2D(spec.kernel, strides=spec.stride, padding="same",
                                                   use_bias=False, name=spec.name)
        else:
            conv = tf.keras.layers.Conv2D(spec.out_channels, spec.kernel, strides=spec.stride, padding="same",
                                          use_bias=False, name=spec.name)
        x = _bn_layer("stem_bn" if k == 0 else f"{spec.name}_bn", synchronized=sync_batchnorm)(conv(x))
        if k == 0 and len(arch.stem_convs) > 1:
            x = tf.keras.layers.ReLU(name="stem_relu")(x)
    return x


def build_network(arch: Architecture, make_conv: ConvFactory, name: str, *,
                  sync_batchnorm: bool = False, activation: str = "approx_sign",
                  nonlinearity: str = "none", rprelu_init_slope: float = 0.25, kit=None) -> tf.keras.Model:
    """Build the functional Keras model of `arch`, creating every block conv with `make_conv(spec)`.

    # Arguments
        arch: the architecture (`specs.architecture`).
        make_conv: the conv factory (`fixed_conv_factory`, `float_conv_factory`, the supernet's).
        name: the model's name.
        sync_batchnorm: BatchNorm layers compute batch statistics over all replicas of a `tf.distribute`
            strategy (same variables and weights file as plain BatchNorm; use it for data-parallel training).
        activation: "approx_sign" (the paper) or "rsign" (a learnable threshold before each binary conv).
        nonlinearity: "none" (the paper) or "rprelu" (after each residual add, see the module docstring).
        rprelu_init_slope: initial negative slope of every RPReLU (0.25: PyTorch's PReLU, ReActNet; 1.0 starts
            as the identity).
        kit: BatchNorm / classifier / shortcut factory (default `FixedKit`; the supernet's `elastic.ElasticKit`).
    """
    check_choice("Unknown activation", activation, ACTIVATIONS)
    check_choice("Unknown nonlinearity", nonlinearity, NONLINEARITIES)
    kit = kit or FixedKit()

    def _bn(name: str, channels: int):
        return kit.batchnorm(name, channels, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, synchronized=sync_batchnorm)

    def binary_input(t, spec_name: str):
        return LearnableThreshold(name=f"{spec_name}_rsign")(t) if activation == "rsign" else t

    def rprelu(t, layer_name: str):
        if nonlinearity != "rprelu":
            return t
        return RPReLU(alpha_initializer=tf.keras.initializers.Constant(rprelu_init_slope), name=layer_name)(t)

    inputs = tf.keras.Input(shape=arch.input_shape, name="image")
    x = build_stem(arch, inputs, sync_batchnorm=sync_batchnorm)

    for block in arch.blocks:
        conv3, pointwise = block.convs[0], block.convs[1:]
        y = make_conv(conv3)(binary_input(x, conv3.name))
        y = _bn(f"{conv3.name}_bn", conv3.out_channels)(y)
        shortcut = x
        if block.stride > 1:
            shortcut = tf.keras.layers.AveragePooling2D(
                block.stride, strides=block.stride, padding="same", name=f"block{block.index}_pool"
            )(x)
        x = tf.keras.layers.Add(name=f"block{block.index}_add3x3")([y, shortcut])
        x = rprelu(x, f"block{block.index}_rprelu3x3")

        if len(pointwise) == 2:  # M3: two binary halves Cin -> Cout/2
            outs = []
            shared = binary_input(x, f"block{block.index}_pw")
            for k, spec in enumerate(pointwise):
                y = make_conv(spec)(shared)
                y = _bn(f"{spec.name}_bn", spec.out_channels)(y)
                if block.pw_shortcut in ("full", "split"):  # the whole input, or this half's half of it
                    parts = 1 if block.pw_shortcut == "full" else 2
                    sc = kit.fit(x, y, f"{spec.name}_fit", part=k if parts == 2 else 0, parts=parts)
                    y = tf.keras.layers.Add(name=f"{spec.name}_add")([y, sc])
                outs.append(y)
            x = tf.keras.layers.Concatenate(name=f"block{block.index}_concat")(outs)
        else:
            spec = pointwise[0]
            y = make_conv(spec)(binary_input(x, spec.name) if spec.binary else x)
            y = _bn(f"{spec.name}_bn", spec.out_channels)(y)
            if spec.binary and block.pw_shortcut == "identity":
                y = tf.keras.layers.Add(name=f"{spec.name}_add")([y, kit.fit(x, y, f"{spec.name}_fit")])
            x = y
        x = rprelu(x, f"block{block.index}_rprelu")

    x = tf.keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = kit.classifier(arch.num_classes, arch.blocks[-1].out_channels, name="classifier")(x)
    return tf.keras.Model(inputs, outputs, name=name)


def build_model(
    module: str,
    groups=1,
    input_shape: Sequence[int] = (224, 224, 3),
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    lce_compatible: bool = True,
    activation: str = "approx_sign",
    nonlinearity: str = "none",
    rprelu_init_slope: float = 0.25,
    stem: str = "mobilenet",
) -> tf.keras.Model:
    """Build a fixed binary MobileNet with module M1, M2 or M3.

    # Arguments
        module: "m1", "m2" or "m3".
        groups: an int g (uniform: every searchable layer takes its largest legal group count <= g, e.g.
            block 1's 3x3 conv keeps 1 group where it has fewer than 64 input channels in the LCE space) or
            a sequence with one group count per searchable layer (validated strictly), in the order of
            `specs.architecture(module).gene_layers`: the 3x3 convs of blocks 1-13, then (M2 only) the
            real-valued 1x1 convs of blocks 1, 2, 4, 6, 12.
        input_shape: (height, width, channels).
        num_classes: classifier outputs (logits).
        width_multiplier: scales every channel count.
        lce_compatible: require every grouped binary conv to be lowerable by LCE (32 input channels per
            group); False allows all divisors (the paper's space) for research.
        activation: "approx_sign" (default) or "rsign" (ReActNet's learnable thresholds).
        nonlinearity: "none" (default) or "rprelu" (ReActNet's RPReLU after each residual add).
        rprelu_init_slope: initial negative slope of the RPReLUs (default 0.25, ReActNet's).
        stem: "mobilenet" (default: a float 3x3 stride-2 conv) or "quicknet" (larq-zoo QuickNet's float stem,
            4x down before the first binary conv; `specs.stem_specs`).

    # Returns
        A `tf.keras.Model` producing logits. Invalid group counts raise ValueError naming the layer and
        the allowed values.
    """
    arch = architecture(module, input_shape, num_classes, width_multiplier, stem)
    if isinstance(groups, int) and not isinstance(groups, bool):
        groups = arch.uniform_genotype(groups, lce_compatible)
    genes = arch.check_groups(groups, lce_compatible=lce_compatible)
    return build_network(arch, fixed_conv_factory(genes, lce_compatible), name=f"binary_mobilenet_{arch.module}",
                         activation=activation, nonlinearity=nonlinearity, rprelu_init_slope=rprelu_init_slope)
