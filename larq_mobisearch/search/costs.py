"""Analytic computational cost of a binary MobileNet genotype.

Counts follow the Bi-Real Net convention used by the paper (§4.1): binary multiply-accumulates are BOPs,
real-valued ones are FLOPs, and `FLOPs = BOPs / 64 + float FLOPs`. The count is computed from the
architecture description and the genotype, never from Keras weights (a masked supernet kernel would be
counted in full).

Cost models (`FlopsCostModel`, and `LatencyCostModel` from a measured latency table) share one shape: a fixed part plus one
additive term per gene, looked up by the gene's group count. With width genes a conv's cost depends on two block
widths: `WidthFlopsCostModel` counts the genotype's architecture and `WidthLatencyCostModel` sums a ``block_convs``
table's entries of every block conv; their minimum is a dynamic programme over the chain of blocks (`chain_min`).
The search only calls `cost(genotype)` (and `min_cost`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from ..deploy.latency_table import LatencyTable, LatencyTableError, load_latency_table
from ..deploy.table_plan import (
    SCOPE_BLOCKS,
    SCOPE_GENES,
    block_conv_keys,
    block_table_keys,
    conv_key,
    default_allowed,
    describe_key,
    key_id,
    layer_key,
)
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


def chain_min(space, conv_cost, fixed: float, per_output_channel: float = 0.0) -> float:
    """The cheapest genotype of `space` (a space with width genes) under a cost that sums ``conv_cost(conv, g)``
    over every conv of blocks 1..13 (at the cheapest legal group count of each searchable conv) plus `fixed` plus
    ``per_output_channel`` x the last block's width: an exact dynamic programme over the chain of blocks (a
    block's cost depends on its own width and the one before)."""
    def block_cost(index, prev, width):
        return sum(min(conv_cost(conv, g) for g in space.conv_groups(conv) or (1,))
                   for conv in space.block_at(index, prev, width).convs)

    best = {None: float(fixed)}  # width of the previous block -> cheapest cost so far
    for i, choices in enumerate(space.widths, start=1):
        nxt: Dict[int, float] = {}
        for prev, so_far in best.items():
            for c in choices:
                cost = so_far + block_cost(i, prev, c)
                if cost < nxt.get(c, math.inf):
                    nxt[c] = cost
        best = nxt
    return min(v + c * per_output_channel for c, v in best.items())


def _require_widths(space, what: str, instead: str) -> None:
    if not getattr(space, "has_widths", False):
        raise ValueError(f"{what} is for spaces with width genes; use {instead}")


class WidthFlopsCostModel:
    """FLOPs of a genotype with width genes (`nn.space.SearchSpace` ``width`` / ``joint``): counted on the
    genotype's architecture (`SearchSpace.resolve`). Not additive per gene (a conv's cost depends on two block
    widths), so its minimum is an exact dynamic programme over the chain of blocks (`chain_min`)."""

    unit = "FLOPs"
    name = "flops"

    def __init__(self, space):
        _require_widths(space, "WidthFlopsCostModel", "FlopsCostModel")
        self.space = space
        self.arch = space.arch
        self._min: Optional[float] = None

    def cost(self, genotype: Sequence[int]) -> float:
        arch, groups = self.space.resolve(genotype)
        return count_costs(arch, groups).flops

    def min_cost(self, allowed=None) -> float:
        """The cheapest genotype's FLOPs (`allowed` is ignored: the space's own candidates)."""
        if self._min is None:
            fixed = sum(conv.macs() for conv in self.arch.stem_convs)
            self._min = chain_min(self.space, lambda conv, g: conv.macs(g) / (BOPS_PER_FLOP if conv.binary else 1),
                                  fixed, per_output_channel=self.arch.num_classes)
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
        table = _usable_table(table, arch, threads, SCOPE_GENES)
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


