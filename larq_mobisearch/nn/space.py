"""The group-count search space: legal values per searchable layer, genotype encoding and sampling.

A genotype is a hashable tuple of group counts, one per searchable layer in `Architecture.gene_layers`
order, printable as ``"1-2-4-..."``. Two modes:

- ``lce`` (default): binary convs only take group counts LCE lowers to `LceBconv2d` (input channels per
  group a multiple of 32, or one group); float grouped convs (M2) only need to divide their channels.
- ``paper``: all divisors of the channels, as in the paper (§3.2.1). Winners may not be exportable.
"""

from __future__ import annotations

import random
from typing import Callable, Optional, Sequence, Tuple

from .specs import Architecture
from ..choices import SPACE_MODES, check_choice, not_allowed

Genotype = Tuple[int, ...]

#: Bound on the rejection-sampling tries of `sample_under` (every sampling loop is bounded).
DEFAULT_MAX_TRIES = 1000


def encode(genotype: Sequence[int]) -> str:
    """``(1, 2, 4)`` -> ``"1-2-4"``."""
    return "-".join(str(int(g)) for g in genotype)


def decode(text: str) -> Genotype:
    """``"1-2-4"`` (or ``"1,2,4"``) -> ``(1, 2, 4)``; raises ValueError with the received text."""
    parts = str(text).replace(",", "-").strip().split("-")
    try:
        genes = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"Cannot parse genotype {text!r}: expected group counts like '1-2-4'") from None
    if any(g < 1 for g in genes):
        raise ValueError(f"Group counts must be >= 1, received {text!r}")
    return genes


class SearchSpace:
    """Candidate group counts per searchable layer of one architecture.

    # Arguments
        arch: the `specs.Architecture` being searched.
        mode: "lce" (default, every candidate exports to LceBconv2d) or "paper" (all divisors).
        max_groups: optional cap on group counts (e.g. to keep a paper-mode space small).
    """

    def __init__(self, arch: Architecture, mode: str = "lce", max_groups: Optional[int] = None):
        check_choice("Unknown search-space mode", mode, SPACE_MODES)
        self.arch = arch
        self.mode = mode
        allowed = arch.allowed_groups(lce_compatible=(mode == "lce"))
        if max_groups is not None:
            allowed = tuple(tuple(g for g in a if g <= max_groups) for a in allowed)
        self.candidates: Tuple[Tuple[int, ...], ...] = allowed

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
        if isinstance(genotype, str):
            genotype = decode(genotype)
        genes = self.arch.expand_groups(genotype)
        for name, g, allowed in zip(self.layer_names, genes, self.candidates):
            if g not in allowed:
                raise not_allowed(f"Invalid group count {g} for layer {name} in {self.mode!r} search space", allowed)
        return genes

    def contains(self, genotype: Sequence[int]) -> bool:
        try:
            self.validate(tuple(genotype))
        except (ValueError, TypeError):
            return False
        return True

    def uniform(self, groups: int) -> Genotype:
        """The uniform genotype, with each layer clamped to its largest legal count <= groups."""
        return tuple(max(g for g in c if g <= groups) for c in self.candidates)

    def largest(self) -> Genotype:
        """The genotype with the most FLOPs: every layer at its smallest group count."""
        return tuple(min(c) for c in self.candidates)

    def smallest(self) -> Genotype:
        """The genotype with the fewest FLOPs: every layer at its largest group count."""
        return tuple(max(c) for c in self.candidates)

    def sample(self, rng: random.Random) -> Genotype:
        """A uniformly random genotype."""
        return tuple(rng.choice(c) for c in self.candidates)

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
        lines = [f"{self.arch.module.upper()} search space ({self.mode}), {self.size:.3g} genotypes:"]
        for name, c in zip(self.layer_names, self.candidates):
            lines.append(f"  {name:<18} {list(c)}")
        return "\n".join(lines)
