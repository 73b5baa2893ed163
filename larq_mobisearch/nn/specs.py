"""One description of the binary MobileNet (modules M1, M2, M3) that every stage reads.

The model builder (`models.py`), the supernet builder (`supernet.py`) and the analytic cost counter
(`costs.py`) all walk the same `Architecture`: a list of `ConvSpec`s with channels, strides, spatial sizes
and which gene (searchable group count) each convolution reads. No stage keeps its own copy of the network.

This module is pure Python (no TensorFlow) so the search and the cost model can use it cheaply.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, replace
from typing import Dict, Optional, Sequence, Tuple

from ..choices import BASELINES, DEFAULT_STEM, MODULES, STEMS, check_choice, not_allowed


#: The 13 MobileNetV1 blocks (paper §3.2.2): (input channels, output channels, stride).
MOBILENET_BLOCKS: Tuple[Tuple[int, int, int], ...] = (
    (32, 64, 1),
    (64, 128, 2),
    (128, 128, 1),
    (128, 256, 2),
    (256, 256, 1),
    (256, 512, 2),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 512, 1),
    (512, 1024, 2),
    (1024, 1024, 1),
)
STEM_CHANNELS = 32

#: Input channels per group that Larq Compute Engine needs to lower a *grouped* binary conv.
LCE_CHANNELS_PER_GROUP = 32

#: Width genes (the ``width`` and ``joint`` spaces): multipliers of a block's output channels at the model's
#: width (MetaPruning's per-layer width, OFA's elastic width). The supernet holds the largest.
DEFAULT_WIDTH_CHOICES: Tuple[float, ...] = (0.5, 0.75, 1.0, 1.25, 1.5)
#: Channel counts of width genes are rounded to a multiple of 32 from 64 channels on (so that every count c admits
#: the grouped binary convs LCE lowers: g divides c / 32), below that to a multiple of 8 (narrow layers, one group).
WIDE_CHANNELS = 64
NARROW_CHANNEL_QUANTUM = 8
#: Architectures `Architecture.with_widths` keeps per base architecture before it starts again.
_WIDTH_MEMO_SIZE = 512


@functools.lru_cache(maxsize=None)  # channel counts: a few hundred distinct values in any search
def divisors(n: int) -> Tuple[int, ...]:
    """All positive divisors of `n`, ascending."""
    return tuple(d for d in range(1, n + 1) if n % d == 0)


def round_channels(channels: float) -> int:
    """The channel count of a width gene: ``channels`` rounded half up to a multiple of 32 from 64 on (LCE's 32
    input channels per group: every divisor of ``c / 32`` is then a legal group count), below 64 to a multiple of
    8 (at least 8; such narrow convs take one group).

    # Examples
        ``round_channels(96) == 96``, ``round_channels(80) == 96``, ``round_channels(48) == 48``,
        ``round_channels(20) == 24``.
    """
    if not channels > 0:
        raise ValueError(f"channels must be > 0, received {channels!r}")
    q = LCE_CHANNELS_PER_GROUP if channels >= WIDE_CHANNELS else NARROW_CHANNEL_QUANTUM
    return max(q, int(math.floor(channels / q + 0.5)) * q)


@functools.lru_cache(maxsize=None)  # pure; called per conv of every genotype a search or a count resolves
def allowed_group_counts(
    in_channels: int, out_channels: int, *, binary: bool = True, lce_compatible: bool = True
) -> Tuple[int, ...]:
    """Group counts a convolution with these channels may use.

    # Arguments
        in_channels: input channels of the convolution.
        out_channels: output channels (filters) of the convolution.
        binary: whether the convolution is binary (only binary convs have the LCE per-group rule).
        lce_compatible: if True (and `binary`), a grouped conv needs input channels per group to be a
            multiple of 32, the condition under which LCE lowers it to `LceBconv2d`; `groups=1` always
            lowers.

    # Returns
        Ascending tuple of allowed group counts (always contains 1).
    """
    common = [g for g in divisors(math.gcd(in_channels, out_channels))]
    if binary and lce_compatible:
        common = [g for g in common if g == 1 or (in_channels // g) % LCE_CHANNELS_PER_GROUP == 0]
    return tuple(common)


@dataclass(frozen=True)
class ConvSpec:
    """One convolution of the network.

    `kind` is "binary" (binary weights and activations) or "float". `gene` is the index of the genotype
    entry giving its group count, or None for a convolution with the fixed group count `groups` (1, or its
    channels for the QuickNet stem's depthwise conv).
    """

    name: str
    block: int  # 0 for the stem, 1..13 for blocks
    kind: str
    kernel: int
    in_channels: int
    out_channels: int
    stride: int
    in_size: Tuple[int, int]
    out_size: Tuple[int, int]
    gene: Optional[int] = None
    groups: int = 1

    @property
    def binary(self) -> bool:
        return self.kind == "binary"

    @property
    def depthwise(self) -> bool:
        return self.gene is None and self.groups > 1 and self.groups == self.in_channels == self.out_channels

    def macs(self, groups: Optional[int] = None) -> int:
        """Multiply-accumulates at `groups` groups (default: the conv's fixed `groups`; BOPs for a binary conv,
        FLOPs for a float one)."""
        groups = self.groups if groups is None else groups
        h, w = self.out_size
        return h * w * self.kernel * self.kernel * (self.in_channels // groups) * self.out_channels


@dataclass(frozen=True)
class BlockSpec:
    """One MobileNet block: a 3x3 group conv (the block's first conv) then the pointwise part."""

    index: int  # 1..13
    in_channels: int
    out_channels: int
    stride: int
    in_size: Tuple[int, int]
    out_size: Tuple[int, int]
    convs: Tuple[ConvSpec, ...]
    #: Shortcut of the pointwise part, fixed by the block's channels at the model's width (kept when width genes
    #: change them): "identity" (M1/M2 binary 1x1, Cin = Cout), "full" (M3: each half adds the whole input),
    #: "split" (M3: each half adds its half of the input) or "none". Where width genes make the channels differ,
    #: the shortcut is cropped or zero-padded to the conv's output channels (`layers.ChannelFit`).
    pw_shortcut: str = "none"


@dataclass(frozen=True)
class Architecture:
    """A binary MobileNet of one module type at one input shape.

    `stem` is the stem's first conv, `stem_rest` the convs after it (QuickNet's depthwise and 1x1), `stem_kind`
    one of `choices.STEMS`."""

    module: str
    input_shape: Tuple[int, int, int]
    num_classes: int
    width_multiplier: float
    stem: ConvSpec
    blocks: Tuple[BlockSpec, ...]
    stem_rest: Tuple[ConvSpec, ...] = ()
    stem_kind: str = DEFAULT_STEM

    # Immutable: what derives from it is computed once (`cached_property`: outside the fields, `==` and hash).
    @functools.cached_property
    def stem_convs(self) -> Tuple[ConvSpec, ...]:
        return (self.stem,) + self.stem_rest

    @property
    def stem_channels(self) -> int:
        """Channels the stem hands to block 1."""
        return self.stem_convs[-1].out_channels

    @functools.cached_property
    def convs(self) -> Tuple[ConvSpec, ...]:
        return self.stem_convs + tuple(c for b in self.blocks for c in b.convs)

    @functools.cached_property
    def gene_layers(self) -> Tuple[ConvSpec, ...]:
        """Searchable convolutions in genotype order."""
        genes = [c for c in self.convs if c.gene is not None]
        return tuple(sorted(genes, key=lambda c: c.gene))

    @property
    def num_genes(self) -> int:
        return len(self.gene_layers)

    @functools.cached_property
    def block_channels(self) -> Tuple[int, ...]:
        """Output channels of blocks 1..13 (what width genes set)."""
        return tuple(b.out_channels for b in self.blocks)

    @functools.cached_property
    def _blocks_by_channels(self) -> Dict[Tuple[int, int, int], BlockSpec]:  # (index, in, out): few hundred
        return {}

    @functools.cached_property
    def _by_widths(self) -> Dict[Tuple[int, ...], "Architecture"]:  # the latest `with_widths` results
        return {}

    def with_widths(self, channels: Sequence[int]) -> "Architecture":
        """The same network with block i's output channels set to ``channels[i]`` (and block i+1's input): the
        architecture of a genotype with width genes. Layer kinds, genes and shortcuts stay this one's."""
        channels = tuple(int(c) for c in channels)
        if len(channels) != len(self.blocks) or any(c < 1 for c in channels):
            raise ValueError(f"channels must be {len(self.blocks)} positive block widths, received {channels}")
        if self.module == "m3" and any(c % 2 for c in channels):
            raise ValueError(f"M3 needs even block widths (two pointwise halves), received {channels}")
        if channels == self.block_channels:
            return self
        found = self._by_widths.get(channels)  # a search resolves tens of thousands of genotypes: memoized,
        if found is None:  # built from blocks memoized by their two widths (a block depends on those alone)
            blocks, cins = [], (self.stem_channels,) + channels[:-1]
            for block, cin, cout in zip(self.blocks, cins, channels):
                if (block.index, cin, cout) not in self._blocks_by_channels:
                    self._blocks_by_channels[block.index, cin, cout] = replace(
                        block, in_channels=cin, out_channels=cout, convs=tuple(
                            replace(c, in_channels=cin, out_channels=cin if c.kernel == 3 else
                                    cout // 2 if self.module == "m3" else cout) for c in block.convs))
                blocks.append(self._blocks_by_channels[block.index, cin, cout])
            if len(self._by_widths) >= _WIDTH_MEMO_SIZE:
                self._by_widths.clear()
            self._by_widths[channels] = found = replace(self, blocks=tuple(blocks))
        return found

    @property
    def classifier_macs(self) -> int:
        return self.blocks[-1].out_channels * self.num_classes

    def allowed_groups(self, lce_compatible: bool = True) -> Tuple[Tuple[int, ...], ...]:
        """Allowed group counts per gene, in genotype order."""
        return tuple(
            allowed_group_counts(c.in_channels, c.out_channels, binary=c.binary, lce_compatible=lce_compatible)
            for c in self.gene_layers
        )

    def uniform_genotype(self, groups: int, lce_compatible: bool = True) -> Tuple[int, ...]:
        """The uniform genotype "groups = g": each layer takes its largest legal count <= g."""
        if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
            raise ValueError(f"A uniform group count must be an integer >= 1, received {groups!r}")
        return tuple(max(g for g in a if g <= groups) for a in self.allowed_groups(lce_compatible))

    def expand_groups(self, groups) -> Tuple[int, ...]:
        """Turn an int (uniform) or a sequence (one gene per searchable layer) into a full genotype tuple.

        Checks only the length and types; `check_groups` checks legality.
        """
        n = self.num_genes
        if isinstance(groups, bool):
            raise TypeError(f"groups must be an int or a sequence of {n} ints, received {groups!r}")
        if isinstance(groups, int):
            return (groups,) * n
        try:
            genes = tuple(groups)
        except TypeError:
            raise TypeError(f"groups must be an int or a sequence of {n} ints, received {groups!r}") from None
        if len(genes) != n:
            raise ValueError(
                f"Module {self.module} has {n} searchable layers "
                f"({', '.join(c.name for c in self.gene_layers)}); received {len(genes)} group counts: {genes}"
            )
        for g in genes:
            if isinstance(g, bool) or not isinstance(g, (int,)) and not hasattr(g, "__index__"):
                raise TypeError(f"group counts must be integers, received {g!r} in {genes}")
        return tuple(int(g) for g in genes)

    def check_groups(self, groups, *, lce_compatible: bool = True) -> Tuple[int, ...]:
        """Validate a genotype; raise ValueError naming the layer and its allowed values."""
        genes = self.expand_groups(groups)
        for spec, g, allowed in zip(self.gene_layers, genes, self.allowed_groups(lce_compatible)):
            if g not in allowed:
                why = (
                    f"must divide input channels {spec.in_channels} and output channels {spec.out_channels}"
                )
                if spec.binary and lce_compatible:
                    why += f" and leave a multiple of {LCE_CHANNELS_PER_GROUP} input channels per group (LCE)"
                raise not_allowed(f"Invalid group count {g} for layer {spec.name} (gene {spec.gene}): groups {why}",
                                  allowed)
        return genes


def _scaled(channels: int, width_multiplier: float) -> int:
    return max(1, int(round(channels * width_multiplier)))


def _out_size(size: Tuple[int, int], stride: int) -> Tuple[int, int]:
    return tuple(-(-s // stride) for s in size)  # "same" padding


def stem_specs(kind: str, input_shape: Sequence[int], channels: int) -> Tuple[ConvSpec, ...]:
    """The float convs of a stem (`choices.STEMS`) for an input of `input_shape`, handing `channels` on.

    - ``"mobilenet"``: a 3x3 stride-2 conv to `channels` (2x down; MobileNetV1's stem).
    - ``"quicknet"``: larq-zoo QuickNet's stem, 4x down before the first binary conv: a 3x3 stride-2 conv to
      ``channels // 4`` (at least 8), BatchNorm and ReLU, a 3x3 stride-2 depthwise conv, a 1x1 conv to `channels`.
      The blocks keep their strides, so every feature map after the stem is half as large as with the MobileNet
      stem (224 px: blocks 1..13 at 56, 28, 14, 7, 4 instead of 112 ... 7), and BOPs drop about 4x.
    """
    check_choice("Unknown stem", kind, STEMS)
    h, w, c = (int(s) for s in input_shape)
    half = _out_size((h, w), 2)
    if kind == "mobilenet":
        return (ConvSpec("stem_conv", 0, "float", 3, c, channels, 2, (h, w), half),)
    narrow = max(8, channels // 4)
    quarter = _out_size(half, 2)
    return (
        ConvSpec("stem_conv", 0, "float", 3, c, narrow, 2, (h, w), half),
        ConvSpec("stem_dw", 0, "float", 3, narrow, narrow, 2, half, quarter, groups=narrow),
        ConvSpec("stem_pw", 0, "float", 1, narrow, channels, 1, quarter, quarter),
    )


def architecture(
    module: str,
    input_shape: Sequence[int] = (224, 224, 3),
    num_classes: int = 1000,
    width_multiplier: float = 1.0,
    stem: str = "mobilenet",
) -> Architecture:
    """Describe the binary MobileNet with module `module` ("m1", "m2" or "m3") on stem `stem` (`stem_specs`).

    Genes (searchable group counts), in order: the binary 3x3 group conv of blocks 1..13, then for M2 the
    real-valued 1x1 convs of the five blocks whose channel count changes (blocks 1, 2, 4, 6, 12).
    """
    module = str(module).lower()
    check_choice("Unknown module", module, MODULES)
    stem = str(stem).lower()
    check_choice("Unknown stem", stem, STEMS)
    if len(input_shape) != 3 or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"input_shape must be (height, width, channels) with positive sizes, received {input_shape}")
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, received {num_classes}")
    if not width_multiplier > 0:
        raise ValueError(f"width_multiplier must be > 0, received {width_multiplier}")
    h, w, c = (int(s) for s in input_shape)
    stem_ch = _scaled(STEM_CHANNELS, width_multiplier)
    stem_convs = stem_specs(stem, (h, w, c), stem_ch)
    size = stem_convs[-1].out_size

    blocks = []
    float_pw_gene = len(MOBILENET_BLOCKS)
    for i, (cin0, cout0, stride) in enumerate(MOBILENET_BLOCKS, start=1):
        cin = stem_ch if i == 1 else _scaled(cin0, width_multiplier)
        cout = _scaled(cout0, width_multiplier)
        out = _out_size(size, stride)
        convs = [ConvSpec(f"block{i}_conv3x3", i, "binary", 3, cin, cin, stride, size, out, gene=i - 1)]
        shortcut = "identity" if cin == cout else "none"
        if module == "m3":
            if cout % 2:
                raise ValueError(f"M3 needs even output channels; block {i} has {cout} at width {width_multiplier}")
            shortcut = "full" if cout // 2 == cin else "split" if cout == cin else "none"
            for half in ("a", "b"):
                convs.append(ConvSpec(f"block{i}_pw_{half}", i, "binary", 1, cin, cout // 2, 1, out, out))
        elif cin != cout:
            gene = None
            if module == "m2":
                gene = float_pw_gene
                float_pw_gene += 1
            convs.append(ConvSpec(f"block{i}_pw", i, "float", 1, cin, cout, 1, out, out, gene=gene))
        else:
            convs.append(ConvSpec(f"block{i}_pw", i, "binary", 1, cin, cout, 1, out, out))
        blocks.append(BlockSpec(i, cin, cout, stride, size, out, tuple(convs), shortcut))
        size = out
    return Architecture(module, (h, w, c), int(num_classes), float(width_multiplier), stem_convs[0], tuple(blocks),
                        stem_convs[1:], stem)


def width_candidates(arch: Architecture, multipliers: Sequence[float] = DEFAULT_WIDTH_CHOICES) -> Tuple[Tuple[int, ...], ...]:
    """Channel counts each block's width gene may take: ``round_channels(multiplier x channels)`` for every
    multiplier, distinct and ascending (two multipliers may round to one count). The block's own channel count
    (multiplier 1) is always a candidate, so a groups-only genotype means the same network in a width space."""
    mults = tuple(float(m) for m in multipliers)
    if not mults or any(not m > 0 for m in mults):
        raise ValueError(f"width multipliers must be positive numbers, received {list(multipliers)}")
    out = []
    for block in arch.blocks:
        values = {round_channels(m * block.out_channels) for m in mults} | {block.out_channels}
        if arch.module == "m3":
            values = {v for v in values if v % 2 == 0}
        out.append(tuple(sorted(values)))
    return tuple(out)


def mobinet_genotype(arch: Architecture) -> Tuple[int, ...]:
    """The MoBiNet-style baseline (Phan et al., WACV 2020): every binary 3x3 conv depthwise (groups = its
    channels), every other searchable conv ungrouped; the uniform "groups = channels" genotype of the
    ``paper`` space. LCE cannot lower a depthwise binary conv (1 input channel per group), so its export
    keeps them as float ops (``allow_float_fallback``)."""
    return tuple(c.in_channels if c.kernel == 3 else 1 for c in arch.gene_layers)


def baseline_genotype(arch: Architecture, baseline: str) -> Tuple[int, ...]:
    """The genotype of a named baseline (`choices.BASELINES`: "mobinet")."""
    check_choice("Unknown baseline", baseline, BASELINES)
    return mobinet_genotype(arch)
