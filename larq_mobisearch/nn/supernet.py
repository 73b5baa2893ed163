"""Weight-sharing supernet (paper §3.2.3, Figure 4; Algorithm 2 lines 1-6).

Each searchable convolution holds one full shared kernel (k, k, Cin, Cout). The active group count lives in
a non-trainable `tf.Variable`, so switching genotype never retraces a compiled function. The forward pass
masks the kernel block-diagonally; for binary convs the XNOR scale is computed over the active group's
inputs only, so the output equals a true grouped conv whose weights are the diagonal blocks
(`extract_subnet` builds exactly that model).

Training samples a new genotype every step (`RandomGenotype` callback, seeded by the optimizer step so it
is reproducible and resumes with `BackupAndRestore`), through the normal Keras `fit` API.
"""

from __future__ import annotations

import logging
import random
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf
from larq.quantized_variable import QuantizedVariable

from .layers import PACKAGE, BinaryGroupConv2D
from .models import build_network, fixed_conv_factory, network_options
from .quantizers import approx_sign, xnor_weight_sign
from .space import Genotype, SearchSpace, encode
from .specs import Architecture, ConvSpec
from ..choices import not_allowed

log = logging.getLogger(__name__)


def block_diagonal_mask(in_channels: int, out_channels: int, groups) -> tf.Tensor:
    """(Cin, Cout) 0/1 mask: input channel i feeds output channel o iff they are in the same group."""
    groups = tf.cast(groups, tf.int32)
    rows = tf.range(in_channels) // (in_channels // groups)
    cols = tf.range(out_channels) // (out_channels // groups)
    return tf.cast(tf.equal(rows[:, None], cols[None, :]), tf.float32)


