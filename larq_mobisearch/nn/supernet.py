"""Weight-sharing supernet (paper §3.2.3, Figure 4; Algorithm 2 lines 1-6) on elastic layers (`elastic.py`).

Each searchable convolution holds one shared kernel at the largest width (k, k, Cin_max, Cout_max). A genotype
sets, per layer, the active slice (block widths, in the ``width`` / ``joint`` spaces) and group count in
non-trainable `tf.Variable`s, so switching genotype never retraces a compiled function. The forward pass gathers
the slice's block-diagonal blocks into a true grouped conv; for binary convs the XNOR scale is computed over each
output channel's own group, so the output equals the fixed model with those weights (`extract_subnet` builds
exactly that model).

Training samples a new genotype every step (`RandomGenotype` callback, seeded by the optimizer step so it
is reproducible and resumes with `BackupAndRestore`), through the normal Keras `fit` API.
"""

from __future__ import annotations

import logging
import random
from typing import List, Optional, Sequence

import tensorflow as tf

from .elastic import ElasticBinaryConv2D, ElasticConv, ElasticConv2D, ElasticKit, conv_channels
from .models import build_network, fixed_conv_factory, network_options
from .space import Genotype, SearchSpace, encode
from .specs import Architecture, ConvSpec
from ..choices import not_allowed

log = logging.getLogger(__name__)


#: The searchable convs of a supernet (elastic layers; the names of the masked layers they replaced).
SearchableConv = ElasticConv
SearchableBinaryConv2D = ElasticBinaryConv2D
SearchableConv2D = ElasticConv2D


def build_supernet(space: SearchSpace, name: Optional[str] = None, *, sync_batchnorm: bool = False,
                   activation: str = "approx_sign", nonlinearity: str = "none",
                   rprelu_init_slope: float = 0.25) -> tf.keras.Model:
    """Build the weight-sharing supernet of `space`: elastic convs at the space's largest widths, with
    `space.candidates` group counts per searchable layer.

    Non-searchable convs are elastic too where width genes change their channels (fixed layers otherwise); the
    graph and layer names equal `models.build_model` (with the same `activation` / `nonlinearity` options, see
    `models.build_network`). The model starts at the largest genotype (`space.largest()`).
    """
    static = not space.has_widths
    if not static and (activation != "approx_sign" or nonlinearity != "none"):
        raise ValueError(f"Width genes (model.space_genes={space.genes!r}) need per-channel-free activations: received "
                         f"activation={activation!r}, nonlinearity={nonlinearity!r}; allowed: approx_sign / none "
                         f"(RSign and RPReLU have one parameter per channel of a fixed width)")
    widest = space.arch.with_widths(tuple(c[-1] for c in space.widths)) if space.widths else space.arch
    group_candidates = space.group_candidates

    def make(spec: ConvSpec):
        if spec.gene is None and static:
            return fixed_conv_factory((1,) * space.arch.num_genes)(spec)
        cls = ElasticBinaryConv2D if spec.binary else ElasticConv2D
        candidates = (1,) if spec.gene is None else group_candidates[spec.gene]
        return cls(spec.out_channels, spec.kernel, strides=spec.stride, in_channels=spec.in_channels,
                   candidates=candidates, gene=spec.gene, static_channels=static, name=spec.name)

    model = build_network(widest, make, name=name or f"supernet_{space.arch.module}",
                          sync_batchnorm=sync_batchnorm, activation=activation, nonlinearity=nonlinearity,
                          rprelu_init_slope=rprelu_init_slope, kit=ElasticKit(static))
    model._lm_space = space  # in-process convenience; extract_subnet also accepts an explicit space
    set_genotype(model, space.largest(), space=space)
    return model


def _all_layers(model: tf.keras.layers.Layer):
    for layer in getattr(model, "layers", []):
        yield layer
        yield from _all_layers(layer)


def searchable_layers(model: tf.keras.Model) -> List[ElasticConv]:
    """The searchable (gene) convs of a supernet, in gene order (also inside a wrapping model, e.g. a
    `distillation.Distiller` training the supernet)."""
    layers = [l for l in _all_layers(model) if isinstance(l, ElasticConv) and l.gene is not None]
    if not layers:
        raise ValueError(f"Model {model.name!r} has no searchable layers: it is not a supernet")
    return sorted(layers, key=lambda l: l.gene)


def _elastic_layers(model: tf.keras.Model) -> List[ElasticConv]:
    return [l for l in _all_layers(model) if isinstance(l, ElasticConv)]


def is_supernet(model: tf.keras.Model) -> bool:
    return any(isinstance(l, ElasticConv) for l in _all_layers(model))


def _space_of(model: tf.keras.Model, space: Optional[SearchSpace]) -> Optional[SearchSpace]:
    if space is not None:
        return space
    for m in [model] + [l for l in _all_layers(model) if isinstance(l, tf.keras.Model)]:
        if getattr(m, "_lm_space", None) is not None:
            return m._lm_space
    return None


