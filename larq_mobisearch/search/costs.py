"""Analytic computational cost of a binary MobileNet genotype.

Counts follow the Bi-Real Net convention used by the paper (§4.1): binary multiply-accumulates are BOPs,
real-valued ones are FLOPs, and `FLOPs = BOPs / 64 + float FLOPs`. The count is computed from the
architecture description and the genotype, never from Keras weights (a masked supernet kernel would be
counted in full).

Cost models (`FlopsCostModel`, and `latency.LatencyCostModel`) share one shape: a fixed part plus one
additive term per gene, looked up by the gene's group count. The search only calls `cost(genotype)`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Mapping, Sequence, Tuple

from ..nn.specs import Architecture

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
        g = 1 if conv.gene is None else genes[conv.gene]
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