def _same_padding(size: int, kernel: int, stride: int):
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SearchableConv(tf.keras.layers.Layer):
    """Shared-kernel conv whose group count is a variable (base of the binary and float versions)."""

    binary = False

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, candidates: Sequence[int] = (1,),
                 gene: Optional[int] = None, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.kernel_size = int(kernel_size)
        self.strides = int(strides)
        self.candidates = tuple(int(c) for c in candidates)
        if not self.candidates or any(c < 1 or self.filters % c for c in self.candidates):
            raise ValueError(
                f"Layer {self.name!r}: candidate group counts {list(self.candidates)} must be positive divisors "
                f"of filters={self.filters}"
            )
        self.gene = gene
        self.kernel_initializer = tf.keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        cin = tf.TensorShape(input_shape)[-1]
        if cin is None:
            raise ValueError(f"Layer {self.name!r}: the channel dimension of the input must be known")
        self.in_channels = int(cin)
        bad = [g for g in self.candidates if self.in_channels % g]
        if bad:
            raise ValueError(
                f"Layer {self.name!r}: candidate group counts {bad} do not divide the {self.in_channels} input channels"
            )
        k = self.kernel_size
        self.kernel = self.add_weight(
            "kernel", shape=(k, k, self.in_channels, self.filters), initializer=self.kernel_initializer,
            constraint=self._constraint(), trainable=True,
        )
        self.groups = self.add_weight(
            "groups", shape=(), dtype=tf.int32, initializer=tf.keras.initializers.Constant(1), trainable=False,
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
        )
        super().build(input_shape)

    def _constraint(self):
        return None

    def _pad(self, inputs, value: float):
        if self.kernel_size == 1 and self.strides == 1:
            return inputs
        h, w = inputs.shape[1], inputs.shape[2]
        ph = _same_padding(h, self.kernel_size, self.strides)
        pw = _same_padding(w, self.kernel_size, self.strides)
        return tf.pad(inputs, [[0, 0], list(ph), list(pw), [0, 0]], constant_values=value)

    def set_groups(self, groups: int) -> None:
        if int(groups) not in self.candidates:
            raise not_allowed(f"Layer {self.name!r}: group count {groups} not allowed", self.candidates)
        self.groups.assign(int(groups))

    def masked_kernel(self) -> tf.Tensor:
        raise NotImplementedError

    def kernel_mask(self) -> tf.Tensor:
        """A 0/1 float tensor of the kernel's full shape (k, k, Cin, Cout): 1 where the current genotype uses
        the kernel entry (the block-diagonal mask of the active group count)."""
        mask = block_diagonal_mask(self.in_channels, self.filters, self.groups)
        return tf.broadcast_to(mask[None, None], (self.kernel_size, self.kernel_size, self.in_channels,
                                                   self.filters))

    def call(self, inputs):
        raise NotImplementedError

    def crop_kernel(self, groups: int) -> np.ndarray:
        """The grouped kernel (k, k, Cin/g, Cout) of a true `groups=g` conv: the diagonal blocks."""
        w = self.kernel.numpy()
        k, cin, cout, g = w.shape[0], self.in_channels, self.filters, int(groups)
        blocks = w.reshape(k, k, g, cin // g, g, cout // g)
        diag = np.einsum("abjcjd->abcjd", blocks)  # (k, k, Cin/g, g, Cout/g)
        return np.ascontiguousarray(diag.reshape(k, k, cin // g, cout))

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "candidates": list(self.candidates),
            "gene": self.gene,
            "kernel_initializer": tf.keras.initializers.serialize(self.kernel_initializer),
        }


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class SearchableBinaryConv2D(SearchableConv):
    """Binary conv ("same" padding with +1) whose shared kernel is masked to the active group count.

    Forward: ApproxSign on the input, XNOR-scaled sign of the kernel with alpha over the active group's
    inputs only, block-diagonal mask, one dense conv. Equals `BinaryGroupConv2D(groups=g)` with the
    diagonal blocks of the kernel.
    """

    binary = True
    #: Why LCE cannot lower this layer (read by `deploy` when checking a model before export).
    lce_problem = (
        "weight-sharing supernet conv: its masked block-diagonal kernel is ternary (0 outside the active "
        "groups) and never lowers; materialise the model with nn.supernet.extract_subnet(supernet, genotype)"
    )

    def __init__(self, *args, clip_value: Optional[float] = 1.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_value = clip_value

    def _constraint(self):
        return tf.keras.constraints.get("weight_clip")

    def _add_variable_with_custom_getter(self, name: str, **kwargs):
        """The shared kernel is a larq `QuantizedVariable` of precision 1 without a quantizer (it reads as
        the latent kernel; `masked_kernel` binarizes it), so larq's `Bop.is_binary_variable` (and
        `CaseOptimizer`) recognise it as binary, as the kernels of `BinaryGroupConv2D`."""
        if name != "kernel":
            return super()._add_variable_with_custom_getter(name, **kwargs)
        old_getter = kwargs.pop("getter")

        def getter(*args, **kw):
            return QuantizedVariable.from_variable(old_getter(*args, **kw), quantizer=None, precision=1)

        return super()._add_variable_with_custom_getter(name, getter=getter, **kwargs)

    def masked_kernel(self) -> tf.Tensor:
        mask = block_diagonal_mask(self.in_channels, self.filters, self.groups)[None, None]
        return xnor_weight_sign(self.kernel, clip_value=self.clip_value, mask=mask)

    def call(self, inputs):
        return _binary_call(self, inputs)

    def get_config(self):
        return {**super().get_config(), "clip_value": self.clip_value}


@tf.keras.utils.register_keras_serializable(package=PACKAGE)
class SearchableConv2D(SearchableConv):
    """Real-valued conv ("same" zero padding) whose shared kernel is masked to the active group count (M2)."""

    def masked_kernel(self) -> tf.Tensor:
        mask = block_diagonal_mask(self.in_channels, self.filters, self.groups)[None, None]
        return self.kernel * mask

    def call(self, inputs):
        return _float_call(self, inputs)


@tf.autograph.experimental.do_not_convert
def _binary_call(layer: SearchableBinaryConv2D, inputs):
    x = layer._pad(approx_sign(inputs), 1.0)
    return tf.nn.conv2d(x, layer.masked_kernel(), strides=layer.strides, padding="VALID")


@tf.autograph.experimental.do_not_convert
def _float_call(layer: SearchableConv2D, inputs):
    x = layer._pad(inputs, 0.0)
    return tf.nn.conv2d(x, layer.masked_kernel(), strides=layer.strides, padding="VALID")


def build_supernet(space: SearchSpace, name: Optional[str] = None, *, sync_batchnorm: bool = False,
                   activation: str = "approx_sign", nonlinearity: str = "none",
                   rprelu_init_slope: float = 0.25) -> tf.keras.Model:
    """Build the weight-sharing supernet of `space.arch`, with `space.candidates` per searchable layer.

    Non-searchable convs are ordinary fixed layers; the graph and layer names equal `models.build_model`
    (with the same `activation` / `nonlinearity` options, see `models.build_network`). The model starts at
    the all-ones genotype.
    """
    fixed = fixed_conv_factory((1,) * space.arch.num_genes)

    def make(spec: ConvSpec):
        if spec.gene is None:
            return fixed(spec)
        cls = SearchableBinaryConv2D if spec.binary else SearchableConv2D
        return cls(spec.out_channels, spec.kernel, strides=spec.stride, candidates=space.candidates[spec.gene],
                   gene=spec.gene, name=spec.name)

    model = build_network(space.arch, make, name=name or f"supernet_{space.arch.module}",
                          sync_batchnorm=sync_batchnorm, activation=activation, nonlinearity=nonlinearity,
                          rprelu_init_slope=rprelu_init_slope)
    model._lm_space = space  # in-process convenience; extract_subnet also accepts an explicit space
    return model


def _all_layers(model: tf.keras.layers.Layer):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def searchable_layers(model: tf.keras.Model) -> List[SearchableConv]:
    """The searchable convs of a supernet, in gene order (also inside a wrapping model, e.g. a
    `distillation.Distiller` training the supernet)."""
    layers = [l for l in _all_layers(model) if isinstance(l, SearchableConv)]
    if not layers:
        raise ValueError(f"Model {model.name!r} has no searchable layers: it is not a supernet")
    return sorted(layers, key=lambda l: l.gene)


def genotype_variables(model: tf.keras.Model) -> List[tf.Variable]:
    """The int32 scalar variables that hold the genotype, one per gene in genotype order.

    Assigning ``genotype[i]`` to variable ``i`` (eagerly or inside a `tf.function`) switches the supernet to
    that genotype, as `set_genotype` does, without checking the values.
    """
    return [layer.groups for layer in searchable_layers(model)]


def inactive_masks(model: tf.keras.Model) -> List[Tuple[tf.Variable, tf.Tensor]]:
    """``(kernel variable, 0/1 mask of its entries the current genotype uses)`` for every searchable kernel.

    Entries where the mask is 0 get no gradient in this genotype; `supernet_training` keeps them (and their
    optimizer state) unchanged with ``masked_updates``.
    """
    return [(layer.kernel, layer.kernel_mask()) for layer in searchable_layers(model)]


def is_supernet(model: tf.keras.Model) -> bool:
    return any(isinstance(l, SearchableConv) for l in _all_layers(model))


def set_genotype(model: tf.keras.Model, genotype: Sequence[int]) -> None:
    """Switch the supernet to `genotype` (no retracing: only variables change)."""
    layers = searchable_layers(model)
    if len(genotype) != len(layers):
        raise ValueError(
            f"Genotype {encode(genotype)} has {len(genotype)} genes; this supernet has {len(layers)} searchable "
            f"layers ({', '.join(l.name for l in layers)})"
        )
    for layer, g in zip(layers, genotype):
        if int(g) not in layer.candidates:
            raise not_allowed(f"Invalid group count {g} for layer {layer.name}", layer.candidates)
    for layer, g in zip(layers, genotype):
        layer.groups.assign(int(g))


def get_genotype(model: tf.keras.Model) -> Genotype:
    return tuple(int(l.groups.numpy()) for l in searchable_layers(model))


def sample_genotype(space: SearchSpace, rng: random.Random, cost_model=None, budget: Optional[float] = None,
                    max_tries: int = 1000) -> Genotype:
    """A uniformly random genotype, or one with cost <= budget (bounded rejection sampling)."""
    if cost_model is None or budget is None:
        return space.sample(rng)
    min_cost = cost_model.min_cost(space.candidates) if hasattr(cost_model, "min_cost") else None
    return space.sample_under(rng, cost_model.cost, budget, max_tries=max_tries, min_cost=min_cost)


def optimizer_step(optimizer) -> int:
    """The number of training steps `optimizer` has applied (restored with it from a checkpoint).

    larq's `CaseOptimizer` (Bop for the binary kernels) leaves its own `iterations` at 0 and lets the
    optimizers it wraps count, so the count of its last (default) optimizer is read.
    """
    wrapped = getattr(optimizer, "optimizers", None)
    if wrapped:
        return int(wrapped[-1].iterations.numpy())
    return int(optimizer.iterations.numpy())


def step_rng(seed: int, step: int) -> random.Random:
    """The genotype RNG of one training step: a pure function of (seed, step), the same on every replica."""
    return random.Random(f"larq_mobisearch:{int(seed)}:{int(step)}")


class RandomGenotype(tf.keras.callbacks.Callback):
    """Sets a new random genotype before every training batch (Algorithm 2, line 4).

    The genotype of step t is drawn from `step_rng(seed, t)` with t the optimizer's iteration count, so a
    run resumed from a checkpoint continues the same sequence. Optional FLOPs-bounded sampling.
    """

    def __init__(self, space: SearchSpace, seed: int = 0, cost_model=None, budget: Optional[float] = None,
                 max_tries: int = 1000):
        super().__init__()
        self.space, self.seed, self.cost_model, self.budget, self.max_tries = space, seed, cost_model, budget, max_tries
        self.last_genotype: Optional[Genotype] = None

    def on_train_batch_begin(self, batch, logs=None):
        step = optimizer_step(self.model.optimizer)
        genotype = sample_genotype(self.space, step_rng(self.seed, step), self.cost_model, self.budget,
                                   self.max_tries)
        set_genotype(self.model, genotype)
        self.last_genotype = genotype


def extract_subnet(supernet: tf.keras.Model, genotype: Sequence[int], space: Optional[SearchSpace] = None,
                   arch: Optional[Architecture] = None, *, sync_batchnorm: bool = False) -> tf.keras.Model:
    """A fixed model with real `groups=g` layers, the cropped shared weights and the BatchNorm state.

    Built with the supernet's own options (RSign thresholds, RPReLU: `models.network_options`), whose
    weights are copied by layer name. Its logits equal the supernet's under the same genotype (up to float
    summation order).
    """
    space = space or getattr(supernet, "_lm_space", None)
    if space is None:
        raise ValueError("extract_subnet needs the SearchSpace of this supernet (pass space=...)")
    genotype = space.validate(tuple(genotype))
    fixed = build_network(space.arch, fixed_conv_factory(genotype, lce_compatible=space.mode == "lce"),
                          name=f"binary_mobilenet_{space.arch.module}_{encode(genotype)}",
                          sync_batchnorm=sync_batchnorm, **network_options(supernet))
    for layer in fixed.layers:
        if not layer.weights:
            continue
        source = supernet.get_layer(layer.name)
        if isinstance(source, SearchableConv):
            layer.set_weights([source.crop_kernel(genotype[source.gene])])
        else:
            layer.set_weights(source.get_weights())
    return fixed
