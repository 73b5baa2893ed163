"""Analytic computational cost of a binary MobileNet genotype.

Counts follow the Bi-Real Net convention used by the paper (§4.1): binary multiply-accumulates are BOPs,
real-valued ones are FLOPs, and `FLOPs = BOPs / 64 + float FLOPs`. The count is computed from the
architecture description and the genotype, never from Keras weights (a masked supernet kernel would be
counted in full).

Cost models (`FlopsCostModel`, and `LatencyCostModel` from a measured latency table) share one shape: a fixed part plus one
additive term per gene, looked up by the gene's group count. The search only calls `cost(genotype)`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..deploy.latency_table import (
    LatencyTable,
    LatencyTableError,
    default_allowed,
    describe_key,
    layer_key,
    load_latency_table,
)
from ..nn.specs import Architecture, allowed_group_counts

#: Bi-Real Net / paper convention: one FLOP per 64 binary operations.
BOPS_PER_FLOP = 64


@dataclass(frozen=True)
class Costs:
    bops: int
    float_flops: int

    @property
    def flops(self) -> float:
        return self.bops / BOPS_PER_FLOP + self.float_flops

    def as_dict(self) -> Dict[str, float]:
        return {"bops": self.bops, "float_flops": self.float_flops, "flops": self.flops}


def count_costs(arch: Architecture, groups=1, *, check: bool = False, lce_compatible: bool = True) -> Costs:
    """BOPs, float FLOPs and FLOPs of `arch` with `groups` (an int or one count per gene).

    With `check=True` the genotype is validated against the allowed group counts first.
    """
    genes = arch.check_groups(groups, lce_compatible=lce_compatible) if check else arch.expand_groups(groups)
    bops = 0
    flops = arch.classifier_macs
    for conv in arch.convs:
        g = conv.groups if conv.gene is None else genes[conv.gene]
        if conv.in_channels % g or conv.out_channels % g:
            raise ValueError(
                f"group count {g} does not divide the channels of {conv.name} "
                f"({conv.in_channels} -> {conv.out_channels})"
            )
        macs = conv.macs(g)
        if conv.binary:
            bops += macs
        else:
            flops += macs
    return Costs(bops, flops)


class AdditiveCostModel:
    """cost(genotype) = fixed + sum over genes of table[gene][group count]."""

    unit = ""
    name = "cost"

    def __init__(self, fixed: float, table: Sequence[Mapping[int, float]]):
        self.fixed = float(fixed)
        self.table: Tuple[Dict[int, float], ...] = tuple({int(k): float(v) for k, v in t.items()} for t in table)

    def cost(self, genotype: Sequence[int]) -> float:
        if len(genotype) != len(self.table):
            raise ValueError(f"genotype has {len(genotype)} genes, the cost model expects {len(self.table)}")
        total = self.fixed
        for i, (g, t) in enumerate(zip(genotype, self.table)):
            if g not in t:
                raise ValueError(f"gene {i}: group count {g} not in the cost table (known: {sorted(t)})")
            total += t[g]
        return total

    def min_cost(self, allowed: Sequence[Sequence[int]]) -> float:
        """Cheapest cost over the genotypes whose gene i takes values in allowed[i]."""
        return self.fixed + sum(min(t[g] for g in a) for t, a in zip(self.table, allowed))

    def cheapest(self, allowed: Sequence[Sequence[int]]) -> Tuple[int, ...]:
        return tuple(min(a, key=lambda g, t=t: (t[g], g)) for t, a in zip(self.table, allowed))


class FlopsCostModel(AdditiveCostModel):
    """FLOPs (BOPs/64 + float FLOPs) of a genotype of `arch`, as an additive per-gene table."""

    unit = "FLOPs"
    name = "flops"

    def __init__(self, arch: Architecture, allowed: Sequence[Sequence[int]] = None):
        self.arch = arch
        allowed = allowed if allowed is not None else arch.allowed_groups(lce_compatible=False)
        fixed = float(arch.classifier_macs)
        for conv in arch.convs:
            if conv.gene is None:
                fixed += conv.macs() / BOPS_PER_FLOP if conv.binary else conv.macs()
        table = []
        for conv, values in zip(arch.gene_layers, allowed):
            scale = 1.0 / BOPS_PER_FLOP if conv.binary else 1.0
            table.append({g: conv.macs(g) * scale for g in values})
        super().__init__(fixed, table)


class WidthFlopsCostModel:
    """FLOPs of a genotype with width genes (`nn.space.SearchSpace` ``width`` / ``joint``): counted on the
    genotype's architecture (`SearchSpace.resolve`). Not additive per gene (a conv's cost depends on two block
    widths), so its minimum is an exact dynamic programme over the chain of blocks."""

    unit = "FLOPs"
    name = "flops"

    def __init__(self, space):
        if not getattr(space, "has_widths", False):
            raise ValueError("WidthFlopsCostModel is for spaces with width genes; use FlopsCostModel")
        self.space = space
        self.arch = space.arch
        self._min: Optional[float] = None

    def cost(self, genotype: Sequence[int]) -> float:
        arch, groups = self.space.resolve(genotype)
        return count_costs(arch, groups).flops

    def _block_cost(self, arch: Architecture, index: int) -> float:
        """Cheapest FLOPs of block `index` (1-based) of `arch` over the group counts the space allows there."""
        total = 0.0
        lce = self.space.mode == "lce"
        for conv in arch.blocks[index - 1].convs:
            values = (1,) if conv.gene is None else self.space.group_candidates[conv.gene]
            legal = [g for g in values if g in allowed_group_counts(conv.in_channels, conv.out_channels,
                                                                   binary=conv.binary, lce_compatible=lce)] or [1]
            scale = 1.0 / BOPS_PER_FLOP if conv.binary else 1.0
            total += min(conv.macs(g) for g in legal) * scale
        return total

    def min_cost(self, allowed=None) -> float:
        """The cheapest genotype's FLOPs (`allowed` is ignored: the space's own candidates)."""
        if self._min is None:
            base = list(self.arch.block_channels)
            widths = self.space.widths
            fixed = sum(conv.macs() for conv in self.arch.stem_convs)
            best = {None: float(fixed)}  # width of the previous block -> cheapest cost so far
            for i, choices in enumerate(widths, start=1):
                nxt: Dict[int, float] = {}
                for prev, so_far in best.items():
                    for c in choices:
                        w = list(base)
                        if prev is not None:
                            w[i - 2] = prev
                        w[i - 1] = c
                        cost = so_far + self._block_cost(self.arch.with_widths(w), i)
                        if cost < nxt.get(c, math.inf):
                            nxt[c] = cost
                best = nxt
            self._min = min(v + c * self.arch.num_classes for c, v in best.items())
        return self._min


def flops_cost_model(space):
    """The FLOPs cost model of `space`: additive per gene (`FlopsCostModel`) for group genes, `WidthFlopsCostModel`
    with width genes."""
    if getattr(space, "has_widths", False):
        return WidthFlopsCostModel(space)
    return FlopsCostModel(space.arch, space.candidates)


class LatencyCostModel(AdditiveCostModel):
    """Predicted latency (ms) of a genotype: ``fixed_ms + sum over genes of table[layer config at its groups]``.

    # Arguments
        table: a `LatencyTable` or a path to its JSON.
        arch: the `specs.Architecture` searched; must be the one the table was measured for.
        allowed: group counts per gene to cost (default: the LCE search space); every one must have an
            entry, else LatencyTableError names the layer and its configuration.
        threads: if given, the table must have been measured with this many threads.
    """

    unit = "ms"
    name = "latency"

    def __init__(
        self,
        table: Union[LatencyTable, str, os.PathLike],
        arch: Architecture,
        allowed: Optional[Sequence[Sequence[int]]] = None,
        *,
        threads: Optional[int] = None,
    ):
        if not isinstance(table, LatencyTable):
            table = load_latency_table(table)
        if not table.complete:
            raise LatencyTableError("The latency table has no fixed_ms (an interrupted build); finish the build first")
        table.check_architecture(arch)
        if threads is not None and int(threads) != table.threads:
            raise LatencyTableError(
                f"The latency table was measured with {table.threads} thread(s), not {int(threads)}; "
                f"build or measure a table with --threads {int(threads)}"
            )
        allowed = default_allowed(arch) if allowed is None else allowed
        if len(allowed) != arch.num_genes:
            raise ValueError(f"allowed has {len(allowed)} gene entries, {arch.module} has {arch.num_genes} genes")
        per_gene = []
        missing = []
        for spec, values in zip(arch.gene_layers, allowed):
            t = {}
            for g in values:
                key = layer_key(spec, int(g), table.threads)
                try:
                    t[int(g)] = table.lookup(key)
                except KeyError:
                    missing.append(f"{spec.name} (gene {spec.gene}) at groups={g}: {describe_key(key)}")
            per_gene.append(t)
        if missing:
            shown = "; ".join(missing[:5]) + (f"; ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise LatencyTableError(
                f"The latency table ({table.source}) has no entry for {shown}. Rebuild the table with these "
                "group counts, or restrict the search space to the measured ones."
            )
        self.latency_table = table
        self.arch = arch
        self.source = table.source
        super().__init__(table.fixed_ms, per_gene)

    def breakdown(self, genotype: Sequence[int]) -> List[Tuple[str, int, float]]:
        """(layer name, groups, ms) per gene, for reports."""
        return [(spec.name, int(g), self.table[i][int(g)]) for i, (spec, g) in enumerate(zip(self.arch.gene_layers, genotype))]