def _usable_table(table, arch: Architecture, threads: Optional[int], scope: str) -> LatencyTable:
    """`table` (or the table at that path), refused with LatencyTableError when it is unfinished, of another
    architecture, thread count or scope."""
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
    if table.scope != scope:
        need = ("every block conv at every width pair (a table built for the search space with width genes)"
                if scope == SCOPE_BLOCKS else "the searchable layers (a table built for a groups-only space)")
        raise LatencyTableError(
            f"The latency table ({table.source}) has scope {table.scope!r}; this search space needs scope "
            f"{scope!r}: {need}. Build one with `mobisearch latency-table` on a run of this space."
        )
    return table


class WidthLatencyCostModel:
    """Predicted latency (ms) of a genotype with width genes: ``fixed_ms`` + the table's entry of every conv of
    blocks 1..13 at the genotype's widths and group counts (a ``block_convs`` table, `table_plan.block_table_keys`).

    # Arguments
        table: a `LatencyTable` with scope ``block_convs``, or a path to its JSON.
        space: the `nn.space.SearchSpace` searched (``width`` or ``joint`` genes); every conv configuration it
            can produce must have an entry, else LatencyTableError names the first few missing.
        threads: if given, the table must have been measured with this many threads.
    """

    unit = "ms"
    name = "latency"

    def __init__(self, table: Union[LatencyTable, str, os.PathLike], space, *, threads: Optional[int] = None):
        _require_widths(space, "WidthLatencyCostModel", "LatencyCostModel")
        table = _usable_table(table, space.arch, threads, SCOPE_BLOCKS)
        missing = [f"{', '.join(names)}: {describe_key(key)}" for key, names in block_table_keys(space, table.threads)
                   if key_id(key) not in table.entries]
        if missing:
            shown = "; ".join(missing[:5]) + (f"; ... ({len(missing)} in all)" if len(missing) > 5 else "")
            raise LatencyTableError(f"The latency table ({table.source}) has no entry for {shown}. Build the table "
                                    "for this search space (its widths and group counts).")
        self.latency_table = table
        self.space = space
        self.arch = space.arch
        self.source = table.source
        self.fixed = float(table.fixed_ms)
        self._min: Optional[float] = None
        self._block_genes = [[c.gene for c in b.convs if c.gene is not None] for b in self.arch.blocks]
        self._blocks: Dict[Tuple[Any, ...], float] = {}

    def breakdown(self, genotype: Sequence[int]) -> List[Tuple[str, Dict[str, Any], float]]:
        """(layer name, key, ms) of every block conv of `genotype`, for reports."""
        arch, groups = self.space.resolve(genotype)
        return [(name, key, self._entry_ms(name, key))
                for key, name in block_conv_keys(arch, groups, self.latency_table.threads)]

    def _entry_ms(self, name: str, key: Mapping[str, Any]) -> float:
        try:
            return self.latency_table.lookup(key)
        except KeyError:
            raise LatencyTableError(f"The latency table has no entry for {name}: {describe_key(key)} (a genotype "
                                    "outside the search space the table was built for?)") from None

    def cost(self, genotype: Sequence[int]) -> float:
        """``fixed_ms`` + each block's entries, a block's sum kept per (block, input width, width, its group
        counts): a search costs thousands of genotypes made of few distinct blocks."""
        groups, widths = self.space.split(tuple(int(g) for g in genotype))
        total = self.fixed
        for i, width in enumerate(widths):
            prev = widths[i - 1] if i else None
            key = (i, prev, width, tuple(groups[gene] for gene in self._block_genes[i]))
            if key not in self._blocks:
                threads = self.latency_table.threads
                self._blocks[key] = sum(
                    self._entry_ms(c.name, conv_key(c, groups, threads))
                    for c in self.space.block_at(i + 1, prev, width).convs)
            total += self._blocks[key]
        return total

    def min_cost(self, allowed=None) -> float:
        """The cheapest genotype's predicted latency (`allowed` is ignored: the space's own candidates)."""
        if self._min is None:
            threads = self.latency_table.threads
            self._min = chain_min(self.space, lambda conv, g: self._entry_ms(conv.name, layer_key(conv, g, threads)),
                                  self.fixed)
        return self._min
