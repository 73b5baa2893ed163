"""Evaluated genotypes and what a search returns: `Candidate`, `best_candidate`, `pareto_front`, `SearchResult`.

One `Candidate` type serves the evolutionary search and the baselines alike. Pure Python (no Keras).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..fileio import atomic_write_text
from ..nn.space import Genotype, encode


@dataclass
class Candidate:
    """One evaluated genotype: its fitness (higher is better), its costs by cost-model name, the generation
    (or random-search batch) that evaluated it, and an optional label (uniform baselines: ``"g4"``)."""

    genotype: Genotype
    fitness: float
    costs: Dict[str, float]
    generation: Optional[int] = None
    label: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        d: Dict[str, Any] = {"genotype": encode(self.genotype), "fitness": self.fitness, "costs": dict(self.costs)}
        if self.generation is not None:
            d["generation"] = self.generation
        if self.label is not None:
            d["label"] = self.label
        return d


def pareto_front(candidates: Sequence[Candidate], cost_names: Optional[Sequence[str]] = None) -> List[Candidate]:
    """Non-dominated candidates (maximize fitness, minimize each cost in `cost_names`; default: all costs).

    # Returns
        The front, by ascending first cost. Candidates with identical objectives are all kept.
    """
    if not candidates:
        return []
    names = list(cost_names) if cost_names is not None else list(candidates[0].costs)

    def objectives(c: Candidate) -> Tuple[float, ...]:
        return tuple(float(c.costs[n]) for n in names)

    # Sorted by (-fitness, costs), a candidate can only be dominated by an earlier one, and if it is, then by
    # a member of the front built so far (dominance is transitive), so comparing to the front suffices.
    order = sorted(candidates, key=lambda c: (-c.fitness, objectives(c)))
    front: List[Tuple[Candidate, Tuple[float, ...]]] = []
    for c in order:
        oc = objectives(c)
        dominated = False
        for f, of in front:
            if f.fitness >= c.fitness and all(x <= y for x, y in zip(of, oc)) and (
                f.fitness > c.fitness or of != oc
            ):
                dominated = True
                break
        if not dominated:
            front.append((c, oc))
    return sorted((f for f, _ in front), key=lambda c: (objectives(c), -c.fitness))


def best_candidate(candidates: Sequence[Candidate], cost_names: Sequence[str]) -> Optional[Candidate]:
    """Highest fitness; ties go to the cheaper (costs in `cost_names` order), then to the earlier in the list.

    # Returns
        The best candidate, or None when `candidates` is empty.
    """
    if not candidates:
        return None
    return max(candidates, key=lambda c: (c.fitness, tuple(-float(c.costs[n]) for n in cost_names)))


@dataclass
class SearchResult:
    """Outcome of a search or baseline: best candidate, all evaluated candidates, Pareto front, history.

    An empty result (``best`` None, nothing evaluated) is what a baseline asked for zero samples returns.
    """

    method: str
    best: Optional[Candidate]
    evaluated: List[Candidate]
    pareto_front: List[Candidate]
    history: List[Dict[str, Any]]
    num_evaluations: int
    budgets: Dict[str, Optional[float]]
    units: Dict[str, str]
    config_hash: Optional[str] = None
    skipped: List[Dict[str, Any]] = field(default_factory=list)
    stopped_early: Optional[str] = None

    @classmethod
    def of(
        cls,
        method: str,
        candidates: Sequence[Candidate],
        cost_names: Sequence[str],
        budgets: Dict[str, Optional[float]],
        units: Dict[str, str],
        history: Sequence[Dict[str, Any]] = (),
        **kwargs: Any,
    ) -> "SearchResult":
        """The result over `candidates`, with the best one and the Pareto front computed over `cost_names`.

        `kwargs`: the remaining fields (``config_hash``, ``skipped``, ``stopped_early``).
        """
        candidates = list(candidates)
        return cls(
            method=method, best=best_candidate(candidates, cost_names), evaluated=candidates,
            pareto_front=pareto_front(candidates, cost_names), history=[dict(h) for h in history],
            num_evaluations=len(candidates), budgets=dict(budgets), units=dict(units), **kwargs,
        )

    @property
    def best_genotype(self) -> Optional[Genotype]:
        return None if self.best is None else self.best.genotype

    @property
    def best_fitness(self) -> Optional[float]:
        return None if self.best is None else self.best.fitness

    @property
    def best_costs(self) -> Optional[Dict[str, float]]:
        return None if self.best is None else dict(self.best.costs)

    def _cost_name(self, cost_name: Optional[str]) -> str:
        if cost_name is None:
            if not self.units:
                raise ValueError("This result has no cost models")
            return next(iter(self.units))
        if cost_name not in self.units:
            raise ValueError(f"Unknown cost {cost_name!r}; this result has {list(self.units)}")
        return cost_name

    def points(self, cost_name: Optional[str] = None) -> List[Tuple[float, float]]:
        """(cost, fitness) of every evaluated genotype (cost: the first cost model by default)."""
        name = self._cost_name(cost_name)
        return [(c.costs[name], c.fitness) for c in self.evaluated]

    def front_points(self, cost_name: Optional[str] = None) -> List[Tuple[float, float]]:
        """(cost, fitness) of the Pareto front over this one cost (for a 2-D plot)."""
        name = self._cost_name(cost_name)
        return [(c.costs[name], c.fitness) for c in pareto_front(self.evaluated, [name])]

    def markers(self, cost_name: Optional[str] = None, prefix: str = "") -> Dict[str, Tuple[float, float]]:
        """``{label: (cost, fitness)}`` of labelled candidates (uniform baselines), or of the best one."""
        name = self._cost_name(cost_name)
        labelled = {prefix + c.label: (c.costs[name], c.fitness) for c in self.evaluated if c.label}
        if labelled:
            return labelled
        if self.best is None:
            return {}
        return {prefix + f"{self.method} best": (self.best.costs[name], self.best.fitness)}

    def to_dict(self, include_evaluated: bool = True) -> Dict[str, Any]:
        d: Dict[str, Any] = {
            "method": self.method,
            "best_genotype": None if self.best is None else encode(self.best.genotype),
            "best_fitness": self.best_fitness,
            "best_costs": self.best_costs,
            "num_evaluations": self.num_evaluations,
            "budgets": dict(self.budgets),
            "units": dict(self.units),
            "config_hash": self.config_hash,
            "history": [dict(h) for h in self.history],
            "pareto_front": [c.to_dict() for c in self.pareto_front],
        }
        if self.skipped:
            d["skipped"] = [dict(s) for s in self.skipped]
        if self.stopped_early:
            d["stopped_early"] = self.stopped_early
        if include_evaluated:
            d["evaluated"] = [c.to_dict() for c in self.evaluated]
        return d

    def to_json(self, indent: Optional[int] = 2, include_evaluated: bool = True) -> str:
        return json.dumps(self.to_dict(include_evaluated), indent=indent, allow_nan=False)

    def save(self, path: str, include_evaluated: bool = True) -> str:
        """Write `to_json()` atomically to `path`; returns `path`."""
        atomic_write_text(path, self.to_json(include_evaluated=include_evaluated) + "\n")
        return path
