"""What a latency table measures: its layer configurations (keys) and the networks that calibrate it.

- Keys: `layer_key` (one conv at a group count), `key_id`, `describe_key`; `table_keys` (scope ``gene_layers``: the
  searchable layers at every allowed group count) and `block_table_keys` / `block_conv_keys` (scope
  ``block_convs``, spaces with width genes: every conv of every block at every width pair);
- reference networks: `reference_genotypes` (uniform), `random_references` and `width_references` (what a search
  compares; they calibrate ``fixed_ms``), `host_references`, and `cover_genotypes` (the fewest networks, greedily,
  that contain every configuration of a ``block_convs`` table: a device's calibration models);
- `plan_for`: the `TablePlan` of a table (scope, keys, how a genotype resolves and which entries it sums).

Pure Python (no TensorFlow): `latency_table`, `host_table`, `device_table` and `search.costs` build on it.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..nn.specs import Architecture, ConvSpec

KEY_FIELDS = ("kind", "kernel", "in_size", "in_channels", "out_channels", "groups", "stride", "threads")
#: Which layers a table has entries for (see the module docstring).
SCOPE_GENES = "gene_layers"
SCOPE_BLOCKS = "block_convs"
SCOPES = (SCOPE_GENES, SCOPE_BLOCKS)

# --------------------------------------------------------------------------------------------------------
# Layer configurations (table keys)


def layer_key(spec: ConvSpec, groups: int, threads: int) -> Dict[str, Any]:
    """The configuration of searchable layer `spec` at `groups` groups, as a JSON-able table key."""
    return {
        "kind": spec.kind,
        "kernel": int(spec.kernel),
        "in_size": [int(s) for s in spec.in_size],
        "in_channels": int(spec.in_channels),
        "out_channels": int(spec.out_channels),
        "groups": int(groups),
        "stride": int(spec.stride),
        "threads": int(threads),
    }


def key_id(key: Mapping[str, Any]) -> str:
    """Canonical string of a key (dict lookups)."""
    return json.dumps({f: key[f] for f in KEY_FIELDS}, sort_keys=True, separators=(",", ":"))


def describe_key(key: Mapping[str, Any]) -> str:
    """Human-readable layer configuration, e.g. ``binary 3x3 conv 56x56x128->128 stride 2 groups 4, 1 thread``."""
    h, w = key["in_size"]
    k = key["kernel"]
    t = key["threads"]
    return (
        f"{key['kind']} {k}x{k} conv {h}x{w}x{key['in_channels']}->{key['out_channels']} "
        f"stride {key['stride']} groups {key['groups']}, {t} thread{'s' if t != 1 else ''}"
    )


def default_allowed(arch: Architecture) -> Tuple[Tuple[int, ...], ...]:
    """Group counts the table covers by default: the LCE search space (`SearchSpace(arch, "lce")`)."""
    return arch.allowed_groups(lce_compatible=True)


def table_keys(
    arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None, threads: int = 1
) -> List[Tuple[Dict[str, Any], List[str]]]:
    """Distinct (key, [layer names]) pairs needed to cost every genotype of `allowed` (ordered as the network)."""
    allowed = default_allowed(arch) if allowed is None else allowed
    if len(allowed) != arch.num_genes:
        raise ValueError(f"allowed has {len(allowed)} gene entries, {arch.module} has {arch.num_genes} genes")
    out: Dict[str, Tuple[Dict[str, Any], List[str]]] = {}
    for spec, values in zip(arch.gene_layers, allowed):
        for g in values:
            key = layer_key(spec, g, threads)
            out.setdefault(key_id(key), (key, []))[1].append(spec.name)
    return list(out.values())


def conv_key(conv: ConvSpec, groups: Sequence[int], threads: int = 1) -> Dict[str, Any]:
    """The key of `conv` in a network with group counts `groups`: its gene's count, or its fixed one."""
    return layer_key(conv, conv.groups if conv.gene is None else int(groups[conv.gene]), threads)


def block_conv_keys(arch: Architecture, groups: Sequence[int], threads: int = 1) -> List[Tuple[Dict[str, Any], str]]:
    """(key, layer name) of every conv of blocks 1..13 of `arch` (at a genotype's widths: `SearchSpace.resolve`),
    each at its gene's group count in `groups` or its fixed one: the entries a ``block_convs`` table sums."""
    return [(conv_key(c, groups, threads), c.name) for b in arch.blocks for c in b.convs]


def has_width_scope(arch: Architecture, space) -> bool:
    """Whether a table of `arch` for `space` has scope ``block_convs`` (a `nn.space.SearchSpace` with width genes;
    None or a groups-only space: ``gene_layers``). Raises ValueError if `space` is not a search space of `arch`."""
    if space is None or not space.has_widths:
        return False
    if space.arch != arch:
        raise ValueError("space must be a search space of arch")
    return True


