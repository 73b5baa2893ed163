"""The search space: legal values per gene, genotype encoding and sampling.

A genotype is a hashable tuple of ints: the group counts, one per searchable layer in `Architecture.gene_layers`
order (printed ``"1-2-4-..."``), followed, in the ``width`` and ``joint`` spaces (`SearchSpace(genes=...)`), by one
width gene per block: its output channel count (printed after ``_w``: ``"1-2-4-..._w32-64-96-..."``). A
groups-only string still parses everywhere and means the blocks at the model's width.

Gene spaces (``model.space_genes``):

- ``groups`` (the paper): group counts only;
- ``width``: block widths only (every group count 1);
- ``joint``: both. The legal group counts of a conv depend on its input width, so a genotype is *canonical* when
  each group count is legal for its widths; `SearchSpace.canonical` moves every other count to the largest legal
  count below it, and the searches only ever see canonical genotypes.

Two legality modes (``model.space``):

- ``lce`` (default): binary convs only take group counts LCE lowers to `LceBconv2d` (input channels per
  group a multiple of 32, or one group); float grouped convs (M2) only need to divide their channels.
- ``paper``: all divisors of the channels, as in the paper (§3.2.1). Winners may not be exportable.
"""

from __future__ import annotations

import random
from typing import Callable, Optional, Sequence, Tuple

from .specs import DEFAULT_WIDTH_CHOICES, Architecture, BlockSpec, ConvSpec, allowed_group_counts, width_candidates
from ..choices import SPACE_GENES, SPACE_MODES, check_choice, not_allowed

Genotype = Tuple[int, ...]

#: Bound on the rejection-sampling tries of `sample_under` (every sampling loop is bounded).
DEFAULT_MAX_TRIES = 1000


WIDTH_SEPARATOR = "_w"


def encode(genotype: Sequence[int], num_groups: Optional[int] = None) -> str:
    """``(1, 2, 4)`` -> ``"1-2-4"``; with ``num_groups`` (a genotype with width genes after its first
    ``num_groups`` group counts) ``(1, 2, 32, 64)``, 2 -> ``"1-2_w32-64"``."""
    text = "-".join(str(int(g)) for g in genotype)
    if num_groups is None or num_groups >= len(genotype):
        return text
    return encode(genotype[:num_groups]) + WIDTH_SEPARATOR + encode(genotype[num_groups:])


def decode(text: str) -> Genotype:
    """``"1-2-4"`` (or ``"1,2,4"``) -> ``(1, 2, 4)``; ``"1-2_w32-64"`` -> ``(1, 2, 32, 64)`` (group counts, then
    block widths); raises ValueError with the received text."""
    raw = str(text).strip()
    pieces = raw.split(WIDTH_SEPARATOR)
    if len(pieces) > 2:
        raise ValueError(f"Cannot parse genotype {text!r}: at most one {WIDTH_SEPARATOR!r} (group counts "
                         f"{WIDTH_SEPARATOR} block widths, e.g. '1-2-4{WIDTH_SEPARATOR}32-64-96')")
    genes = []
    for piece in pieces:
        try:
            genes.extend(int(p) for p in piece.replace(",", "-").strip().split("-"))
        except ValueError:
            raise ValueError(f"Cannot parse genotype {text!r}: expected group counts like '1-2-4' "
                             f"(optionally followed by block widths: '1-2-4{WIDTH_SEPARATOR}32-64-96')") from None
    if any(g < 1 for g in genes):
        raise ValueError(f"Genes must be >= 1, received {text!r}")
    return tuple(genes)