def set_genotype(model: tf.keras.Model, genotype: Sequence[int], space: Optional[SearchSpace] = None) -> None:
    """Switch the supernet to `genotype` (no retracing: only variables change)."""
    layers = searchable_layers(model)
    space = _space_of(model, space)
    genotype = tuple(int(g) for g in genotype)
    n_groups = len(layers)
    if space is not None and space.has_widths:
        if len(genotype) == n_groups:
            genotype = space.expand(genotype)
        arch, groups = space.resolve(genotype)
        expected = n_groups + len(space.widths)
    else:
        arch, groups, expected = None, genotype, n_groups
    if len(genotype) != expected:
        raise ValueError(
            f"Genotype {encode(genotype)} has {len(genotype)} genes; this supernet has {n_groups} searchable "
            f"layers ({', '.join(l.name for l in layers)})" + (f" and {len(space.widths)} block widths"
                                                                 if arch is not None else "")
        )
    for layer, g in zip(layers, groups):
        if int(g) not in layer.candidates:
            raise not_allowed(f"Invalid group count {g} for layer {layer.name}", layer.candidates)
    if arch is None:
        for layer, g in zip(layers, groups):
            layer.set_active(layer.in_channels, layer.filters, g)
        return
    space.validate(genotype)
    channels = conv_channels(arch)
    for layer in _elastic_layers(model):
        cin, cout, gene = channels[layer.name]
        layer.set_active(cin, cout, 1 if gene is None else groups[gene])


def get_genotype(model: tf.keras.Model, space: Optional[SearchSpace] = None) -> Genotype:
    groups = tuple(int(l.groups.numpy()) for l in searchable_layers(model))
    space = _space_of(model, space)
    if space is None or not space.has_widths:
        return groups
    outs = {l.name: int(l.active_out.numpy()) for l in _elastic_layers(model)}
    widths = []
    for block in space.arch.blocks:
        pw = block.convs[1:]
        widths.append(sum(outs[c.name] for c in pw))
    return groups + tuple(widths)


def genotype_variables(model: tf.keras.Model) -> List[tf.Variable]:
    """The int32 variables holding the group counts, one per group gene in genotype order (assigning genotype[i] to
    variable i switches a groups-only supernet, also inside a `tf.function`; with width genes, `assign_genotype`
    switches the widths too)."""
    return [l.groups for l in searchable_layers(model)]


def genotype_length(model: tf.keras.Model, space: Optional[SearchSpace] = None) -> int:
    """How many genes a genotype of this supernet has (group counts, plus block widths in a width space)."""
    space = _space_of(model, space)
    n = len(searchable_layers(model))
    return n + len(space.widths) if space is not None and space.has_widths else n


def assign_genotype(model: tf.keras.Model, genotype, space: Optional[SearchSpace] = None) -> None:
    """Switch the supernet to `genotype` given as an int32 tensor (or sequence), with variable assignments only:
    usable inside a `tf.function` (e.g. several subnets per training step). Unlike `set_genotype`, nothing is
    validated: pass canonical genotypes of the space (`SearchSpace.sample`, `largest`, `smallest`)."""
    space = _space_of(model, space)
    row = tf.convert_to_tensor(genotype, tf.int32)
    if space is None or not space.has_widths:
        for layer in searchable_layers(model):
            layer.groups.assign(row[layer.gene])
        return
    n, arch = space.num_groups, space.arch
    specs = {c.name: c for b in arch.blocks for c in b.convs}
    for layer in _elastic_layers(model):
        spec = specs[layer.name]
        cin = tf.constant(arch.stem_channels, tf.int32) if spec.block == 1 else row[n + spec.block - 2]
        if spec.kernel == 3:
            cout = cin
        else:
            cout = row[n + spec.block - 1] // (2 if arch.module == "m3" else 1)
        layer.groups.assign(tf.constant(1, tf.int32) if spec.gene is None else row[spec.gene])
        layer.active_in.assign(cin)
        layer.active_out.assign(cout)


def inactive_masks(model: tf.keras.Model) -> List[tuple]:
    """``(kernel, 0/1 mask of the entries the current genotype uses)`` for every elastic conv."""
    return [(l.kernel, l.kernel_mask()) for l in _elastic_layers(model)]


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
    """A fixed model with real `groups=g` layers at the genotype's widths, the cropped shared weights and the
    BatchNorm state.

    Built with the supernet's own options (RSign thresholds, RPReLU: `models.network_options`), whose
    weights are copied by layer name. Its logits equal the supernet's under the same genotype (up to float
    summation order).
    """
    space = _space_of(supernet, space)
    if space is None:
        raise ValueError("extract_subnet needs the SearchSpace of this supernet (pass space=...)")
    genotype = space.validate(genotype)
    resolved, groups = space.resolve(genotype)
    fixed = build_network(resolved, fixed_conv_factory(groups, lce_compatible=space.mode == "lce"),
                          name=f"binary_mobilenet_{space.arch.module}_{space.encode(genotype)}",
                          sync_batchnorm=sync_batchnorm, **network_options(supernet))
    channels = conv_channels(resolved)
    for layer in fixed.layers:
        if not layer.weights:
            continue
        source = supernet.get_layer(layer.name)
        if isinstance(source, ElasticConv):
            cin, cout, gene = channels[layer.name]
            layer.set_weights([source.crop_kernel(cin, cout, 1 if gene is None else groups[gene])])
        else:
            shapes = [w.shape for w in layer.weights]
            weights = source.get_weights()
            if isinstance(layer, tf.keras.layers.Dense):  # the classifier reads the first C features
                weights = [weights[0][: shapes[0][0]], weights[1]]
            else:  # BatchNorm (and RSign / RPReLU at static widths): the first C channels
                weights = [w[tuple(slice(0, d) for d in shape)] for w, shape in zip(weights, shapes)]
            layer.set_weights(weights)
    return fixed