def block_table_keys(space, threads: int = 1) -> List[Tuple[Dict[str, Any], List[str]]]:
    """Distinct (key, [layer names]) pairs of a ``block_convs`` table for `space` (a `nn.space.SearchSpace` with
    width genes): every conv of every block at every (input width, output width) pair the space allows, each
    searchable conv at every candidate group count legal at those widths."""
    out: Dict[str, Tuple[Dict[str, Any], List[str]]] = {}
    for i, outs in enumerate(space.widths, start=1):
        for cin in ((None,) if i == 1 else space.widths[i - 2]):
            for cout in outs:
                for conv in space.block_at(i, cin, cout).convs:
                    for g in space.conv_groups(conv):
                        key = layer_key(conv, g, threads)
                        names = out.setdefault(key_id(key), (key, []))[1]
                        if conv.name not in names:
                            names.append(conv.name)
    return list(out.values())


def cover_genotypes(space, threads: int = 1) -> List[Tuple[int, ...]]:
    """Genotypes of `space` (width genes) whose networks together contain every configuration of its
    ``block_convs`` table (`block_table_keys`): the calibration models of a device table, where one profiled
    network times one configuration per conv. Greedy set cover: each next genotype contains the most
    configurations not yet covered, found exactly by dynamic programming over the blocks (a block's convs depend
    on its own width and the previous block's only; within a block each group gene is chosen alone). Bounded: at
    most one genotype per configuration."""
    needed = {key_id(k) for k, _ in block_table_keys(space, threads)}
    covered: Set[str] = set()
    out: List[Tuple[int, ...]] = []
    configs: Dict[Tuple[int, Optional[int], int], Tuple[List[str], Dict[int, Dict[int, List[str]]]]] = {}

    def block_configs(i: int, prev: Optional[int], w: int):
        """(key ids of the fixed convs, {gene: {legal group count: key ids of its convs}}) of block i."""
        if (i, prev, w) not in configs:
            block = space.block_at(i, prev, w)
            fixed = [key_id(layer_key(c, c.groups, threads)) for c in block.convs if c.gene is None]
            genes: Dict[int, List[ConvSpec]] = {}
            for c in block.convs:
                if c.gene is not None:
                    genes.setdefault(c.gene, []).append(c)
            configs[(i, prev, w)] = (fixed, {
                gene: {g: [key_id(layer_key(c, g, threads)) for c in convs] for g in space.conv_groups(convs[0])
                       if all(g in space.conv_groups(c) for c in convs)}
                for gene, convs in genes.items()})
        return configs[(i, prev, w)]

    def block_gain(i: int, prev: Optional[int], w: int) -> Tuple[int, Dict[int, int]]:
        fixed, genes = block_configs(i, prev, w)
        gain, choice = sum(k not in covered for k in fixed), {}
        for gene, by_groups in genes.items():
            new = {g: sum(k not in covered for k in keys) for g, keys in by_groups.items()}
            choice[gene] = max(new, key=lambda g: (new[g], -g))
            gain += new[choice[gene]]
        return gain, choice

    for _ in range(len(needed)):
        if covered >= needed:
            break
        # best[w]: (configurations gained, widths, group genes) of blocks 1..i with block i at width w
        best: Dict[Optional[int], Tuple[int, List[int], Dict[int, int]]] = {None: (0, [], {})}
        for i, widths in enumerate(space.widths, start=1):
            step: Dict[Optional[int], Tuple[int, List[int], Dict[int, int]]] = {}
            for prev, (score, ws, genes) in best.items():
                for w in widths:
                    gain, choice = block_gain(i, prev, w)
                    if w not in step or score + gain > step[w][0]:
                        step[w] = (score + gain, ws + [w], {**genes, **choice})
            best = step
        score, ws, genes = max(best.values(), key=lambda t: t[0])
        if score == 0:  # cannot happen: every needed configuration is in some genotype of the space
            raise RuntimeError(f"cover_genotypes: {len(needed - covered)} configurations no genotype contains")
        genotype = space.validate(tuple(genes[i] for i in range(space.num_groups)) + tuple(ws))
        arch, groups = space.resolve(genotype)
        covered |= {key_id(k) for k, _ in block_conv_keys(arch, groups, threads)}
        out.append(genotype)
    return out


def reference_genotypes(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None) -> List[Tuple[int, ...]]:
    """Uniform genotypes that together use every allowed group count of every gene (each gene clamped to its
    largest allowed count <= g, for each distinct allowed value g), from all-fewest to all-most groups.

    They calibrate ``fixed_ms`` of host tables and are the calibration models of device tables.
    """
    allowed = default_allowed(arch) if allowed is None else allowed
    out: List[Tuple[int, ...]] = []
    for v in sorted({int(g) for a in allowed for g in a}):
        genotype = tuple(max([g for g in a if g <= v] or [min(a)]) for a in allowed)
        if genotype not in out:
            out.append(genotype)
    return out


#: Random genotypes of the space that calibrate a host table's ``fixed_ms`` (`random_references`).
DEFAULT_CALIBRATION_SAMPLES = 12