class SearchSpace:
    """Candidate group counts per searchable layer of one architecture.

    # Arguments
        arch: the `specs.Architecture` being searched (its block widths are the width genes' multiplier 1).
        mode: "lce" (default, every candidate exports to LceBconv2d) or "paper" (all divisors).
        max_groups: optional cap on group counts (e.g. to keep a paper-mode space small).
        genes: "groups" (default: group counts only), "width" (block widths only) or "joint" (both).
        width_choices: multipliers of each block's output channels (``width`` / ``joint``), rounded by
            `specs.round_channels`.
    """

    def __init__(self, arch: Architecture, mode: str = "lce", max_groups: Optional[int] = None,
                 genes: str = "groups", width_choices: Sequence[float] = DEFAULT_WIDTH_CHOICES):
        check_choice("Unknown search-space mode", mode, SPACE_MODES)
        check_choice("Unknown gene space (model.space_genes)", genes, SPACE_GENES)
        self.arch = arch
        self.mode = mode
        self.genes = genes
        self.max_groups = max_groups
        self.width_choices = tuple(float(w) for w in width_choices) if genes != "groups" else ()
        self.widths: Tuple[Tuple[int, ...], ...] = width_candidates(arch, self.width_choices) if self.width_choices else ()
        if genes == "width":
            allowed = tuple((1,) for _ in arch.gene_layers)
        elif genes == "joint":  # every count legal at some width of the conv's input, up to max_groups
            allowed = self._capped(self._union_over_widths())
        else:
            allowed = self._groups_at(arch)
        self.group_candidates: Tuple[Tuple[int, ...], ...] = allowed
        self.candidates: Tuple[Tuple[int, ...], ...] = allowed + self.widths

    @property
    def num_groups(self) -> int:
        """How many genes are group counts (the rest are block widths)."""
        return self.arch.num_genes

    @property
    def has_widths(self) -> bool:
        return bool(self.widths)

    def _capped(self, allowed: Tuple[Tuple[int, ...], ...]) -> Tuple[Tuple[int, ...], ...]:
        """`allowed` without the counts above ``max_groups`` (1 always stays)."""
        if self.max_groups is None:
            return allowed
        return tuple(tuple(g for g in a if g <= self.max_groups) or (1,) for a in allowed)

    def _groups_at(self, arch: Architecture) -> Tuple[Tuple[int, ...], ...]:
        """Legal group counts per gene of `arch` (the space's mode, up to ``max_groups``)."""
        return self._capped(arch.allowed_groups(lce_compatible=(self.mode == "lce")))

    def _union_over_widths(self) -> Tuple[Tuple[int, ...], ...]:
        """Per group gene, every count legal at some choice of the widths its conv reads (input; output for
        M2's float 1x1 convs)."""
        union = [set() for _ in self.arch.gene_layers]
        lce = self.mode == "lce"
        stem = self.arch.stem_channels
        for spec in self.arch.gene_layers:
            block = spec.block
            ins = (stem,) if block == 1 else self.widths[block - 2]
            outs = ins if spec.kernel == 3 else self.widths[block - 1]
            for cin in ins:
                for cout in outs:
                    union[spec.gene] |= set(allowed_group_counts(cin, cout, binary=spec.binary, lce_compatible=lce))
        return tuple(tuple(sorted(u)) for u in union)

    def block_at(self, index: int, prev: Optional[int], width: int) -> BlockSpec:
        """Block `index` (1..13) with `width` output channels after a block of `prev` (None: the stem's, for block
        1; else the model's own width there): a block's convs depend on these two widths only."""
        widths = list(self.arch.block_channels)
        if prev is not None:
            widths[index - 2] = prev
        widths[index - 1] = width
        return self.arch.with_widths(widths).blocks[index - 1]

    def conv_groups(self, conv: ConvSpec) -> Tuple[int, ...]:
        """The group counts `conv` (at its channels) may take in this space: its fixed count, or its gene's
        candidates that are legal at its channels."""
        if conv.gene is None:
            return (conv.groups,)
        legal = allowed_group_counts(conv.in_channels, conv.out_channels, binary=conv.binary,
                                     lce_compatible=self.mode == "lce")
        return tuple(g for g in self.group_candidates[conv.gene] if g in legal)

    def split(self, genotype: Sequence[int]) -> Tuple[Genotype, Genotype]:
        """``(group counts, block widths)`` of a full genotype (widths: the model's own in a groups space)."""
        genotype = tuple(int(g) for g in genotype)
        if not self.has_widths:
            return genotype, self.arch.block_channels
        return genotype[: self.num_groups], genotype[self.num_groups :]

    def resolve(self, genotype: Sequence[int]) -> Tuple[Architecture, Genotype]:
        """``(architecture at the genotype's widths, group counts)``: what every builder and cost counter reads."""
        groups, widths = self.split(genotype)
        return self.arch.with_widths(widths), groups

    def encode(self, genotype: Sequence[int]) -> str:
        """The genotype's string: ``"1-2-4"``, or ``"1-2-4_w32-64-96"`` with width genes."""
        return encode(genotype, self.num_groups if self.has_widths else None)

    def expand(self, genotype) -> Genotype:
        """A string or tuple as a full genotype of this space: a groups-only genotype in a width space gets the
        model's own block widths (what it meant before width genes)."""
        if isinstance(genotype, str):
            genotype = decode(genotype)
        genotype = tuple(genotype)
        if self.has_widths and len(genotype) == self.num_groups:
            genotype = genotype + self.arch.block_channels
        return genotype

    def canonical(self, genotype: Sequence[int]) -> Genotype:
        """The genotype with every group count that its widths make illegal moved to the largest legal count below
        it (identity on legal genotypes; groups spaces: identity)."""
        genotype = tuple(int(g) for g in genotype)
        if self.genes != "joint":
            return genotype
        groups, widths = self.split(genotype)
        allowed = self._groups_at(self.arch.with_widths(widths))
        fixed = tuple(g if g in a else max(x for x in a if x <= g) for g, a in zip(groups, allowed))
        return fixed + widths

    def __len__(self) -> int:
        return len(self.candidates)

    @property
    def size(self) -> int:
        n = 1
        for c in self.candidates:
            n *= len(c)
        return n

    @property
    def layer_names(self) -> Tuple[str, ...]:
        return tuple(c.name for c in self.arch.gene_layers)

    def validate(self, genotype) -> Genotype:
        """Return `genotype` as a tuple, or raise ValueError naming the layer and its allowed values."""
        genotype = self.expand(genotype)
        if not self.has_widths:
            genes = self.arch.expand_groups(genotype)
            for name, g, allowed in zip(self.layer_names, genes, self.candidates):
                if g not in allowed:
                    raise not_allowed(f"Invalid group count {g} for layer {name} in {self.mode!r} search space",
                                      allowed)
            return genes
        n, blocks = self.num_groups, len(self.arch.blocks)
        if len(genotype) != n + blocks:
            raise ValueError(f"Genotype {encode(genotype)} has {len(genotype)} genes; this {self.genes} space has "
                             f"{n} group counts and {blocks} block widths ({n + blocks} genes)")
        groups, widths = self.split(genotype)
        for i, (w, allowed) in enumerate(zip(widths, self.widths), start=1):
            if w not in allowed:
                raise not_allowed(f"Invalid width {w} for block {i} in the {self.genes} search space", allowed)
        self.arch.expand_groups(groups)
        at_widths = self._groups_at(self.arch.with_widths(widths))
        for name, g, allowed, cands in zip(self.layer_names, groups, at_widths, self.group_candidates):
            if g not in allowed or g not in cands:
                legal = tuple(x for x in allowed if x in cands)
                raise not_allowed(f"Invalid group count {g} for layer {name} at block widths {encode(widths)} in "
                                  f"the {self.genes} {self.mode!r} search space", legal)
        return tuple(genotype)

    def contains(self, genotype: Sequence[int]) -> bool:
        try:
            self.validate(tuple(genotype))
        except (ValueError, TypeError):
            return False
        return True

    def uniform(self, groups: int, width: float = 1.0) -> Genotype:
        """The uniform genotype: every block at ``width`` x its channels (width spaces: the nearest candidate),
        each layer at its largest legal group count <= groups."""
        if not self.has_widths:
            return tuple(max(g for g in c if g <= groups) for c in self.candidates)
        widths = tuple(min(c, key=lambda v, b=b: (abs(v - width * b.out_channels), v))
                       for c, b in zip(self.widths, self.arch.blocks))
        return self.canonical(tuple(max(g for g in c if g <= groups) for c in self.group_candidates) + widths)

    def largest(self) -> Genotype:
        """The genotype with the most operations: widest blocks, one group everywhere (the sandwich rule's max)."""
        return self.canonical(tuple(min(c) for c in self.group_candidates) + tuple(c[-1] for c in self.widths))

    def smallest(self) -> Genotype:
        """The genotype with the fewest operations: narrowest blocks, the most groups they allow."""
        return self.canonical(tuple(max(c) for c in self.group_candidates) + tuple(c[0] for c in self.widths))

    def sample(self, rng: random.Random) -> Genotype:
        """A uniformly random genotype (joint: widths, then group counts drawn among the candidates and moved
        to the largest legal count below; `canonical`)."""
        return self.canonical(tuple(rng.choice(c) for c in self.candidates))

    def sample_under(
        self,
        rng: random.Random,
        cost: Callable[[Genotype], float],
        budget: float,
        max_tries: int = DEFAULT_MAX_TRIES,
        min_cost: Optional[float] = None,
    ) -> Genotype:
        """A random genotype with cost(genotype) <= budget (rejection sampling, at most `max_tries` tries).

        Raises ValueError if the budget is below the cheapest genotype (`min_cost`, when known) or if no
        sample met it within `max_tries`.
        """
        if min_cost is not None and min_cost > budget:
            raise ValueError(
                f"Budget {budget:.6g} is below the cheapest genotype in this space ({min_cost:.6g}); "
                f"raise the budget to at least {min_cost:.6g}"
            )
        for _ in range(max_tries):
            g = self.sample(rng)
            if cost(g) <= budget:
                return g
        raise ValueError(
            f"No genotype with cost <= {budget:.6g} found in {max_tries} random samples"
            + (f" (cheapest possible: {min_cost:.6g})" if min_cost is not None else "")
        )

    def describe(self) -> str:
        genes = "" if self.genes == "groups" else f", {self.genes} genes"
        lines = [f"{self.arch.module.upper()} search space ({self.mode}{genes}), {self.size:.3g} genotypes:"]
        for name, c in zip(self.layer_names, self.group_candidates):
            lines.append(f"  {name:<18} {list(c)}")
        for i, c in enumerate(self.widths, start=1):
            lines.append(f"  {f'block{i} width':<18} {list(c)}")
        return "\n".join(lines)