def random_references(allowed: Sequence[Sequence[int]], n: int = DEFAULT_CALIBRATION_SAMPLES, *, seed: int = 0,
                      exclude: Sequence[Sequence[int]] = ()) -> List[Tuple[int, ...]]:
    """Up to `n` distinct genotypes drawn uniformly (seeded) from `allowed`, none of them in `exclude`: what a
    search samples, unlike the uniform `reference_genotypes` at the edges of the space. Bounded: fewer when the
    space has fewer."""
    if int(n) < 0:
        raise ValueError(f"n must be >= 0, received {n}")
    rng = random.Random(seed)
    return distinct_draws(lambda: tuple(int(rng.choice(list(a))) for a in allowed), n, exclude)


def distinct_draws(draw: Callable[[], Tuple[int, ...]], n: int, exclude: Sequence[Sequence[int]] = ()
                   ) -> List[Tuple[int, ...]]:
    """Up to `n` distinct genotypes from `draw()` (a seeded sampler), none of them in `exclude`, in the order drawn;
    bounded at 50 x `n` draws, so a space with fewer genotypes gives fewer."""
    seen = {tuple(int(g) for g in e) for e in exclude}
    out: List[Tuple[int, ...]] = []
    for _ in range(50 * int(n)):
        if len(out) >= int(n):
            break
        g = draw()
        if g not in seen:
            seen.add(g)
            out.append(g)
    return out


@dataclass
class HostReferences:
    """The networks a host table times end to end: `genotypes` (in order), of which `calibrating` set
    ``fixed_ms``, chosen as `how` says."""

    genotypes: List[Tuple[int, ...]]
    calibrating: Set[Tuple[int, ...]]
    how: str


def host_references(
    arch: Architecture,
    allowed: Sequence[Sequence[int]],
    references: Optional[Sequence[Sequence[int]]] = None,
    *,
    calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES,
    calibration_seed: int = 0,
) -> HostReferences:
    """The reference networks of `measure_host_table` (see there), e.g. to convert them ahead of the timing or
    to check a table on other genotypes."""
    if references is not None:
        refs = [arch.expand_groups(tuple(r)) for r in references]
        return HostReferences(refs, set(refs), "reference genotypes")
    uniform = [arch.expand_groups(tuple(r)) for r in reference_genotypes(arch, allowed)]
    samples = random_references(allowed, calibration_samples, seed=calibration_seed, exclude=uniform)
    if not samples:
        return HostReferences(uniform, set(uniform), "reference genotypes")
    return HostReferences(uniform + samples, set(samples), "random genotypes of the space")


def width_references(space, calibration_samples: int = DEFAULT_CALIBRATION_SAMPLES, *,
                     calibration_seed: int = 0) -> HostReferences:
    """The reference networks of a ``block_convs`` table (`space` with width genes): the largest and the smallest
    genotype as checks, and `calibration_samples` distinct random genotypes (`SearchSpace.sample`, seeded), what a
    search compares, calibrating ``fixed_ms`` (bounded: fewer when the space has fewer)."""
    rng = random.Random(calibration_seed)
    edges = [space.largest(), space.smallest()]
    edges = [g for i, g in enumerate(edges) if g not in edges[:i]]
    samples = distinct_draws(lambda: space.sample(rng), calibration_samples, edges)
    if not samples:
        return HostReferences(edges, set(edges), "reference genotypes")
    return HostReferences(edges + samples, set(samples), "random genotypes of the space")


@dataclass
class TablePlan:
    """What a table covers: its `scope`, the distinct layer configurations it needs (`needed`: (key, [layer
    names])), how a genotype (tuple, or string with width genes) becomes this table's full tuple (`full`), how
    that becomes (architecture, group counts) (`resolve`) and which entries a network of it sums (`entries`).
    `plan_for` makes one."""

    scope: str
    needed: List[Tuple[Dict[str, Any], List[str]]]
    full: Callable[[Any], Tuple[int, ...]]
    resolve: Callable[[Sequence[int]], Tuple[Architecture, Tuple[int, ...]]]
    entries: Callable[[Architecture, Sequence[int]], List[Dict[str, Any]]]
    name: Callable[[Sequence[int]], str]


def plan_for(arch: Architecture, allowed: Optional[Sequence[Sequence[int]]] = None, space=None,
             threads: int = 1) -> TablePlan:
    """The `TablePlan` of a table for `arch`: ``block_convs`` when `space` (a `nn.space.SearchSpace` of `arch`)
    has width genes, else ``gene_layers`` over `allowed` (default: the LCE space)."""
    if has_width_scope(arch, space):
        return TablePlan(
            SCOPE_BLOCKS, block_table_keys(space, threads), space.validate, space.resolve,
            lambda a, groups: [k for k, _ in block_conv_keys(a, groups, threads)], space.encode)
    allowed = default_allowed(arch) if allowed is None else tuple(tuple(int(g) for g in a) for a in allowed)
    return TablePlan(
        SCOPE_GENES, table_keys(arch, allowed, threads), lambda g: arch.expand_groups(tuple(g)),
        lambda g: (arch, arch.expand_groups(tuple(g))),
        lambda a, groups: [layer_key(s, x, threads) for s, x in zip(a.gene_layers, groups)],
        lambda g: "-".join(map(str, g)))
